//! `capsule-gen install`: build shim crates and place each shim where programs find it,
//! under its soname (for the dynamic linker) and its development link `lib<NAME>.so`
//! (for `-l<NAME>`). Cargo names the built file after the crate's [lib] name, which cannot
//! hold `-` or `+` (`libjson-c.so.5` builds `libjson_c.so`), so `-ljson-c` would not find
//! it where cargo left it.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Arguments of `capsule-gen install`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Build shim crates and install each shim in DIR under its soname",
    long_about = "Build each shim crate (cargo build --release, which does nothing when it is \
up to date) and place the shim in DIR under its soname, with the development link \
lib<NAME>.so -> SONAME beside it (libjson-c.so -> libjson-c.so.5), so that \
`cc ... -L DIR -Wl,-rpath,DIR -ljson-c` links the shim and the program finds it at run time \
(or run it with LD_LIBRARY_PATH=DIR).\n\n\
Files are replaced by a rename, so programs running with an older copy keep it."
)]
pub struct InstallArgs {
    /// Shim crates made by capsule-gen (directories holding capsule-shim.toml).
    #[arg(value_name = "CRATE_DIR", required = true)]
    pub crates: Vec<PathBuf>,
    /// Directory to place the shims in; created if missing.
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    /// Build for this target triple (cargo build --target TRIPLE): the shims cargo puts in
    /// target/TRIPLE/release are installed.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
}

/// Run `capsule-gen install`.
pub fn run(args: &InstallArgs) -> Result<()> {
    // Read every manifest before building anything: a wrong directory fails at once.
    let manifests = args
        .crates
        .iter()
        .map(|dir| Manifest::read(dir))
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.into).map_err(Error::io(&args.into))?;
    for (dir, manifest) in args.crates.iter().zip(&manifests) {
        let built = build(dir, args.target.as_deref())?;
        let link = place(&built, &manifest.soname, &args.into)?;
        let link = link.map_or(String::new(), |l| format!(", {l} -> {}", manifest.soname));
        eprintln!(
            "capsule-gen: {} -> {}{link}",
            manifest.soname,
            args.into.join(&manifest.soname).display()
        );
    }
    Ok(())
}

/// The part of cargo's `--message-format=json` lines that names a built library.
#[derive(Deserialize)]
struct CargoMessage {
    reason: String,
    #[serde(default)]
    manifest_path: PathBuf,
    #[serde(default)]
    target: Option<CargoTarget>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Deserialize)]
struct CargoTarget {
    kind: Vec<String>,
}

/// Build the crate in `dir` in release mode and return the shared library cargo made. The
/// path is taken from cargo's own messages, so CARGO_TARGET_DIR, a workspace's target
/// directory and `--target` all land where cargo put them.
fn build(dir: &Path, target: Option<&str>) -> Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    let manifest_path = manifest_path
        .canonicalize()
        .map_err(Error::io(&manifest_path))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ])
    .arg("--manifest-path")
    .arg(&manifest_path);
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    // Diagnostics and progress go to the user's terminal; stdout carries the JSON.
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Build {
            dir: dir.to_path_buf(),
            reason: format!(
                "cannot run {} ({e}); is cargo installed?",
                cargo.to_string_lossy()
            ),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut built = None;
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.map_err(Error::io("cargo's output"))?;
        let Ok(msg) = serde_json::from_str::<CargoMessage>(&line) else {
            continue;
        };
        let is_cdylib = msg
            .target
            .is_some_and(|t| t.kind.iter().any(|k| k == "cdylib"));
        if msg.reason == "compiler-artifact" && is_cdylib && msg.manifest_path == manifest_path {
            built = msg
                .filenames
                .into_iter()
                .find(|f| f.extension().is_some_and(|e| e == "so"));
        }
    }
    let status = child.wait().map_err(Error::io(dir))?;
    if !status.success() {
        return Err(Error::Build {
            dir: dir.to_path_buf(),
            reason: format!("cargo build --release failed ({status}; its messages are above)"),
        });
    }
    built.ok_or_else(|| Error::Build {
        dir: dir.to_path_buf(),
        reason:
            "cargo built no shared library (cdylib) for it; is it a shim crate made by capsule-gen?"
                .into(),
    })
}

/// The development link name for `soname`: the name up to and including `.so`
/// (`libjson-c.so.5` -> `libjson-c.so`); `None` when that is the soname itself or the
/// soname has no `.so`.
pub fn dev_link_name(soname: &str) -> Option<&str> {
    let end = soname.find(".so.")? + ".so".len();
    Some(&soname[..end])
}

/// Copy `built` to `into/soname` and point `into/lib<NAME>.so` at it, each by a rename so
/// that no program ever sees half a file. Returns the link's name when one was made.
fn place<'a>(built: &Path, soname: &'a str, into: &Path) -> Result<Option<&'a str>> {
    let target = into.join(soname);
    let temporary = into.join(format!(".{soname}.capsule-gen-install"));
    std::fs::copy(built, &temporary).map_err(Error::io(&temporary))?;
    std::fs::rename(&temporary, &target).map_err(Error::io(&target))?;
    let Some(link_name) = dev_link_name(soname) else {
        return Ok(None);
    };
    let link = into.join(link_name);
    let temporary = into.join(format!(".{link_name}.capsule-gen-install"));
    let _ = std::fs::remove_file(&temporary);
    // Relative, so the directory can be moved or bind-mounted elsewhere.
    std::os::unix::fs::symlink(soname, &temporary).map_err(Error::io(&temporary))?;
    std::fs::rename(&temporary, &link).map_err(Error::io(&link))?;
    Ok(Some(link_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_link_names() {
        assert_eq!(dev_link_name("libjson-c.so.5"), Some("libjson-c.so"));
        assert_eq!(dev_link_name("libstdc++.so.6"), Some("libstdc++.so"));
        assert_eq!(dev_link_name("libGL.so.1.7.0"), Some("libGL.so"));
        assert_eq!(dev_link_name("libfoo.so"), None);
        assert_eq!(
            dev_link_name("ld-linux-x86-64.so.2"),
            Some("ld-linux-x86-64.so")
        );
    }
}
