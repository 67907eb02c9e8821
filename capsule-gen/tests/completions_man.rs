//! `capsule-gen completions SHELL` and `capsule-gen man`: generated from the clap
//! definition, and usable: bash completes subcommands and their options, man renders the
//! pages. Needs bash and man-db (.ci/run installs man-db).

use std::path::Path;
use std::process::Command;

use capsule_tests::run_ok;

const GEN: &str = env!("CARGO_BIN_EXE_capsule-gen");

fn capsule_gen(args: &[&str]) -> String {
    let out = run_ok(Command::new(GEN).args(args), "run capsule-gen");
    String::from_utf8(out.stdout).expect("capsule-gen prints UTF-8")
}

/// What bash's completion offers for the command line `words`, the last one being
/// completed, with the script `capsule-gen completions bash` printed.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let line = words
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let prev = words[words.len() - 2];
    let cur = words[words.len() - 1];
    let program = format!(
        "source '{}'\nCOMP_WORDS=({line})\nCOMP_CWORD={}\n_capsule__gen capsule-gen '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.len() - 1,
    );
    let out = run_ok(
        Command::new("bash").args(["--norc", "-c", &program]),
        "run the bash completion (needs bash)",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("capsule-gen.bash");
    std::fs::write(&script, capsule_gen(&["completions", "bash"])).unwrap();

    assert_eq!(
        bash_completes(&script, &["capsule-gen", "ins"]),
        ["install"]
    );
    assert_eq!(
        bash_completes(&script, &["capsule-gen", "--regen"]),
        ["--regenerate"]
    );
    // A subcommand's own options (clap-rs/clap#6421 broke these for hyphenated names).
    assert_eq!(
        bash_completes(&script, &["capsule-gen", "install", "--in"]),
        ["--into"]
    );
    assert_eq!(
        bash_completes(&script, &["capsule-gen", "deps", "--w"]),
        ["--why"]
    );
}

#[test]
fn zsh_and_fish_scripts_know_every_subcommand() {
    for (shell, marker) in [
        ("zsh", "#compdef capsule-gen"),
        ("fish", "complete -c capsule-gen"),
    ] {
        let script = capsule_gen(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script}");
        // fish spells options `-l into`, zsh `--into`.
        for word in [
            "deps",
            "install",
            "into",
            "regenerate",
            "completions",
            "man",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let bad = Command::new(GEN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("possible values"));
}

#[test]
fn man_pages_render_with_every_command() {
    let page = capsule_gen(&["man"]);
    assert!(page.contains(".TH capsule-gen 1"), "{page}");

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("man1");
    capsule_gen(&["man", "--out", dir.to_str().unwrap()]);
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "capsule-gen-completions.1",
            "capsule-gen-deps.1",
            "capsule-gen-install.1",
            "capsule-gen-man.1",
            "capsule-gen.1",
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("capsule-gen.1")).unwrap(),
        page
    );

    for (file, expected) in [
        ("capsule-gen.1", "--regenerate"),
        ("capsule-gen-install.1", "--into"),
        ("capsule-gen-deps.1", "--why"),
    ] {
        let out = run_ok(
            Command::new("man")
                .arg("-l")
                .arg(dir.join(file))
                .env("MANWIDTH", "100")
                .env("MANPAGER", "cat"),
            "render the page with man (apt-get install man-db)",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(expected), "{file} lacks {expected}:\n{text}");
    }
}
