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
pub mod slot_cache;
mod table;

/// Distance between two missing-symbol stubs in a generated shim's stub table. Generated
/// shims lay their stubs out with this very constant (a `const` operand of their
/// `global_asm!`), so a shim built against this runtime always agrees with it.
pub const MISSING_STUB_STRIDE: usize = 16;

// A stub is at most 16 bytes (x86_64: `mov edi, imm32; jmp rel32`, 10; i386: align the
// stack, `push imm32; call rel32`, 16; capsule-gen's emit/), padded with `.org` (whose fill
// rejects a stub longer than the stride at build time); `.balign` wants a power of two.
const _: () = assert!(MISSING_STUB_STRIDE.is_power_of_two() && MISSING_STUB_STRIDE >= 16);

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

    /// The name and version as text, as lookups take them; `None` if either is not UTF-8
    /// (capsule-gen writes only UTF-8 names: such a symbol is never looked up).
    fn texts(&self) -> Option<(&'static str, Option<&'static str>)> {
        let version = match self.version.map(CStr::to_str) {
            Some(Ok(version)) => Some(version),
            Some(Err(_)) => return None,
            None => None,
        };
        Some((self.name.to_str().ok()?, version))
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
    /// Describe a shim's library. `symbols[..functions]` are the functions, in slot order,
    /// sorted by name (as capsule-gen writes them): a shim that lists them otherwise does
    /// not build.
    pub const fn new(
        soname: &'static str,
        symbols: &'static [Symbol],
        functions: usize,
    ) -> Library {
        assert!(
            sorted_by_name(symbols, functions),
            "a shim's functions must be sorted by name: regenerate it with capsule-gen"
        );
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

/// Whether `symbols[..functions]` are in byte order of their names.
const fn sorted_by_name(symbols: &[Symbol], functions: usize) -> bool {
    let mut i = 1;
    while i < functions && i < symbols.len() {
        let (a, b) = (symbols[i - 1].name.to_bytes(), symbols[i].name.to_bytes());
        let mut k = 0;
        while k < a.len() && k < b.len() && a[k] == b[k] {
            k += 1;
        }
        let in_order = if k < a.len() && k < b.len() {
            a[k] < b[k]
        } else {
            a.len() <= b.len()
        };
        if !in_order {
            return false;
        }
        i += 1;
    }
    true
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

    let own_map = linkmap::containing(slots.cast_const().cast());
    let missing = fill_slots(lib, capsule, own_map, slots, missing_stubs);
    crate::phase!(
        "shim {}: {} trampolines filled",
        lib.soname,
        lib.functions().len()
    );
    warn_if_different(lib, capsule, &missing);
    wire_program(lib, capsule, own_map, slots);
    crate::phase!("shim {}: the program's slots rewired", lib.soname);
}

/// Point every slot at its real function, or at its missing-symbol stub; returns the
/// names of the functions the host's library lacks.
///
/// The library's own hash table answers for what it defines itself (most of a shim's
/// thousands of names), at a fraction of dlsym's cost; dlsym for the rest. Where it
/// defines them is remembered in the cache directory ([`slot_cache`]), so a later run
/// looks up only the rest.
fn fill_slots(
    lib: &Library,
    capsule: &Capsule,
    own_map: Option<*const crate::elf::LinkMap>,
    slots: *mut usize,
    missing_stubs: *const u8,
) -> Vec<String> {
    // SAFETY: the capsule's library stays loaded for the life of the process.
    let real = unsafe { crate::elf::Object::from_link_map(capsule.link_map()) }.ok();
    let cache = own_map.and_then(|map| {
        // SAFETY: `map` is this shim's live link map.
        let shim = unsafe { (*map).path() };
        slot_cache::Entry::new(lib.soname, &shim, capsule.path())
    });
    let functions = lib.functions();
    let remembered = cache
        .as_ref()
        .zip(real.as_ref())
        .and_then(|(cache, real)| cache.recall(functions.len(), real));
    let bias = real.as_ref().map_or(0, |real| real.bias());
    let mut offsets = Vec::new();
    let mut missing = Vec::new();
    for (i, sym) in functions.iter().enumerate() {
        let own = match &remembered {
            // Checked by `recall`: inside the library's code.
            Some(offsets) => offsets[i].map(|offset| (bias + offset) as *mut c_void),
            None => {
                let own = real.as_ref().and_then(|real| defined_by(real, sym));
                offsets.push(own.and_then(|a| (a as usize).checked_sub(bias)));
                own
            }
        };
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
    if let (None, Some(cache), Some(_)) = (&remembered, &cache, &real) {
        cache.remember(&offsets);
    }
    missing
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
fn wire_program(
    lib: &'static Library,
    capsule: &'static Capsule,
    own_map: Option<*const crate::elf::LinkMap>,
    slots: *mut usize,
) {
    let Some(own_map) = own_map else {
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
    // SAFETY: `slots` is the filled slot table (init's contract); the shim stays loaded.
    let table = unsafe { table::Table::new(lib, own, slots.cast_const()) };
    // SAFETY: run from the shim's constructor, while ld.so holds its lock; the objects of
    // the program's namespace that the shim patches stay loaded as long as it calls them.
    let objects = unsafe { linkmap::patchable_objects(own_map, own_map) };
    // SAFETY: as above: the program's objects stay loaded while the constructor runs.
    let earlier = unsafe { crate::sharing::Scope::before(own_map) };
    callers::redirect_callers(&table, &objects, &earlier);
    data::share_variables(lib, capsule);
    dlsym::install(dlsym::State::new(capsule, own_map, table), &objects);
}

/// The address of the function `sym` where the library itself defines it plainly (no
/// IFUNC, not a name the interposer answers), as `dlsym`/`dlvsym` on it would find it.
fn defined_by(real: &crate::elf::Object<'_>, sym: &Symbol) -> Option<*mut c_void> {
    let (name, version) = sym.texts()?;
    if crate::interposer::is_interposed(name.as_bytes()) {
        return None;
    }
    let found = real.lookup(name, version).ok()??;
    (found.kind == crate::elf::SymbolKind::Function && !found.absolute)
        .then_some(found.address as *mut c_void)
}

/// The real address of `sym` in the capsule, or `None` when the host's library lacks it.
fn lookup(capsule: &Capsule, sym: &Symbol) -> Option<*mut c_void> {
    let (name, version) = sym.texts()?;
    let found = match version {
        Some(version) => capsule.symbol_versioned(name, version),
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
    fn functions_must_be_sorted_by_name() {
        assert!(sorted_by_name(&SYMBOLS, 2));
        static UNSORTED: [Symbol; 2] = [
            Symbol::function(c"glVertex", None, false),
            Symbol::function(c"glBegin", None, false),
        ];
        assert!(!sorted_by_name(&UNSORTED, 2));
        // A name before a longer name it begins; objects after the functions don't count.
        static PREFIXED: [Symbol; 3] = [
            Symbol::function(c"gl", None, false),
            Symbol::function(c"glBegin", None, false),
            Symbol::object(c"a", None, true, 4),
        ];
        assert!(sorted_by_name(&PREFIXED, 2));
        assert!(!sorted_by_name(&PREFIXED, 3));
    }

    #[test]
    fn display_names_follow_nm() {
        assert_eq!(SYMBOLS[0].display_name(), "foo@FOO_1");
        assert_eq!(SYMBOLS[1].display_name(), "foo@@FOO_2");
        assert_eq!(SYMBOLS[2].display_name(), "counter");
    }
}
