//! capsule-gen: generate proxy shim crates for host libraries.

mod deps;
mod emit;
mod error;
mod install;
mod locate;
mod manifest;
mod scan;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use capsule::machine::Machine;
use clap::{CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Generate proxy ("shim") crates for host libraries.
///
/// For each LIBRARY (a soname looked up in the prefix, or a path), writes a Cargo crate in
/// OUT/<soname>/ whose `cargo build --release` makes target/release/lib<NAME>.so: a library
/// with the real one's soname, exported symbols and symbol versions that, when loaded,
/// loads the real library from the host prefix (CAPSULE_<SONAME>_PREFIX, else
/// CAPSULE_PREFIX, else /) into a capsule and forwards every call to it. `capsule-gen install
/// OUT/<soname> --into DIR` builds it and places it in DIR under its soname.
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

    /// Make shims for this target's libraries (a Rust target triple:
    /// i686-unknown-linux-gnu): sonames are looked up in its directories
    /// (lib/i386-linux-gnu) and the crates build with `--target TRIPLE` [default: this
    /// machine's; a LIBRARY given as a path has its own machine, which must match].
    #[arg(long, value_name = "TRIPLE")]
    target: Option<String>,

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
    Install(install::InstallArgs),
    /// Print a shell completion script for capsule-gen on stdout.
    ///
    /// bash: capsule-gen completions bash > /usr/share/bash-completion/completions/capsule-gen
    /// (or ~/.local/share/bash-completion/completions/capsule-gen); zsh: into a directory of
    /// $fpath as _capsule-gen; fish: ~/.config/fish/completions/capsule-gen.fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page capsule-gen(1) on stdout, or write one page per command into DIR.
    ///
    /// capsule-gen man --out /usr/local/share/man/man1 installs capsule-gen.1 and a page per
    /// subcommand (capsule-gen-deps.1, capsule-gen-install.1, ...).
    Man {
        /// Directory to write capsule-gen.1 and the subcommands' pages in.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Deps(args)) => return deps::run(args),
        Some(Command::Install(args)) => install::run(args).map(|()| true),
        Some(Command::Completions { shell }) => completions(*shell).map(|()| true),
        Some(Command::Man { out }) => man(out.as_deref()).map(|()| true),
        None => run_generator(&cli),
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

/// The completion script for `shell`, from the same clap definition as `--help`.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "capsule-gen", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete spells a subcommand's state `capsule__gen__subcmd__X` where it is
        // set and `capsule__subcmd__gen__subcmd__X` where it is matched, so no subcommand's
        // options would complete (clap-rs/clap#6421, hyphenated binary names). Once fixed
        // upstream this matches nothing.
        script = String::from_utf8_lossy(&script)
            .replace("capsule__subcmd__gen", "capsule__gen")
            .into_bytes();
    }
    std::io::stdout()
        .write_all(&script)
        .map_err(Error::io("stdout"))
}

/// The manual pages, from the same clap definition as `--help`.
fn man(out: Option<&Path>) -> Result<()> {
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
            clap_mangen::generate_to(Cli::command(), dir).map_err(Error::io(dir))
        }
        // As generate_to does: `help` gets no page, so the main page must not list one.
        None => clap_mangen::Man::new(Cli::command().disable_help_subcommand(true))
            .render(&mut std::io::stdout())
            .map_err(Error::io("stdout")),
    }
}

/// Generation, --regenerate or --check; `Ok(false)` when --check found differences.
fn run_generator(cli: &Cli) -> Result<bool> {
    if let Some(dir) = &cli.regenerate {
        regenerate(dir).map(|()| true)
    } else if let Some(dir) = &cli.check {
        check(dir, &cli.prefix)
    } else {
        generate_all(cli).map(|()| true)
    }
}

/// The machine `--target` names, if given.
fn target_machine(target: Option<&str>) -> Result<Option<Machine>> {
    let Some(triple) = target else {
        return Ok(None);
    };
    Machine::from_target(triple)
        .map(Some)
        .ok_or_else(|| Error::BadTarget {
            triple: triple.to_string(),
            known: Machine::ALL.map(Machine::rust_target).join(", "),
        })
}

fn generate_all(cli: &Cli) -> Result<()> {
    let runtime = runtime_dir(cli.runtime.as_deref())?;
    let target = target_machine(cli.target.as_deref())?;
    for library in &cli.libraries {
        let machine = target.unwrap_or(Machine::NATIVE);
        let source = locate::find_library(library, &cli.prefix, machine)?;
        let scanned = scan::scan(&source)?;
        if target.is_some_and(|t| t != scanned.machine) {
            return Err(Error::BadLibrary {
                path: source,
                reason: format!(
                    "is built for {}, not for --target {}'s {}",
                    scanned.machine.name(),
                    machine.rust_target(),
                    machine.name()
                ),
            });
        }
        emit::arch(scanned.machine)?;
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
            machine: scanned.machine,
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

fn regenerate(dir: &Path) -> Result<()> {
    let manifest = Manifest::read(dir)?;
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
    let manifest = Manifest::read(dir)?;
    let source = locate::find_library(&manifest.soname, prefix, manifest.machine)?;
    let live = scan::scan(&source)?;
    // What the shim is made of: name, version, kind, binding, and a variable's size (its
    // ABI). A function's size is not recorded: it changes with every rebuild.
    let describe = |e: &manifest::Export| {
        let weak = if e.weak { ", weak" } else { "" };
        match e.kind {
            manifest::Kind::Object => {
                format!("{} (object, {} bytes{weak})", e.display_name(), e.size)
            }
            kind => format!("{} ({}{weak})", e.display_name(), kind.as_str()),
        }
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
