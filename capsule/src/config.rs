//! Configuration from the environment: which prefix a library is taken from, and which
//! debug topics print. Read with `secure_getenv`, so a setuid or setcap program ignores
//! `CAPSULE_*` exactly as ld.so ignores `LD_LIBRARY_PATH` there.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Name of the per-library prefix variable: soname upper-cased, every character that is
/// not an ASCII letter or digit replaced by `_`, wrapped in `CAPSULE_` and `_PREFIX`.
/// `libGL.so.1` gives `CAPSULE_LIBGL_SO_1_PREFIX`.
pub fn prefix_variable(soname: &str) -> String {
    let mangled: String = soname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("CAPSULE_{mangled}_PREFIX")
}

/// The host prefix for `soname`: `CAPSULE_<SONAME>_PREFIX`, then `CAPSULE_PREFIX`, then `/`.
/// Empty values count as unset.
pub fn prefix_for(soname: &str) -> PathBuf {
    secure_var(&prefix_variable(soname))
        .or_else(|| secure_var("CAPSULE_PREFIX"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// A `CAPSULE_*` variable, or `None` when unset, empty, or the process runs with AT_SECURE.
pub fn secure_var(name: &str) -> Option<OsString> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string; secure_getenv returns NULL or a
    // pointer into the environment, which we copy at once before anything can change it.
    let value = unsafe { secure_getenv(name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-NULL results of secure_getenv point to NUL-terminated strings.
    let bytes = unsafe { CStr::from_ptr(value) }.to_bytes().to_vec();
    (!bytes.is_empty()).then(|| OsString::from_vec(bytes))
}

extern "C" {
    // glibc >= 2.17; the libc crate does not declare it.
    pub(crate) fn secure_getenv(name: *const libc::c_char) -> *mut libc::c_char;
}

/// What `CAPSULE_DEBUG` can switch on (a comma list; `all` switches on every topic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Every library resolved: soname, path, and why it was chosen.
    Libs = 1,
    /// Every relocation slot rewritten.
    Reloc = 2,
    /// dlopen/dlsym calls made inside a capsule and where they went.
    Dlopen = 8,
    /// Each data file path the capsule's code opens that is rewritten into the prefix
    /// (printed by the interposer itself).
    Files = 16,
    /// How long each phase of a load took.
    Time = 32,
}

fn debug_mask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        let Some(value) = secure_var("CAPSULE_DEBUG") else {
            return 0;
        };
        let value = value.to_string_lossy().into_owned();
        parse_debug(&value)
    })
}

/// Parse a `CAPSULE_DEBUG` value into a topic mask; unknown words are reported once.
fn parse_debug(value: &str) -> u32 {
    let mut mask = 0;
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        mask |= match word {
            "libs" => Topic::Libs as u32,
            "reloc" => Topic::Reloc as u32,
            "dlopen" => Topic::Dlopen as u32,
            "files" => Topic::Files as u32,
            "time" => Topic::Time as u32,
            "all" => u32::MAX,
            other => {
                eprintln!(
                    "capsule: CAPSULE_DEBUG: unknown topic {other:?} (known: libs, reloc, dlopen, files, time, all)"
                );
                0
            }
        };
    }
    mask
}

/// Whether `topic` is switched on by `CAPSULE_DEBUG`.
pub fn debug_enabled(topic: Topic) -> bool {
    debug_mask() & topic as u32 != 0
}

/// Print a `capsule:`-prefixed line to stderr when a `CAPSULE_DEBUG` topic is on.
#[macro_export]
#[doc(hidden)]
macro_rules! debug {
    ($topic:ident, $($arg:tt)*) => {
        if $crate::config::debug_enabled($crate::config::Topic::$topic) {
            eprintln!("capsule: {}", format_args!($($arg)*));
        }
    };
}

thread_local! {
    /// When this thread's previous `phase!` line was printed (`CAPSULE_DEBUG=time`).
    static PHASE_MARK: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
}

/// Start timing a load on this thread (`CAPSULE_DEBUG=time`).
pub fn phase_start() {
    if debug_enabled(Topic::Time) {
        let _ = PHASE_MARK.try_with(|m| m.set(Some(std::time::Instant::now())));
    }
}

/// Print how long the phase that ends here took, since the previous mark on this thread.
/// The printing itself is not counted in the next phase.
#[doc(hidden)]
pub fn print_phase(what: std::fmt::Arguments<'_>) {
    let _ = PHASE_MARK.try_with(|m| {
        if let Some(since) = m.get() {
            let micros = since.elapsed().as_secs_f64() * 1e6;
            eprintln!("capsule: time: {micros:8.1} us  {what}");
        }
        m.set(Some(std::time::Instant::now()));
    });
}

/// With `CAPSULE_DEBUG=time`, a `capsule: time:` line with the time since this thread's
/// previous mark (see [`phase_start`]) and what was done in it.
#[macro_export]
#[doc(hidden)]
macro_rules! phase {
    ($($arg:tt)*) => {
        if $crate::config::debug_enabled($crate::config::Topic::Time) {
            $crate::config::print_phase(format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_variable_mangles_soname() {
        assert_eq!(prefix_variable("libGL.so.1"), "CAPSULE_LIBGL_SO_1_PREFIX");
        assert_eq!(
            prefix_variable("libstdc++.so.6"),
            "CAPSULE_LIBSTDC___SO_6_PREFIX"
        );
    }

    #[test]
    fn debug_topics_parse() {
        assert_eq!(parse_debug("libs"), Topic::Libs as u32);
        assert_eq!(
            parse_debug("reloc, dlopen"),
            Topic::Reloc as u32 | Topic::Dlopen as u32
        );
        assert_eq!(parse_debug("files"), Topic::Files as u32);
        assert_eq!(parse_debug("all"), u32::MAX);
        assert_eq!(parse_debug(""), 0);
    }
}
