//! The API that generated proxy libraries ("shims") call when they load.
//!
//! A shim made by `capsule-gen` exports the real library's symbols. Each function is a
//! trampoline that jumps through a slot; each variable is an object of the real size. The
//! shim's constructor calls [`init`], which loads the real library into a capsule, points
//! every slot at the real function, then makes the program skip the trampolines
//! ([`callers`]), share each variable with the real library ([`data`]) and get the real
//! library's answers from `dlsym` ([`dlsym`]).
//!
//! Failure policy: a shim whose library cannot be loaded can do nothing useful, and the
//! program linked against it would crash at its first call anyway. So [`init`] prints the
//! error (which names the library, the prefix and what to do) and aborts the process.
//! A function the host's library lacks (the shim was generated from a newer version) is not
//! an error at load: its slot points to a stub that aborts, naming the symbol, only if the
//! program actually calls it.

use std::ffi::{c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::capsule::Capsule;

mod callers;
mod data;
mod dlsym;
mod linkmap;

use callers::Target;

/// Distance between two missing-symbol stubs in a generated shim's stub table. Generated
/// shims lay their stubs out with this very constant (a `const` operand of their
/// `global_asm!`), so a shim built against this runtime always agrees with it.
pub const MISSING_STUB_STRIDE: usize = 16;

// A stub is `mov edi, imm32` and `jmp rel32`, 10 bytes, padded with `.org` (whose fill
// rejects a stub longer than the stride at build time); `.balign` wants a power of two.
const _: () = assert!(MISSING_STUB_STRIDE.is_power_of_two() && MISSING_STUB_STRIDE >= 10);

/// What kind of thing an exported symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Code (including GNU indirect functions): forwarded by a trampoline.
    Function,
    /// A variable of `size` bytes: the shim holds a copy that programs relocate against.
    Object,
}

/// One exported symbol of the real library, as the generated code lists it.
#[derive(Debug)]
pub struct Symbol {
    pub name: &'static CStr,
    /// The symbol version, or `None` for an unversioned symbol.
    pub version: Option<&'static CStr>,
    /// `name@@VERSION` (the version new programs link to) rather than `name@VERSION`.
    pub default: bool,
    pub kind: Kind,
    /// Size in bytes of an object; 0 for functions.
    pub size: usize,
}

/// The real library a shim stands for.
///
/// `symbols` lists functions first: function `i` owns slot `i` of the shim's slot table and
/// missing-symbol stub `i`.
#[derive(Debug)]
pub struct Library {
    soname: &'static str,
    symbols: &'static [Symbol],
    functions: usize,
    /// Where the capsule took the library from, for the missing-symbol message.
    host_path: OnceLock<PathBuf>,
    /// The shim's first missing-symbol stub, to tell a stub from a real target.
    missing_stubs: OnceLock<usize>,
}

impl Symbol {
    /// A function exported as `name` (`name@version` or `name@@version`).
    pub const fn function(
        name: &'static CStr,
        version: Option<&'static CStr>,
        default: bool,
    ) -> Symbol {
        Symbol {
            name,
            version,
            default,
            kind: Kind::Function,
            size: 0,
        }
    }

    /// A variable of `size` bytes.
    pub const fn object(
        name: &'static CStr,
        version: Option<&'static CStr>,
        default: bool,
        size: usize,
    ) -> Symbol {
        Symbol {
            name,
            version,
            default,
            kind: Kind::Object,
            size,
        }
    }

    /// `name`, `name@VER` or `name@@VER`, as `nm` writes it.
    pub fn display_name(&self) -> String {
        let name = self.name.to_string_lossy();
        match self.version {
            None => name.into_owned(),
            Some(v) if self.default => format!("{name}@@{}", v.to_string_lossy()),
            Some(v) => format!("{name}@{}", v.to_string_lossy()),
        }
    }
}

impl Library {
    /// Describe a shim's library. `symbols[..functions]` are the functions, in slot order.
    pub const fn new(
        soname: &'static str,
        symbols: &'static [Symbol],
        functions: usize,
    ) -> Library {
        Library {
            soname,
            symbols,
            functions,
            host_path: OnceLock::new(),
            missing_stubs: OnceLock::new(),
        }
    }

    pub fn soname(&self) -> &'static str {
        self.soname
    }

    pub fn symbols(&self) -> &'static [Symbol] {
        self.symbols
    }

    fn functions(&self) -> &'static [Symbol] {
        &self.symbols[..self.functions.min(self.symbols.len())]
    }

    fn objects(&self) -> &'static [Symbol] {
        &self.symbols[self.functions.min(self.symbols.len())..]
    }
}

/// Load `lib`'s real library into a capsule and wire the shim up to it. Called once, from
/// the shim's `.init_array` constructor. Prints the error and aborts if the library cannot
/// be loaded (see the module documentation).
///
/// # Safety
/// `slots` must point to `lib`'s slot table: one writable, aligned `usize` per function of
/// `lib`, which nothing but the shim's trampolines reads. `missing_stubs` must point to the
/// shim's stub table: for each function `i`, code at `missing_stubs + i * MISSING_STUB_STRIDE`
/// that calls [`missing_called`] with `i` and never returns.
pub unsafe fn init(lib: &'static Library, slots: *mut usize, missing_stubs: *const u8) {
    let capsule = match Capsule::load_from_env(lib.soname) {
        Ok(capsule) => capsule,
        Err(err) => {
            eprintln!(
                "{err}\ncapsule: the proxy library {} cannot work without it; aborting",
                lib.soname
            );
            std::process::abort();
        }
    };
    // The trampolines use the capsule for the rest of the process: never unload it.
    let capsule: &'static Capsule = Box::leak(Box::new(capsule));
    let _ = lib.host_path.set(capsule.path().to_path_buf());
    let _ = lib.missing_stubs.set(missing_stubs as usize);
    crate::debug!(
        Libs,
        "shim {}: forwarding to {}",
        lib.soname,
        capsule.path().display()
    );

    // The library's own hash table answers for what it defines itself (most of a shim's
    // thousands of names), at a fraction of dlsym's cost; dlsym for the rest.
    // SAFETY: the capsule's library stays loaded for the life of the process.
    let real = unsafe { crate::elf::Object::from_link_map(capsule.link_map()) }.ok();
    let mut missing = Vec::new();
    for (i, sym) in lib.functions().iter().enumerate() {
        let own = real.as_ref().and_then(|real| defined_by(real, sym));
        let target = match own.or_else(|| lookup(capsule, sym)) {
            Some(addr) => addr as usize,
            None => {
                missing.push(sym.display_name());
                missing_stubs as usize + i * MISSING_STUB_STRIDE
            }
        };
        // SAFETY: the caller guarantees `slots` has one aligned usize per function; an
        // atomic store keeps a trampoline running on another thread (a shim dlopen'ed late)
        // from reading a torn pointer.
        unsafe { AtomicUsize::from_ptr(slots.add(i)) }.store(target, Ordering::Release);
    }
    crate::phase!(
        "shim {}: {} trampolines filled",
        lib.soname,
        lib.functions().len()
    );
    warn_if_different(lib, capsule, &missing);
    wire_program(lib, capsule, slots);
    crate::phase!("shim {}: the program's slots rewired", lib.soname);
}

/// The shim was generated from another build of the library than the host has: say so
/// once, and what it means. Everything the host's library has keeps working.
fn warn_if_different(lib: &Library, capsule: &Capsule, missing: &[String]) {
    if missing.is_empty() {
        return;
    }
    const SHOWN: usize = 8;
    let more = missing.len().saturating_sub(SHOWN);
    let list = missing
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    eprintln!(
        "capsule: warning: {}: the proxy library was generated from another build than the host's {}: \
         {} function(s) it exports are missing there ({list}{more}); calling one aborts, everything \
         else works; regenerate the shim, or compare with `capsule-gen --check SHIM_DIR --prefix {}`",
        lib.soname,
        capsule.path().display(),
        missing.len(),
        capsule.prefix().display()
    );
}

/// Everything after the slot table: rewrite the program's slots, share variables, wrap
/// `dlsym`. A failure here costs speed or precision, never correctness of calls (the
/// trampolines work without it), so it is reported and the program carries on.
fn wire_program(lib: &'static Library, capsule: &'static Capsule, slots: *mut usize) {
    let Some(own_map) = linkmap::containing(slots.cast_const().cast()) else {
        eprintln!(
            "capsule: {}: cannot find the proxy library's own link map; calls go through its trampolines",
            lib.soname
        );
        data::share_variables(lib, capsule);
        return;
    };
    // SAFETY: `own_map` is this shim's live link map; the shim never unloads itself.
    let own = match unsafe { crate::elf::Object::from_link_map(own_map) } {
        Ok(own) => own,
        Err(err) => {
            eprintln!("{err}; calls go through the trampolines of {}", lib.soname);
            data::share_variables(lib, capsule);
            return;
        }
    };
    if !linkmap::pin(own_map) {
        eprintln!(
            "capsule: {}: cannot make the proxy library stay loaded; calls go through its trampolines",
            lib.soname
        );
        data::share_variables(lib, capsule);
        return;
    }
    let targets = targets(lib, &own, slots);
    // SAFETY: run from the shim's constructor, while ld.so holds its lock; the objects of
    // the program's namespace that the shim patches stay loaded as long as it calls them.
    let objects = unsafe { linkmap::patchable_objects(own_map, own_map) };
    callers::redirect_callers(lib, &targets, &objects);
    data::share_variables(lib, capsule);
    dlsym::install(dlsym::State::new(capsule, lib, own_map, &targets), &objects);
}

/// For each function, its trampoline (the shim's exported address) and real target.
fn targets(lib: &Library, own: &crate::elf::Object<'_>, slots: *mut usize) -> Vec<Target> {
    let mut targets = Vec::new();
    for (i, sym) in lib.functions().iter().enumerate() {
        let (name, version) = (
            sym.name.to_str().unwrap_or_default(),
            sym.version.and_then(|v| v.to_str().ok()),
        );
        let trampoline = match own.lookup(name, version) {
            Ok(Some(found)) => found.address,
            _ => 0,
        };
        // SAFETY: `slots` has one usize per function (init's contract), filled above.
        let slot = unsafe { AtomicUsize::from_ptr(slots.add(i)) }.load(Ordering::Acquire);
        let real = lookup_was_found(lib, i, slot);
        targets.push(Target {
            trampoline,
            real: real.filter(|_| trampoline != 0),
        });
    }
    targets
}

/// `slot`'s value as a real function, or `None` when it is function `index`'s stub.
fn lookup_was_found(lib: &Library, index: usize, slot: usize) -> Option<usize> {
    let stub = lib.missing_stubs.get().copied()? + index * MISSING_STUB_STRIDE;
    (slot != stub && slot != 0).then_some(slot)
}

/// The address of the function `sym` where the library itself defines it plainly (no
/// IFUNC, not a name the interposer answers), as `dlsym`/`dlvsym` on it would find it.
fn defined_by(real: &crate::elf::Object<'_>, sym: &Symbol) -> Option<*mut c_void> {
    let name = sym.name.to_str().ok()?;
    if crate::interposer::is_interposed(name.as_bytes()) {
        return None;
    }
    let version = match sym.version.map(CStr::to_str) {
        Some(Ok(version)) => Some(version),
        Some(Err(_)) => return None,
        None => None,
    };
    let found = real.lookup(name, version).ok()??;
    (found.kind == crate::elf::SymbolKind::Function && !found.absolute)
        .then_some(found.address as *mut c_void)
}

/// The real address of `sym` in the capsule, or `None` when the host's library lacks it.
fn lookup(capsule: &Capsule, sym: &Symbol) -> Option<*mut c_void> {
    let name = sym.name.to_str().ok()?;
    let found = match sym.version.map(CStr::to_str) {
        Some(Ok(version)) => capsule.symbol_versioned(name, version),
        Some(Err(_)) => return None,
        None => capsule.symbol(name),
    };
    match found {
        Ok(addr) => Some(addr.as_ptr()),
        Err(err) => {
            crate::debug!(Libs, "shim {}: {err}", capsule.soname());
            None
        }
    }
}

/// The address that `name` (in `version`) has for the program: its copy-relocated copy, or
/// the shim's own object when the program has none.
pub(super) fn program_visible(sym: &Symbol) -> Option<*mut c_void> {
    // SAFETY: both names are NUL-terminated; RTLD_DEFAULT searches the program's global
    // scope, which is where the program's own references were bound.
    let addr = unsafe {
        match sym.version {
            Some(version) => libc::dlvsym(libc::RTLD_DEFAULT, sym.name.as_ptr(), version.as_ptr()),
            None => libc::dlsym(libc::RTLD_DEFAULT, sym.name.as_ptr()),
        }
    };
    (!addr.is_null()).then_some(addr)
}

/// Called (through the shim's stub `index`) when the program calls a function the host's
/// library does not define. Prints which one and aborts.
pub fn missing_called(lib: &Library, index: usize) -> ! {
    let symbol = lib
        .functions()
        .get(index)
        .map_or_else(|| format!("function #{index}"), Symbol::display_name);
    let path = lib
        .host_path
        .get()
        .map_or_else(|| "not loaded yet".to_string(), |p| p.display().to_string());
    eprintln!(
        "capsule: {soname}: {symbol} was called, but the host's {soname} ({path}) does not define it; \
         the proxy library was generated from a newer {soname}: regenerate it with capsule-gen from the host's version, \
         or use a host tree whose {soname} provides {symbol}",
        soname = lib.soname,
    );
    std::process::abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    static SYMBOLS: [Symbol; 3] = [
        Symbol::function(c"foo", Some(c"FOO_1"), false),
        Symbol::function(c"foo", Some(c"FOO_2"), true),
        Symbol::object(c"counter", None, true, 4),
    ];

    #[test]
    fn library_splits_functions_and_objects() {
        let lib = Library::new("libfoo.so.1", &SYMBOLS, 2);
        assert_eq!(lib.functions().len(), 2);
        assert_eq!(lib.objects().len(), 1);
        assert_eq!(lib.objects()[0].kind, Kind::Object);
    }

    #[test]
    fn display_names_follow_nm() {
        assert_eq!(SYMBOLS[0].display_name(), "foo@FOO_1");
        assert_eq!(SYMBOLS[1].display_name(), "foo@@FOO_2");
        assert_eq!(SYMBOLS[2].display_name(), "counter");
    }
}
