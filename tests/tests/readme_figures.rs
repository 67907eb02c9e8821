//! Every measured figure the README quotes comes from BENCHMARKS.md: a time, a size or a
//! ratio in its prose must appear, as written, in a row there. Code spans and blocks
//! (sample output, commands) are not claims and are left out.

use std::path::Path;

/// The README's prose: code blocks and `code spans` removed.
fn prose(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        let mut in_span = false;
        for c in line.chars() {
            if c == '`' {
                in_span = !in_span;
            } else if !in_span {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// The measured figures in `text`: a number followed by a unit of time or size, or a
/// ratio (`1.05x`), with any `~` or range in front kept.
fn figures(text: &str) -> Vec<String> {
    const UNITS: &[&str] = &[
        "ns", "µs", "us", "ms", "kB", "KiB", "MB", "MiB", "GB", "GiB", "x",
    ];
    let bytes: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit()
            && (i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '.'));
        if !starts_number {
            i += 1;
            continue;
        }
        let start = if i > 0 && bytes[i - 1] == '~' {
            i - 1
        } else {
            i
        };
        let mut end = i;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || ".,-".contains(bytes[end])) {
            end += 1;
        }
        let number_end = end;
        while end < bytes.len() && bytes[end] == ' ' {
            end += 1;
        }
        let rest: String = bytes[end..].iter().take(4).collect();
        let unit = UNITS.iter().find(|u| {
            rest.starts_with(*u)
                && rest[u.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric())
        });
        if let Some(unit) = unit {
            let number: String = bytes[start..number_end].iter().collect();
            found.push(format!(
                "{}{unit}",
                number.trim_end_matches(['.', ',', '-'])
            ));
        }
        i = number_end.max(i + 1);
    }
    found
}

#[test]
fn every_figure_the_readme_quotes_is_a_benchmarks_row() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let benchmarks =
        std::fs::read_to_string(root.join("BENCHMARKS.md")).expect("read BENCHMARKS.md");
    let measured: String = benchmarks.replace(' ', "");
    let missing: Vec<String> = figures(&prose(&readme))
        .into_iter()
        .filter(|f| !measured.contains(&f.replace('~', "")))
        .collect();
    assert!(
        missing.is_empty(),
        "the README quotes figures BENCHMARKS.md does not hold (cite its row, or drop them): {missing:?}"
    );
}

#[test]
fn the_check_finds_figures_in_prose_and_leaves_code_alone() {
    let text = "Calls cost ~0.2 ns more; loads take 163.71 µs (0.94x).\n\
                `capsule: time: 48.2 us` and\n```\n12 ms\n```\nversion 1.2.13, 30 s smoke\n";
    assert_eq!(figures(&prose(text)), ["~0.2ns", "163.71µs", "0.94x"]);
}
