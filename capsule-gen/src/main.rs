//! capsule-gen: generate proxy shim crates for host libraries.

mod deps;
mod emit;
mod error;
mod locate;
mod manifest;
mod scan;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, FILE_NAME};

/// Generate proxy ("shim") crates for host libraries.
///
/// For each LIBRARY (a soname looked up in the prefix, or a path), writes a Cargo crate in
/// OUT/<soname>/ whose `cargo build --release` makes target/release/lib<NAME>.so: a library
/// with the real one's soname, exported symbols and symbol versions that, when loaded,
/// loads the real library from the host prefix (CAPSULE_<SONAME>_PREFIX, else
/// CAPSULE_PREFIX, else /) into a capsule and forwards every call to it.
///
/// The crate records what it was generated from in capsule-shim.toml: --regenerate
/// rewrites the crate from that file alone, --check compares it with the live library.
///
/// Exit status: 0 success, 1 generation failed or --check found differences, 2 bad input.
#[derive(Debug, Parser)]
#[command(name = "capsule-gen", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Host tree to look sonames up in.
    #[arg(long, default_value = "/", value_name = "DIR")]
    prefix: PathBuf,

    /// Directory to write the crates in (one subdirectory per library, named after its soname).
    #[arg(long, default_value = ".", value_name = "DIR")]
    out: PathBuf,

    /// The capsule runtime crate the shims depend on [default: the one capsule-gen was built from].
    #[arg(long, value_name = "PATH")]
    runtime: Option<PathBuf>,

    /// Make the crates members of the enclosing workspace (as in this repository's shims/):
    /// no [workspace] table, and a relative path to the runtime.
    #[arg(long)]
    workspace_member: bool,

    /// Rewrite the shim crate in DIR from its capsule-shim.toml alone.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["check", "libraries"])]
    regenerate: Option<PathBuf>,

    /// Compare the shim crate in DIR with the live library in the prefix; exit 1 if they differ.
    #[arg(long, value_name = "DIR", conflicts_with = "libraries")]
    check: Option<PathBuf>,

    /// Libraries to make shims for: sonames (libGL.so.1) or paths.
    #[arg(value_name = "LIBRARY", required_unless_present_any = ["regenerate", "check"], required = false)]
    libraries: Vec<String>,
}

/// Subcommands beside generation.
#[derive(Debug, Subcommand)]
enum Command {
    Deps(deps::DepsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Deps(args)) = &cli.command {
        return deps::run(args);
    }
    let result = if let Some(dir) = &cli.regenerate {
        regenerate(dir).map(|()| true)
    } else if let Some(dir) = &cli.check {
        check(dir, &cli.prefix)
    } else {
        generate_all(&cli).map(|()| true)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

fn generate_all(cli: &Cli) -> Result<()> {
    let runtime = runtime_dir(cli.runtime.as_deref())?;
    for library in &cli.libraries {
        let source = locate::find_library(library, &cli.prefix)?;
        let scanned = scan::scan(&source)?;
        let dir = cli.out.join(&scanned.soname);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let runtime = if cli.workspace_member {
            relative_path(&canonical(&dir)?, &runtime)
        } else {
            runtime.clone()
        };
        let source = recorded_source(library, &source, &cli.prefix);
        let manifest = Manifest {
            format: manifest::Format,
            soname: scanned.soname,
            source: source.display().to_string(),
            runtime: runtime.display().to_string(),
            workspace_member: cli.workspace_member,
            versions: scanned.versions,
            symbols: scanned.symbols,
        };
        let exported = write_crate(&manifest, &dir)?;
        eprintln!(
            "capsule-gen: {} -> {} ({exported} symbols)",
            manifest.soname,
            dir.display()
        );
    }
    Ok(())
}

/// Generate and write the crate, report what had to be left out, and return how many
/// symbols the shim exports.
fn write_crate(manifest: &Manifest, dir: &Path) -> Result<usize> {
    let krate = emit::generate(manifest)?;
    for (symbol, why) in &krate.left_out {
        eprintln!(
            "capsule-gen: warning: {}: {symbol} left out of the shim: {why}; programs that use it must link the real library",
            manifest.soname
        );
    }
    emit::write(&krate, dir)?;
    Ok(krate.exported)
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::BadManifest {
        path: path.clone(),
        reason: format!(
            "cannot read it ({e}); is {} a shim crate made by capsule-gen?",
            dir.display()
        ),
    })?;
    Manifest::parse(&text, &path)
}

fn regenerate(dir: &Path) -> Result<()> {
    let manifest = read_manifest(dir)?;
    let exported = write_crate(&manifest, dir)?;
    eprintln!(
        "capsule-gen: {} -> {} ({exported} symbols, regenerated)",
        manifest.soname,
        dir.display()
    );
    Ok(())
}

/// Print how the live library differs from the manifest; `Ok(true)` when it does not.
fn check(dir: &Path, prefix: &Path) -> Result<bool> {
    let manifest = read_manifest(dir)?;
    let source = locate::find_library(&manifest.soname, prefix)?;
    let live = scan::scan(&source)?;
    // A function's size changes with every rebuild; an object's size is part of the ABI.
    let describe = |e: &manifest::Export| match e.kind {
        manifest::Kind::Function => format!("{} (function)", e.display_name()),
        kind => format!("{} ({}, {} bytes)", e.display_name(), kind.as_str(), e.size),
    };
    let old: BTreeSet<String> = manifest.symbols.iter().map(describe).collect();
    let new: BTreeSet<String> = live.symbols.iter().map(describe).collect();
    let old_versions: BTreeSet<&str> = manifest.versions.iter().map(|v| v.name.as_str()).collect();
    let new_versions: BTreeSet<&str> = live.versions.iter().map(|v| v.name.as_str()).collect();
    let mut same = true;
    let mut report = |what: &str, items: Vec<&str>| {
        for item in items {
            same = false;
            println!("{what} {item}");
        }
    };
    report(
        "+ version",
        new_versions.difference(&old_versions).copied().collect(),
    );
    report(
        "- version",
        old_versions.difference(&new_versions).copied().collect(),
    );
    report("+", new.difference(&old).map(String::as_str).collect());
    report("-", old.difference(&new).map(String::as_str).collect());
    if same {
        eprintln!(
            "capsule-gen: {}: up to date with {}",
            manifest.soname,
            source.display()
        );
    } else {
        eprintln!(
            "capsule-gen: {}: {} differs from the shim in {} (+ only in the library, - only in the shim); regenerate with capsule-gen {}",
            manifest.soname,
            source.display(),
            dir.display(),
            manifest.soname
        );
    }
    Ok(same)
}

/// The source as the manifest records it: for a soname, its path as the host sees it
/// (inside the prefix, from its root), so that the same packages give the same manifest
/// whatever the prefix is called; for a path given on the command line, that path made
/// absolute.
fn recorded_source(library: &str, found: &Path, prefix: &Path) -> PathBuf {
    let absolute = std::path::absolute(found).unwrap_or_else(|_| found.to_path_buf());
    if library.contains('/') {
        return absolute;
    }
    let roots = [
        prefix.to_path_buf(),
        prefix.canonicalize().unwrap_or_default(),
    ];
    roots
        .iter()
        .filter_map(|root| absolute.strip_prefix(root).ok())
        .next()
        .map_or(absolute.clone(), |inside| Path::new("/").join(inside))
}

/// The runtime crate's directory, canonical, checked to be the capsule crate.
fn runtime_dir(given: Option<&Path>) -> Result<PathBuf> {
    let dir = given.map_or_else(
        || Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../capsule")).to_path_buf(),
        Path::to_path_buf,
    );
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| Error::BadRuntime {
        path: dir.clone(),
        reason: format!("cannot read {} ({e})", manifest.display()),
    })?;
    if !text
        .lines()
        .any(|l| l.trim().replace(' ', "") == "name=\"capsule\"")
    {
        return Err(Error::BadRuntime {
            path: dir,
            reason: "its Cargo.toml is not the `capsule` package".into(),
        });
    }
    canonical(&dir)
}

fn canonical(path: &Path) -> Result<PathBuf> {
    path.canonicalize().map_err(Error::io(path))
}

/// `to` relative to `from` (both absolute and canonical).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &to[common..] {
        rel.push(c);
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/r/shims/libz.so.1"), Path::new("/r/capsule")),
            PathBuf::from("../../capsule")
        );
        assert_eq!(
            relative_path(Path::new("/a"), Path::new("/a/b")),
            PathBuf::from("b")
        );
    }
}
