//! `capsule-gen deps`: print the closure the runtime would load for a library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use capsule::elffile::Reader;
use capsule::machine::Machine;
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
The closure is searched for the machine of LIBRARY when it is a path (an i386 library: \
lib/i386-linux-gnu, $LIB = lib/i386-linux-gnu, $PLATFORM = i686, the ld.so.cache entries \
of i386, glibc's i386 libraries from this system), else for --target's, else for this \
machine's.\n\n\
Exits with status 2 and a message on stderr when something cannot be resolved."
)]
pub struct DepsArgs {
    /// Root of the host tree to resolve in.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub prefix: PathBuf,
    /// Add to every line why the file was chosen (rpath, runpath, cache, conf, default, ...).
    #[arg(long)]
    pub why: bool,
    /// Resolve for this target's machine (a Rust target triple: i686-unknown-linux-gnu)
    /// [default: LIBRARY's if it is a path, else this machine's].
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
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
    let native = Prefix::open(&args.prefix)?;
    let machine = machine(args, &native)?;
    let prefix = if machine == Machine::NATIVE {
        native
    } else {
        Prefix::open_for(&args.prefix, machine)?
    };
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

/// The machine to resolve for: `--target`'s, else the library's when it is a path (a file
/// the prefix lacks is reported by the search), else this one.
fn machine(args: &DepsArgs, prefix: &Prefix) -> capsule::Result<Machine> {
    if let Some(triple) = &args.target {
        return Machine::from_target(triple).ok_or_else(|| capsule::Error::BadVariable {
            variable: "--target",
            value: triple.clone(),
            reason: format!(
                "not a target capsule knows ({})",
                Machine::ALL.map(Machine::rust_target).join(", ")
            ),
        });
    }
    if !args.library.contains('/') {
        return Ok(Machine::NATIVE);
    }
    let inside = PathBuf::from("/").join(&args.library);
    let Some((real, file)) = capsule::prefix::fs::open(prefix.root(), &inside)? else {
        return Ok(Machine::NATIVE);
    };
    Reader::from_file(file)
        .and_then(|reader| reader.machine())
        .map_err(|reason| capsule::Error::BadElf {
            path: capsule::prefix::fs::host_path(prefix.root(), &real),
            reason,
        })
}
