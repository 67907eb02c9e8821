//! `capsule-gen deps`: print the closure the runtime would load for a library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use capsule::prefix::{Origin, Prefix};

/// Exit status when the closure cannot be resolved (library or dependency missing,
/// bad prefix, version mismatch).
pub const EXIT_UNRESOLVED: u8 = 2;

/// Arguments of `capsule-gen deps`.
#[derive(Debug, clap::Args)]
#[command(
    about = "Print the objects a capsule of LIBRARY would load, dependencies first",
    long_about = "Print the objects a capsule of LIBRARY would load: one line per object, \
dependencies before the objects that need them, LIBRARY last.\n\n\
Each line is SONAME<TAB>PATH, where PATH is the file on this machine (prefix joined, \
symlinks resolved inside the prefix). glibc's own libraries, which are taken from the \
running system and never from the prefix, get a third field: SONAME<TAB>PATH<TAB>system.\n\n\
With --why, every line gets the third field, saying why the file was chosen: explicit, \
rpath, runpath, cache, conf, default, or system.\n\n\
Exits with status 2 and a message on stderr when something cannot be resolved."
)]
pub struct DepsArgs {
    /// Root of the host tree to resolve in.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub prefix: PathBuf,
    /// Add to every line why the file was chosen (rpath, runpath, cache, conf, default, ...).
    #[arg(long)]
    pub why: bool,
    /// A soname (e.g. libEGL.so.1) or a path inside the prefix.
    #[arg(value_name = "LIBRARY")]
    pub library: String,
}

/// Run `capsule-gen deps`.
pub fn run(args: &DepsArgs) -> ExitCode {
    match closure_lines(args) {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = out.write_all(lines.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_UNRESOLVED)
        }
    }
}

fn closure_lines(args: &DepsArgs) -> capsule::Result<String> {
    let prefix = Prefix::open(&args.prefix)?;
    let closure = prefix.resolve_closure(&args.library)?;
    Ok(closure
        .objects
        .iter()
        .map(|o| {
            let mark = if args.why || o.origin == Origin::System {
                format!("\t{}", o.origin)
            } else {
                String::new()
            };
            format!("{}\t{}{mark}\n", o.soname, o.path.display())
        })
        .collect())
}
