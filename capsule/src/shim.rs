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
use std::os::unix::ffi::OsStrExt;
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
#[repr(u8)]
pub enum Kind {
    /// Code (including GNU indirect functions): forwarded by a trampoline.
    Function,
    /// A variable of `size` bytes: the shim holds a copy that programs relocate against.
    Object,
}

/// One exported symbol of the real library, with its strings: what the runtime works on
/// (made from the generated table's [`Entry`] when needed).
#[derive(Clone, Copy, Debug)]
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

/// One exported symbol as the generated code lists it: its name and version as offsets
/// into the shim's string table, so that the table holds no pointer. (A table of `&CStr`
/// needs a relocation per string: thousands in a GL shim, and a copy-on-write page fault
/// for every page of them, at every start of the program.)
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Entry {
    name: u32,
    /// 0 for an unversioned symbol (the table starts with an empty string).
    version: u32,
    default: bool,
    kind: Kind,
    size: u32,
}

impl Entry {
    /// A function exported as the string at `name` (with the version at `version`, or 0).
    pub const fn function(name: u32, version: u32, default: bool) -> Entry {
        Entry {
            name,
            version,
            default,
            kind: Kind::Function,
            size: 0,
        }
    }

    /// A variable of `size` bytes.
    pub const fn object(name: u32, version: u32, default: bool, size: u32) -> Entry {
        Entry {
            name,
            version,
            default,
            kind: Kind::Object,
            size,
        }
    }
}

/// The real library a shim stands for.
///
/// `entries` lists functions first: function `i` owns slot `i` of the shim's slot table
/// and missing-symbol stub `i`.
#[derive(Debug)]
pub struct Library {
    soname: &'static str,
    /// The names and versions the entries point into, each NUL-terminated; offset 0 is the
    /// empty string.
    strings: &'static [u8],
    entries: &'static [Entry],
    functions: usize,
    /// Where the capsule took the library from, for the missing-symbol message.
    host_path: OnceLock<PathBuf>,
    /// The shim's first missing-symbol stub, to tell a stub from a real target.
    missing_stubs: OnceLock<usize>,
}

impl Symbol {
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
    /// Describe a shim's library. `entries[..functions]` are the functions, in slot order,
    /// sorted by name (as capsule-gen writes them), and every offset starts a string of
    /// `strings` (offset 0 the empty one): a shim that breaks either does not build.
    pub const fn new(
        soname: &'static str,
        strings: &'static [u8],
        entries: &'static [Entry],
        functions: usize,
    ) -> Library {
        assert!(
            strings_sound(strings, entries),
            "a shim's symbol table points outside its strings: regenerate it with capsule-gen"
        );
        assert!(
            sorted_by_name(strings, entries, functions),
            "a shim's functions must be sorted by name: regenerate it with capsule-gen"
        );
        Library::unchecked(soname, strings, entries, functions)
    }

    /// [`Library::new`] at run time, for tables another copy of the runtime hands over:
    /// `None` where they break what `new` asserts.
    fn from_parts(
        soname: &'static str,
        strings: &'static [u8],
        entries: &'static [Entry],
        functions: usize,
    ) -> Option<Library> {
        (strings_sound(strings, entries) && sorted_by_name(strings, entries, functions))
            .then(|| Library::unchecked(soname, strings, entries, functions))
    }

    const fn unchecked(
        soname: &'static str,
        strings: &'static [u8],
        entries: &'static [Entry],
        functions: usize,
    ) -> Library {
        Library {
            soname,
            strings,
            entries,
            functions,
            host_path: OnceLock::new(),
            missing_stubs: OnceLock::new(),
        }
    }

    pub fn soname(&self) -> &'static str {
        self.soname
    }

    /// Symbol `index` (functions first), with its strings.
    pub fn symbol(&self, index: usize) -> Option<Symbol> {
        let entry = self.entries.get(index)?;
        Some(Symbol {
            name: self.string(entry.name),
            version: (entry.version != 0).then(|| self.string(entry.version)),
            default: entry.default,
            kind: entry.kind,
            size: entry.size as usize,
        })
    }

    /// Every symbol, functions first.
    pub fn symbols(&self) -> impl Iterator<Item = Symbol> + '_ {
        (0..self.entries.len()).filter_map(|i| self.symbol(i))
    }

    fn function_count(&self) -> usize {
        self.functions.min(self.entries.len())
    }

    /// Function `index`, which owns slot `index`.
    fn function(&self, index: usize) -> Option<Symbol> {
        (index < self.function_count())
            .then(|| self.symbol(index))
            .flatten()
    }

    /// How the name of function `index` (empty past the end) compares with `name`, for
    /// binary searches: read up to the first byte that differs, without finding its end.
    fn compare_function_name(&self, index: usize, name: &[u8]) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let tail = match self.entries.get(index) {
            Some(entry) if index < self.function_count() => {
                self.strings.get(entry.name as usize..).unwrap_or_default()
            }
            _ => &[],
        };
        for (k, &want) in name.iter().enumerate() {
            match tail.get(k) {
                None | Some(0) => return Ordering::Less,
                Some(&have) if have != want => return have.cmp(&want),
                Some(_) => {}
            }
        }
        match tail.get(name.len()) {
            None | Some(0) => Ordering::Equal,
            Some(_) => Ordering::Greater,
        }
    }

    fn objects(&self) -> impl Iterator<Item = Symbol> + '_ {
        (self.function_count()..self.entries.len()).filter_map(|i| self.symbol(i))
    }

    /// The string at `offset` (checked when the shim was built: see [`Library::new`]).
    fn string(&self, offset: u32) -> &'static CStr {
        self.strings
            .get(offset as usize..)
            .and_then(|tail| CStr::from_bytes_until_nul(tail).ok())
            .unwrap_or(c"")
    }
}

/// Whether every entry's offsets start a NUL-terminated string of `strings`, which begins
/// with the empty one.
const fn strings_sound(strings: &[u8], entries: &[Entry]) -> bool {
    if strings.is_empty() || strings[0] != 0 || strings[strings.len() - 1] != 0 {
        return false;
    }
    let mut i = 0;
    while i < entries.len() {
        if entries[i].name as usize >= strings.len() || entries[i].version as usize >= strings.len()
        {
            return false;
        }
        i += 1;
    }
    true
}

/// The bytes of the string at `offset` (to its NUL; `strings_sound` holds).
const fn string_at(strings: &[u8], offset: u32) -> &[u8] {
    let start = offset as usize;
    let mut end = start;
    while end < strings.len() && strings[end] != 0 {
        end += 1;
    }
    strings.split_at(end).0.split_at(start).1
}

/// Whether the names of `entries[..functions]` are in byte order.
const fn sorted_by_name(strings: &[u8], entries: &[Entry], functions: usize) -> bool {
    let mut i = 1;
    while i < functions && i < entries.len() {
        let a = string_at(strings, entries[i - 1].name);
        let b = string_at(strings, entries[i].name);
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
/// The first shim of a process loads the namespace and does the work; a later one, whose
/// copy of the runtime has the same shim code, hands its tables to that first copy
/// ([`delegate`]), which wires it up as its own: the views, caches and code it already
/// has serve again, and the later copy's code is barely touched.
///
/// # Safety
/// `slots` must point to `lib`'s slot table: one writable, aligned `usize` per function of
/// `lib`, which nothing but the shim's trampolines reads. `missing_stubs` must point to the
/// shim's stub table: for each function `i`, code at `missing_stubs + i * MISSING_STUB_STRIDE`
/// that calls [`missing_called`] with `i` and never returns.
pub unsafe fn init(lib: &'static Library, slots: *mut usize, missing_stubs: *const u8) {
    // SAFETY: forwarded from this function's contract.
    if unsafe { delegate(lib, slots, missing_stubs) } {
        return;
    }
    // SAFETY: forwarded from this function's contract.
    let capsule = unsafe { wire(lib, slots, missing_stubs) };
    capsule
        .namespace()
        .offer_shim_entry(SHIM_ABI, wire_for_another_copy);
}

/// This copy's shim code, as build.rs hashed it: copies that agree wire each other's shims.
const SHIM_ABI: u64 = match u64::from_str_radix(env!("CAPSULE_SHIM_ABI"), 16) {
    Ok(abi) => abi,
    Err(_) => panic!("CAPSULE_SHIM_ABI is not a hexadecimal number"),
};

/// A shim's tables as one copy of the runtime hands them to another ([`delegate`]); the
/// same layout in every copy whose [`SHIM_ABI`] is this one's.
#[repr(C)]
struct Delegation {
    soname: *const u8,
    soname_len: usize,
    strings: *const u8,
    strings_len: usize,
    entries: *const Entry,
    entries_len: usize,
    functions: usize,
    slots: *mut usize,
    missing_stubs: *const u8,
    /// Written by the owner: where the capsule took the library from, NUL-terminated.
    host_path: *mut u8,
    host_path_len: usize,
}

/// Have the copy of the runtime that owns the namespace for `lib`'s prefix wire the shim up,
/// if its shim code is this copy's; false (nothing done) otherwise.
///
/// # Safety
/// As for [`init`].
unsafe fn delegate(lib: &'static Library, slots: *mut usize, missing_stubs: *const u8) -> bool {
    let prefix = crate::config::prefix_for(lib.soname);
    let Some(entry) = crate::namespace::of_another_copy(&prefix)
        .and_then(|ns| ns.interposer.shim_entry(SHIM_ABI))
    else {
        return false;
    };
    let mut host_path = vec![0u8; crate::interposer::PREFIX_CAPACITY];
    let delegation = Delegation {
        soname: lib.soname.as_ptr(),
        soname_len: lib.soname.len(),
        strings: lib.strings.as_ptr(),
        strings_len: lib.strings.len(),
        entries: lib.entries.as_ptr(),
        entries_len: lib.entries.len(),
        functions: lib.functions,
        slots,
        missing_stubs,
        host_path: host_path.as_mut_ptr(),
        host_path_len: host_path.len(),
    };
    if entry(&delegation as *const Delegation as *const c_void) == 0 {
        return false;
    }
    let end = host_path.iter().position(|&b| b == 0).unwrap_or(0);
    let path = std::ffi::OsStr::from_bytes(&host_path[..end]);
    let _ = lib.host_path.set(PathBuf::from(path));
    let _ = lib.missing_stubs.set(missing_stubs as usize);
    crate::debug!(
        Libs,
        "shim {}: wired up by the copy of the runtime that owns its namespace",
        lib.soname
    );
    true
}

/// The owner's side of [`delegate`]: wire the shim another copy describes as this copy's
/// own. 0 if its tables are not sound (the other copy then does the work itself).
extern "C" fn wire_for_another_copy(delegation: *const c_void) -> libc::c_int {
    // SAFETY: the interposer hands this entry only to copies whose shim code is this one's,
    // which pass a Delegation of this layout, valid for the call. Its tables are the
    // shim's statics, and the shim stays loaded for the rest of the process (`wire` pins
    // it), so they are 'static; `slots` and `missing_stubs` meet `init`'s contract.
    let (d, soname, strings, entries) = unsafe {
        let d = &*(delegation as *const Delegation);
        (
            d,
            std::slice::from_raw_parts(d.soname, d.soname_len),
            std::slice::from_raw_parts(d.strings, d.strings_len),
            std::slice::from_raw_parts(d.entries, d.entries_len),
        )
    };
    let Some(lib) = std::str::from_utf8(soname)
        .ok()
        .and_then(|soname| Library::from_parts(soname, strings, entries, d.functions))
    else {
        return 0;
    };
    let lib: &'static Library = Box::leak(Box::new(lib));
    // SAFETY: see above.
    let capsule = unsafe { wire(lib, d.slots, d.missing_stubs) };
    let path = capsule.path().as_os_str().as_bytes();
    let n = path.len().min(d.host_path_len.saturating_sub(1));
    // SAFETY: the caller's buffer holds host_path_len bytes; n + 1 of them are written.
    unsafe {
        std::ptr::copy_nonoverlapping(path.as_ptr(), d.host_path, n);
        *d.host_path.add(n) = 0;
    }
    1
}

/// Load `lib`'s real library into a capsule and wire the shim up to it: [`init`]'s work.
///
/// # Safety
/// As for [`init`].
unsafe fn wire(
    lib: &'static Library,
    slots: *mut usize,
    missing_stubs: *const u8,
) -> &'static Capsule {
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
        lib.function_count()
    );
    warn_if_different(lib, capsule, &missing);
    wire_program(lib, capsule, own_map, slots);
    crate::phase!("shim {}: the program's slots rewired", lib.soname);
    capsule
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
    let functions = lib.function_count();
    let remembered = cache
        .as_ref()
        .zip(real.as_ref())
        .and_then(|(cache, real)| cache.recall(functions, real));
    let bias = real.as_ref().map_or(0, |real| real.bias());
    let mut offsets = Vec::new();
    let mut missing = Vec::new();
    for i in 0..functions {
        // Checked by `recall`: inside the library's code.
        let recalled = remembered
            .as_ref()
            .and_then(|offsets| offsets.get(i))
            .filter(|&offset| offset != slot_cache::LOOK_UP)
            .and_then(|offset| usize::try_from(offset).ok());
        let target = match recalled {
            Some(offset) => bias + offset,
            // The symbol's strings are read only here: a remembered offset needs none.
            None => {
                let sym = lib.function(i);
                let own = match (&remembered, &real, &sym) {
                    (None, Some(real), Some(sym)) => defined_by(real, sym),
                    _ => None,
                };
                if remembered.is_none() {
                    offsets.push(own.and_then(|a| (a as usize).checked_sub(bias)));
                }
                match own.or_else(|| lookup(capsule, sym.as_ref()?)) {
                    Some(addr) => addr as usize,
                    None => {
                        missing.push(sym.map_or_else(String::new, |s| s.display_name()));
                        missing_stubs as usize + i * MISSING_STUB_STRIDE
                    }
                }
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
        .function(index)
        .map_or_else(|| format!("function #{index}"), |sym| sym.display_name());
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

    /// "\0foo\0FOO_1\0FOO_2\0counter\0"
    const STRINGS: &[u8] = b"\0foo\0FOO_1\0FOO_2\0counter\0";
    static ENTRIES: [Entry; 3] = [
        Entry::function(1, 5, false),
        Entry::function(1, 11, true),
        Entry::object(17, 0, true, 4),
    ];

    #[test]
    fn library_splits_functions_and_objects() {
        let lib = Library::new("libfoo.so.1", STRINGS, &ENTRIES, 2);
        assert_eq!(lib.function_count(), 2);
        let objects: Vec<Symbol> = lib.objects().collect();
        assert_eq!(objects.len(), 1);
        assert_eq!((objects[0].kind, objects[0].size), (Kind::Object, 4));
        assert_eq!(objects[0].name, c"counter");
        assert!(lib.function(2).is_none(), "an object is not a function");
        use std::cmp::Ordering::{Equal, Greater, Less};
        let order = |name: &[u8]| [0, 1, 2].map(|i| lib.compare_function_name(i, name));
        assert_eq!(order(b"foo"), [Equal, Equal, Less]);
        assert_eq!(order(b"fo"), [Greater, Greater, Less]);
        assert_eq!(order(b"fooo"), [Less, Less, Less]);
        assert_eq!(order(b"g"), [Less, Less, Less]);
        assert_eq!(order(b""), [Greater, Greater, Equal]);
    }

    #[test]
    fn functions_must_be_sorted_by_name() {
        assert!(sorted_by_name(STRINGS, &ENTRIES, 2));
        const NAMES: &[u8] = b"\0glVertex\0glBegin\0gl\0a\0";
        static UNSORTED: [Entry; 2] = [Entry::function(1, 0, false), Entry::function(10, 0, false)];
        assert!(!sorted_by_name(NAMES, &UNSORTED, 2));
        // A name before a longer name it begins; objects after the functions don't count.
        static PREFIXED: [Entry; 3] = [
            Entry::function(18, 0, false),
            Entry::function(10, 0, false),
            Entry::object(21, 0, true, 4),
        ];
        assert!(sorted_by_name(NAMES, &PREFIXED, 2));
        assert!(!sorted_by_name(NAMES, &PREFIXED, 3));
    }

    #[test]
    fn offsets_must_start_strings_of_the_table() {
        assert!(strings_sound(STRINGS, &ENTRIES));
        assert!(!strings_sound(STRINGS, &[Entry::function(99, 0, false)]));
        assert!(
            !strings_sound(b"\0foo", &[Entry::function(1, 0, false)]),
            "no final NUL"
        );
        assert!(
            !strings_sound(b"foo\0", &[Entry::function(0, 0, false)]),
            "no empty string"
        );
    }

    #[test]
    fn tables_handed_over_at_run_time_are_checked_as_new_checks_them() {
        assert!(Library::from_parts("libfoo.so.1", STRINGS, &ENTRIES, 2).is_some());
        static OUTSIDE: [Entry; 1] = [Entry::function(99, 0, false)];
        assert!(Library::from_parts("libfoo.so.1", STRINGS, &OUTSIDE, 1).is_none());
        const NAMES: &[u8] = b"\0b\0a\0";
        static UNSORTED: [Entry; 2] = [Entry::function(1, 0, false), Entry::function(3, 0, false)];
        assert!(Library::from_parts("libfoo.so.1", NAMES, &UNSORTED, 2).is_none());
    }

    #[test]
    fn display_names_follow_nm() {
        let lib = Library::new("libfoo.so.1", STRINGS, &ENTRIES, 2);
        let names: Vec<String> = lib.symbols().map(|s| s.display_name()).collect();
        assert_eq!(names, ["foo@FOO_1", "foo@@FOO_2", "counter"]);
    }
}
