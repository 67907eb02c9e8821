//! Reader of `ld.so.conf`, used only when the prefix has no `ld.so.cache` (ld.so itself
//! never reads the conf; ldconfig turns it into the cache, so reading it stands in for
//! an `ldconfig -r PREFIX` nobody ran).
//!
//! The format, as ldconfig reads it: one directory per line; `#` starts a comment;
//! `include PATTERN...` reads the files matching each glob pattern, a relative pattern
//! being relative to the directory of the file that includes it (`/etc` for the main
//! file); `hwcap` lines are obsolete and ignored.

use std::fmt;
use std::path::{Path, PathBuf};

use super::fs::{host_path, resolve};
use crate::error::{Error, Result};

/// How deep includes may nest before the reader gives up, loop or not.
const MAX_INCLUDE_DEPTH: usize = 32;

/// One meaningful line of an `ld.so.conf` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// A library directory (trailing slashes removed).
    Dir(String),
    /// A glob pattern of files to read in its place.
    Include(String),
}

/// What is wrong with a conf file: the line and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ConfError {}

/// Parse the text of one `ld.so.conf` file (includes are not followed here).
pub fn parse(text: &str) -> Result<Vec<Directive>, ConfError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (word, rest) = line
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((line, ""));
        if word == "include" {
            let patterns: Vec<&str> = rest.split_ascii_whitespace().collect();
            if patterns.is_empty() {
                return Err(ConfError {
                    line: index + 1,
                    reason: "`include` without a file pattern".into(),
                });
            }
            out.extend(patterns.into_iter().map(|p| Directive::Include(p.into())));
        } else if word.eq_ignore_ascii_case("hwcap") {
            continue;
        } else {
            let dir = line.trim_end_matches('/');
            out.push(Directive::Dir(
                if dir.is_empty() { "/" } else { dir }.into(),
            ));
        }
    }
    Ok(out)
}

/// The library directories (paths of the host tree) of the conf file `conf` (a path of
/// the host tree), includes followed, duplicates dropped. A missing file gives no
/// directories; an include loop or a malformed file is `Error::BadConfig`.
pub fn read_dirs(root: &Path, conf: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    let mut chain = Vec::new();
    read_into(root, conf, &mut chain, &mut dirs)?;
    Ok(dirs)
}

fn read_into(
    root: &Path,
    conf: &Path,
    chain: &mut Vec<PathBuf>,
    dirs: &mut Vec<PathBuf>,
) -> Result<()> {
    let Some(file) = resolve(root, conf)? else {
        return Ok(());
    };
    if chain.contains(&file) || chain.len() >= MAX_INCLUDE_DEPTH {
        let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
        names.push(file.display().to_string());
        return Err(Error::BadConfig {
            path: host_path(root, chain.first().unwrap_or(&file)),
            reason: format!("include loop: {}", names.join(" includes ")),
        });
    }
    let on_host = host_path(root, &file);
    let bytes = std::fs::read(&on_host).map_err(|source| Error::Io {
        path: on_host.clone(),
        source,
    })?;
    let directives = parse(&String::from_utf8_lossy(&bytes)).map_err(|e| Error::BadConfig {
        path: on_host.clone(),
        reason: e.to_string(),
    })?;
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    chain.push(file);
    for directive in directives {
        match directive {
            Directive::Dir(dir) => {
                let dir = PathBuf::from(dir);
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
            Directive::Include(pattern) => {
                for included in glob(root, &base.join(&pattern))? {
                    read_into(root, &included, chain, dirs)?;
                }
            }
        }
    }
    chain.pop();
    Ok(())
}

/// The paths of the host tree matching `pattern` (`*`, `?` and `[...]` in any
/// component), sorted as glob(3) sorts them; names starting with `.` only match a
/// pattern component that starts with `.`.
fn glob(root: &Path, pattern: &Path) -> Result<Vec<PathBuf>> {
    let mut found = vec![PathBuf::from("/")];
    for part in pattern.iter().skip(1) {
        let part = part.to_string_lossy();
        if !part.contains(['*', '?', '[']) {
            for path in &mut found {
                path.push(&*part);
            }
            continue;
        }
        let mut next = Vec::new();
        for base in &found {
            let Some(dir) = resolve(root, base)? else {
                continue;
            };
            let Ok(listing) = std::fs::read_dir(host_path(root, &dir)) else {
                continue;
            };
            let mut names: Vec<String> = listing
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| fnmatch(part.as_bytes(), name.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| base.join(name)));
        }
        found = next;
    }
    Ok(found)
}

/// Whether `name` matches the shell pattern `pat` (no `/` in either).
///
/// Iterative, remembering only the last `*`: every other pattern element consumes exactly
/// one character, so retrying from the last star is enough, and time stays O(pattern x
/// name). (A recursive matcher took exponential time on `include ****...` lines: found by
/// fuzzing, see the regression test.)
pub fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    // Just past the last `*`, and the first name position it has not yet absorbed.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pat.get(p) == Some(&b'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(next) = match_one(pat, p, name[n]) {
            p = next;
            n += 1;
            continue;
        }
        match star {
            Some((after_star, absorbed)) => {
                p = after_star;
                n = absorbed + 1;
                star = Some((after_star, absorbed + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&b| b == b'*')
}

/// Whether the pattern element at `pat[p]` (not a `*`) matches `c`; if so, where the
/// pattern goes on.
fn match_one(pat: &[u8], p: usize, c: u8) -> Option<usize> {
    match *pat.get(p)? {
        b'?' => Some(p + 1),
        b'[' => match bracket(&pat[p + 1..]) {
            Some((set, negate, after)) => {
                (matches_set(set, c) != negate).then_some(pat.len() - after.len())
            }
            // A `[` with no closing `]` is an ordinary character.
            None => (c == b'[').then_some(p + 1),
        },
        literal => (literal == c).then_some(p + 1),
    }
}

/// Split `[...]` (the `[` already taken): the set, whether it is negated, what follows.
fn bracket(pat: &[u8]) -> Option<(&[u8], bool, &[u8])> {
    let (negate, body) = match pat.first() {
        Some(b'!' | b'^') => (true, &pat[1..]),
        _ => (false, pat),
    };
    // A `]` right after the opening bracket is a member, not the end.
    let close = body.iter().skip(1).position(|&b| b == b']')? + 1;
    Some((&body[..close], negate, &body[close + 1..]))
}

fn matches_set(set: &[u8], c: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if i + 2 < set.len() && set[i + 1] == b'-' {
            if set[i] <= c && c <= set[i + 2] {
                return true;
            }
            i += 3;
        } else {
            if set[i] == c {
                return true;
            }
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dirs_includes_comments() {
        let text = "# comment\n/usr/local/lib/\n\ninclude /etc/ld.so.conf.d/*.conf  other.conf\n  /opt/x # trailing\nhwcap 0 nosegneg\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                Directive::Dir("/usr/local/lib".into()),
                Directive::Include("/etc/ld.so.conf.d/*.conf".into()),
                Directive::Include("other.conf".into()),
                Directive::Dir("/opt/x".into()),
            ]
        );
    }

    #[test]
    fn include_without_pattern_is_an_error() {
        let err = parse("/a\ninclude   \n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("without a file pattern"));
    }

    #[test]
    fn odd_text_never_panics() {
        for text in [
            "",
            "\0",
            "include\t",
            "#",
            "[",
            "/\u{fffd}",
            "include [",
            "////",
        ] {
            let _ = parse(text);
        }
        assert_eq!(parse("////").unwrap(), vec![Directive::Dir("/".into())]);
    }

    #[test]
    fn fnmatch_patterns() {
        assert!(fnmatch(b"*.conf", b"x86_64-linux-gnu.conf"));
        assert!(!fnmatch(b"*.conf", b"x.conf.bak"));
        assert!(fnmatch(b"lib?.conf", b"libc.conf"));
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[!a-c]x", b"bx"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"[", b"["));
        assert!(!fnmatch(b"a", b""));
        assert!(fnmatch(b"*", b""));
        assert!(fnmatch(b"a*b*c", b"aXbYbZc"));
        assert!(!fnmatch(b"a*b*c", b"aXbYbZ"));
        assert!(fnmatch(b"*[0-9]?.conf", b"x86_64-linux-gnu-10.conf"));
    }

    #[test]
    fn include_loop_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/conf.d")).unwrap();
        std::fs::write(dir.path().join("etc/ld.so.conf"), "include conf.d/*.conf\n").unwrap();
        std::fs::write(
            dir.path().join("etc/conf.d/a.conf"),
            "/a\ninclude ../ld.so.conf\n",
        )
        .unwrap();
        let err = read_dirs(dir.path(), Path::new("/etc/ld.so.conf")).unwrap_err();
        assert!(matches!(err, Error::BadConfig { .. }), "{err}");
        assert!(err.to_string().contains("include loop"), "{err}");
    }

    /// Found by the `conf` fuzz target: a run of stars made the recursive matcher take
    /// exponential time (a denial of service from a host tree's ld.so.conf).
    #[test]
    fn many_stars_match_in_linear_time() {
        let pattern = [b"*".repeat(40), b"gnu/lf".to_vec()].concat();
        let name = b"a".repeat(200);
        let started = std::time::Instant::now();
        assert!(!fnmatch(&pattern, &name));
        assert!(fnmatch(&b"*".repeat(40), &name));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "fnmatch took {:?}",
            started.elapsed()
        );
    }
}
