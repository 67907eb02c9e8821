//! Forwarder objects: how a library the program has loaded is shared into a capsule.
//!
//! glibc cannot put one loaded object into two namespaces (no RTLD_SHARED). But a
//! namespace satisfies `DT_NEEDED libX.so.N` with any object in it whose `DT_SONAME` is
//! `libX.so.N`. So a forwarder is a small ELF object with the library's soname, symbol
//! versions and symbols, whose symbols ld.so resolves to the program's copy: ld.so then
//! binds the capsule straight to the program's functions and data (one libc, one
//! allocator, one `errno` and stdout; no per-call cost).
//!
//! The forwarder's file is the program copy's own tables (hash, symbols, strings,
//! versions), copied as they are, so it is the same in every process and is kept in the
//! cache directory. Its constructor *activates* it, inside its `dlmopen`, under ld.so's
//! lock, before any other load can bind to it (the constructor array is relocated against
//! the interposer's `capsule_forwarder_init`, which calls [`on_init`]): its link map's load
//! bias (`l_addr`, the public first field) becomes the program copy's, so that ld.so, which
//! binds to a symbol at `l_addr + st_value`, binds every symbol of the forwarder to the
//! copy's definition, IFUNCs included (their resolvers are the copy's and run as for the
//! program). Before that only `__libc_early_init`, which ld.so calls on the libc of every
//! new namespace while loading it, is used, and it is a `ret` of the forwarder's own (the
//! program's libc is set up already). Then the few symbols the program's global scope
//! takes from elsewhere (the executable's copy-relocated `stdout`, its own `malloc`, an
//! `LD_PRELOAD`) are made absolute (`SHN_ABS`, which ld.so binds with no load bias) with
//! that address.
//!
//! Left out: thread-local symbols (only glibc's own libraries use libc's, and those are
//! forwarded too; a TLS symbol would need a TLS block of the forwarder's own).
//!
//! Version skew: when the host's copy of a shared library (its file, read by `elffile`)
//! exports functions the program's copy lacks, each becomes a stub that aborts naming it,
//! the library and both files, if it is ever called (the capsule's `dlsym` does not return
//! stubs). Missing data symbols and versions are refused before loading
//! (`sharing::check_skew`).

mod image;
mod interposed;
pub mod remembered;

use std::ffi::c_void;
use std::ops::Range;
use std::path::Path;

use parking_lot::Mutex;

use crate::dynamic_tags::{DT_NULL, DT_VERDEF};
use crate::elf::{Binding, LinkMap, Object, RawSymbol, SymbolKind, SHN_ABS, SHN_UNDEF, SYM_SIZE};
use crate::elffile::{Exports, VERSYM_HIDDEN};
use crate::error::{Error, Result};
use crate::prefix::fs::Identity;
use crate::sharing::Scope;
use image::{Layout, Tables, RET_SIZE, STUB_SIZE};
use interposed::Interposition;
pub(crate) use remembered::MAX_SCOPE as MAX_REMEMBERED_SCOPE;

/// Any section index other than UNDEF and ABS: a value relative to the object.
const SHN_TEXT: u16 = 1;
const STB_GLOBAL: u8 = 1;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;

/// What a forwarder is made from.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub soname: &'a str,
    /// The program's copy (its link map: loaded in the program's namespace, never
    /// unloaded), and its file.
    pub program: *const LinkMap,
    pub program_path: &'a Path,
    /// The program copy's build ID, which names its contents (else its file's identity
    /// does).
    pub program_build_id: Option<&'a [u8]>,
    /// The host's copy, when it is another file: functions it has and the program's copy
    /// lacks become stubs (it is read only to write the forwarder's file).
    pub host: Option<&'a Path>,
    /// The objects before the copy in the program's scope, by build ID
    /// (`sharing::scope_key`): the file may remember its activation. None: it does not.
    pub scope: Option<&'a [u8]>,
    /// The activation to remember (see `remembered`), found by walking that scope.
    pub remembered: Option<&'a [Interposition]>,
}

/// The forwarder's file for `source`: the same in every process (nothing in it depends
/// on where anything is loaded).
pub(crate) fn image(source: &Source<'_>) -> Result<Vec<u8>> {
    // SAFETY: a program copy's link map, never unloaded (see `Source`).
    let program = unsafe { Object::from_link_map(source.program) }?;
    let program = &program;
    let raw = program.raw_tables()?;
    let soname = raw.soname.ok_or_else(|| Error::Malformed {
        object: source.program_path.display().to_string(),
        what: "dynamic section (no DT_SONAME: cannot be shared by name)".into(),
    })?;
    let mut tables = Tables {
        gnu_hash: raw.gnu_hash,
        hash: raw.hash.to_vec(),
        symbols: raw.symbols.to_vec(),
        strings: raw.strings.to_vec(),
        // Without version definitions, a DT_VERSYM only served the copy's own imports
        // (libxcb's, from libc), and ld.so, finding one with no versions to index, would
        // read a version for the forwarder's relocation from a null table.
        versym: raw
            .versym
            .filter(|_| raw.verdef.is_some())
            .map(<[u8]>::to_vec),
        verdef: raw.verdef.map(|(bytes, n)| (bytes.to_vec(), n)),
        soname,
        constructor: 0,
        extra_dynamic: Vec::new(),
    };
    for entry in tables.symbols.chunks_exact_mut(SYM_SIZE).skip(1) {
        let Some(mut sym) = RawSymbol::parse(entry) else {
            continue;
        };
        if sym.is_defined() && sym.binding() != Binding::Local && sym.kind() == SymbolKind::Tls {
            sym.info = sym.info & 0xf0 | STT_NOTYPE;
            sym.section = SHN_UNDEF;
            sym.value = 0;
            entry.copy_from_slice(&sym.to_bytes());
        }
    }
    let stubs = match source.host {
        Some(path) => {
            let host = crate::sharing::host_symbols(path)?;
            let exports = host.exports().map_err(crate::sharing::bad_elf(path))?;
            missing_functions(program, &exports)?
        }
        None => Vec::new(),
    };
    let copied = raw.symbols.len() / SYM_SIZE;
    if !stubs.is_empty() {
        add_stubs(&mut tables, &stubs)?;
    } else if let Some(found) = source.remembered.filter(|_| source.scope.is_some()) {
        // (A forwarder with stubs is walked at each activation: its stubs are made
        // absolute then too.)
        tables.extra_dynamic = remembered::encode(found).unwrap_or_default();
    }
    let host_path = source.host.unwrap_or(Path::new("?"));
    let mut messages = Vec::new();
    let mut message_at = Vec::with_capacity(stubs.len());
    for stub in &stubs {
        message_at.push(messages.len());
        messages.extend_from_slice(
            format!(
                "capsule: {}{} was called, but the program's {} ({}) lacks it; the host's ({}) has it. The host's library needs a newer {} than the program's tree provides: update it there, or keep it private with CAPSULE_SHARE=-{}\n",
                stub.name,
                stub.version.as_deref().map_or(String::new(), |v| format!("@{v}")),
                source.soname,
                source.program_path.display(),
                host_path.display(),
                source.soname,
                source.soname,
            )
            .as_bytes(),
        );
        messages.push(0);
    }
    // The constructor array's relocation names the interposer's `capsule_forwarder_init`:
    // an import appended after every hashed symbol (imports are not looked up).
    tables.constructor = append_function(&mut tables, b"capsule_forwarder_init", SHN_UNDEF, 0, 1)?;
    let layout = Layout::new(&tables, messages.len(), stubs.len());
    let mut set_value = |index: usize, value: usize| {
        let entry = &mut tables.symbols[index * SYM_SIZE..][..SYM_SIZE];
        if let Some(mut sym) = RawSymbol::parse(entry) {
            sym.info = sym.info & 0xf0 | STT_FUNC;
            sym.section = SHN_TEXT;
            sym.value = value as u64;
            entry.copy_from_slice(&sym.to_bytes());
        }
    };
    if source.soname == "libc.so.6" {
        for index in program.symbols_named(b"__libc_early_init")? {
            set_value(index as usize, layout.text);
        }
    }
    let mut code = Vec::with_capacity(stubs.len() * STUB_SIZE);
    for (i, at) in message_at.iter().enumerate() {
        let stub = layout.text + RET_SIZE + i * STUB_SIZE;
        set_value(copied + i, stub);
        code.extend_from_slice(&image::stub_code(stub, layout.messages + at, layout.slot));
    }
    Ok(image::write(&tables, &messages, &code, &layout))
}

/// Write the file `name` of the cache directory: `source`'s forwarder, remembering what
/// the walk of its scope `found` (see `remembered`). `Err` says why not.
pub(crate) fn remember(
    source: Source<'_>,
    name: &str,
    found: &[Interposition],
) -> std::result::Result<(), String> {
    if remembered::encode(found).is_none() {
        return Err("what the walk found cannot be remembered (too far into the scope)".into());
    }
    // Checked before the image is made: where nothing can be written (no cache, a
    // read-only one), every run walks, and should not pay for an image too.
    let dir = crate::disk_cache::writable_dir()?;
    let source = Source {
        remembered: Some(found),
        ..source
    };
    let image = image(&source).map_err(|e| e.to_string())?;
    crate::disk_cache::store(&dir, &dir.join(name), &image)
}

/// The cache file name of the forwarder for `source`: everything [`image`] depends on
/// (the two copies' files, by path and identity, the scope whose walk it remembers, this
/// build of the module and of the architecture code it writes, and the machine).
pub(crate) fn file_name(source: &Source<'_>) -> String {
    use std::os::unix::ffi::OsStrExt;
    let identity = |path: &Path| {
        let meta = std::fs::metadata(path).ok();
        format!("{:?}", meta.as_ref().map(Identity::of))
    };
    let mut key: Vec<u8> = Vec::with_capacity(256 + source.scope.map_or(0, <[u8]>::len));
    let mut part = |bytes: &[u8]| {
        key.extend_from_slice(bytes);
        key.push(0);
    };
    part(source.soname.as_bytes());
    part(source.program_path.as_os_str().as_bytes());
    // The loaded copy's build ID is read from memory (no stat of its file), and names what
    // the forwarder is made from even where the file was replaced since.
    match source.program_build_id {
        Some(id) => {
            part(b"build-id");
            part(id);
        }
        None => part(identity(source.program_path).as_bytes()),
    }
    if let Some(host) = source.host {
        part(host.as_os_str().as_bytes());
        part(identity(host).as_bytes());
    }
    // The raw build IDs, not their text: a scope of thirty objects formatted cost 10 us.
    if let Some(scope) = source.scope {
        part(b"scope");
        part(scope);
    }
    part(env!("CAPSULE_FORWARDER_ID").as_bytes());
    part(crate::machine::Machine::NATIVE.name().as_bytes());
    format!(
        "forward-{}-{:016x}.so",
        source.soname,
        crate::disk_cache::fnv1a(&key)
    )
}

/// A forwarder being loaded, which its constructor activates (see [`on_init`]).
struct Pending {
    lmid: libc::Lmid_t,
    soname: String,
    /// The namespace's first object: the forwarder is the last one while it loads.
    head: usize,
    /// The program copy's link map.
    program: usize,
    result: Option<Result<Activated>>,
}

static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

/// Announce that `soname`'s forwarder is about to be loaded into namespace `lmid` (whose
/// first object is `head`), forwarding to the copy whose link map is `program`.
pub(crate) fn expect(
    lmid: libc::Lmid_t,
    soname: &str,
    head: *const LinkMap,
    program: *const LinkMap,
) {
    PENDING.lock().push(Pending {
        lmid,
        soname: soname.to_string(),
        head: head as usize,
        program: program as usize,
        result: None,
    });
}

/// What the constructor of the forwarder [`expect`]ed did; `None` if it did not run (the
/// same file was loaded into the namespace already, by another thread).
pub(crate) fn outcome(lmid: libc::Lmid_t, soname: &str) -> Option<Result<Activated>> {
    let mut pending = PENDING.lock();
    let at = pending
        .iter()
        .position(|p| p.lmid == lmid && p.soname == soname && p.result.is_some())
        .or_else(|| {
            pending
                .iter()
                .position(|p| p.lmid == lmid && p.soname == soname)
        })?;
    pending.remove(at).result
}

/// The forwarders' constructor (through the interposer's `capsule_forwarder_init`): it
/// runs inside the forwarder's `dlmopen`, under ld.so's lock, so no other load binds to
/// the forwarder before it is activated.
pub(crate) extern "C" fn on_init(lmid: libc::c_long) {
    let job = {
        let pending = PENDING.lock();
        pending
            .iter()
            .find(|p| p.lmid == lmid && p.result.is_none())
            .map(|p| (p.soname.clone(), p.head, p.program))
    };
    let Some((soname, head, program)) = job else {
        return;
    };
    // SAFETY: the namespace's link maps are live (ld.so holds its lock for us); the newest
    // object is the forwarder whose constructor this is, and the program copy is never
    // unloaded.
    let result =
        unsafe { activate_newest(&soname, head as *const LinkMap, program as *const LinkMap) };
    let mut pending = PENDING.lock();
    if let Some(p) = pending
        .iter_mut()
        .find(|p| p.lmid == lmid && p.soname == soname && p.result.is_none())
    {
        p.result = Some(result);
    }
}

/// Activate the last object of the namespace headed by `head`, checked to be `soname`'s
/// forwarder: from what its file remembers (see `remembered`), else by walking the
/// program's scope.
///
/// # Safety
/// As [`activate`]; `head` and `program` are live link maps.
unsafe fn activate_newest(
    soname: &str,
    head: *const LinkMap,
    program: *const LinkMap,
) -> Result<Activated> {
    // SAFETY: forwarded from this function's contract.
    let newest = unsafe {
        let mut map = head;
        while !(*map).l_next.is_null() {
            map = (*map).l_next;
        }
        map as *mut LinkMap
    };
    // SAFETY: the newest object of a live namespace, loaded by ld.so.
    let dynamic = unsafe { remembered::dynamic_of(newest) };
    // SAFETY: as above (checked to be a forwarder below before anything else is read).
    let name = unsafe { remembered::soname_of(&dynamic) };
    if name.map(std::ffi::CStr::to_bytes) != Some(soname.as_bytes()) {
        return Err(Error::Malformed {
            // SAFETY: as above.
            object: unsafe { (*newest).name() }.to_string_lossy().into_owned(),
            what: format!("forwarder: its soname is not {soname}"),
        });
    }
    // What the file remembers, if it is whole and still names what it named; else the
    // scope is walked (and the file rewritten by the caller).
    let set_aside = match remembered::decode(dynamic) {
        Ok(None) => None,
        // SAFETY: forwarded from this function's contract.
        Ok(Some(entries)) => match unsafe { activate_remembered(newest, program, &entries) }? {
            Ok(activated) => return Ok(activated),
            Err(why) => Some(why),
        },
        // SAFETY: as above.
        Err(why) => Some(format!(
            "{}: {why}",
            unsafe { (*newest).name() }.to_string_lossy()
        )),
    };
    if let Some(why) = set_aside {
        crate::debug!(Libs, "{why}; walking the program's scope instead");
    }
    // The copy's view (kept for later forwarders of the same copy: see `sharing::views_of`).
    // SAFETY: as above.
    let copy = unsafe { crate::sharing::views_of(&[program]) }
        .pop()
        .ok_or_else(|| Error::Malformed {
            object: soname.to_string(),
            what: "program copy: no view".into(),
        })??;
    // SAFETY: as above.
    let object = unsafe { Object::from_link_map(newest) }?;
    // SAFETY: forwarded from this function's contract (ld.so's lock is held).
    let scope = unsafe { Scope::before(program) };
    // SAFETY: forwarded from this function's contract.
    unsafe { activate(newest, &object, &copy, &scope) }
}

/// What activating a forwarder did.
#[derive(Default)]
pub(crate) struct Activated {
    /// Functions of the host's copy that are stubs.
    pub stubs: Vec<String>,
    /// Symbols bound to an object before the program's copy in its scope.
    pub interposed: usize,
    /// What the walk of the program's scope found, for the file to remember; None when
    /// the file remembered it.
    pub walked: Option<Vec<Interposition>>,
}

/// Make the forwarder just loaded at `forwarder` forward to the program's copy (see the
/// module doc).
///
/// # Safety
/// `forwarder` must be the link map of an object loaded from [`image`] of this same
/// program copy, to which nothing has bound yet (its namespace is still being set up, or
/// the caller holds the namespace's loading lock), and it must never be unloaded.
unsafe fn activate(
    forwarder: *mut LinkMap,
    object: &Object<'_>,
    program: &Object<'_>,
    scope: &Scope<'_>,
) -> Result<Activated> {
    let copied = program.symbol_count();
    if object.symbol_count() < copied {
        return Err(Error::Malformed {
            object: object.name().to_string(),
            what: format!(
                "forwarder: {} symbols, fewer than the {copied} of the program's copy (a stale cache file: delete it)",
                object.symbol_count()
            ),
        });
    }
    let found = interposed::interposed(program, scope)?;
    let mut absolute: Vec<(u32, usize, bool)> = found
        .iter()
        .map(|f| (f.target, f.address, f.ifunc))
        .collect();
    let mut stubs = Vec::new();
    for index in copied..object.symbol_count() {
        if let Some(stub) = object.symbol_at(index)? {
            stubs.push(stub.name.to_string());
            absolute.push((index, stub.address, false));
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { make_absolute(object, &absolute) }?;
    if !stubs.is_empty() {
        // SAFETY: the stubs' jump slot is the first word of the forwarder's writable
        // page, right before its dynamic section (image.rs), which the link map locates.
        unsafe {
            let slot = ((*forwarder).l_ld as usize - image::SLOT_BEFORE_DYNAMIC) as *mut usize;
            slot.write(stub_called as *const () as usize);
        }
        if let Some(code) = object.load_segments().find(|s| s.flags.execute) {
            register_stubs(code.address + RET_SIZE..code.range().end);
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { rebase(forwarder, program.bias()) };
    Ok(Activated {
        stubs,
        interposed: found.len(),
        walked: Some(found),
    })
}

/// [`activate`] from what the forwarder's file remembers: only the symbols it names are
/// looked up, in the objects it names. `Ok(Err(why))`: an entry does not name what it
/// names in this process (nothing was changed; the caller walks the scope instead).
///
/// # Safety
/// As [`activate`]; `program` is the copy's live link map.
unsafe fn activate_remembered(
    forwarder: *mut LinkMap,
    program: *const LinkMap,
    entries: &[remembered::Entry],
) -> Result<std::result::Result<Activated, String>> {
    if !entries.is_empty() {
        // SAFETY: forwarded from this function's contract.
        let object = unsafe { Object::from_link_map(forwarder) }?;
        // SAFETY: as above (ld.so's lock is held).
        let maps = unsafe { crate::sharing::maps_before(program) };
        let stale = |what: String| Ok(Err(format!("{}: remembers {what}", object.name())));
        // The objects the entries name, each viewed once (one dl_iterate_phdr walk).
        let mut named: Vec<usize> = entries.iter().map(|e| e.object).collect();
        named.sort_unstable();
        named.dedup();
        let Some(named_maps) = named
            .iter()
            .map(|&i| maps.get(i).copied())
            .collect::<Option<Vec<_>>>()
        else {
            return stale(format!("an object past the {} of the scope", maps.len()));
        };
        // SAFETY: live link maps before the copy (ld.so's lock is held).
        let views = unsafe { crate::sharing::views_of(&named_maps) }
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        let mut absolute = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some(view) = named
                .iter()
                .position(|&i| i == entry.object)
                .map(|at| &views[at])
            else {
                return stale(format!("object {} of the scope", entry.object));
            };
            let Some(definition) = view.symbol_at(entry.symbol)? else {
                return stale(format!("symbol {} of {}", entry.symbol, view.name()));
            };
            let wanted = object.symbol_name_bytes(entry.target)?;
            if definition.name.as_bytes() != wanted {
                return stale(format!(
                    "{} of {} for {}",
                    definition.name,
                    view.name(),
                    String::from_utf8_lossy(wanted)
                ));
            }
            let f = interposed::as_defined(entry.target, entry.object, &definition);
            absolute.push((f.target, f.address, f.ifunc));
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { make_absolute(&object, &absolute) }?;
    }
    // SAFETY: forwarded from this function's contract; the copy is never unloaded.
    unsafe { rebase(forwarder, (*program).l_addr) };
    Ok(Ok(Activated {
        stubs: Vec::new(),
        interposed: entries.len(),
        walked: None,
    }))
}

/// Make the forwarder's symbols `absolute` (index, address, turned into a function)
/// absolute at those addresses.
///
/// # Safety
/// As [`activate`]: nothing has bound to the forwarder yet.
unsafe fn make_absolute(object: &Object<'_>, absolute: &[(u32, usize, bool)]) -> Result<()> {
    let mut writes = Vec::with_capacity(absolute.len());
    for &(index, value, function) in absolute {
        let address = object.symbol_entry_address(index)?;
        let mut sym = object.raw_symbol(index)?;
        sym.section = SHN_ABS;
        sym.value = value as u64;
        if function {
            sym.info = sym.info & 0xf0 | STT_FUNC;
        }
        writes.push((address, sym.to_bytes()));
    }
    // SAFETY: each write replaces one whole symbol entry with the same entry, absolute.
    unsafe { crate::patch::write_read_only(object, "forwarder symbol", &writes) }
}

/// Give the forwarder the copy's load bias `copy`.
///
/// # Safety
/// As [`activate`].
unsafe fn rebase(forwarder: *mut LinkMap, copy: usize) {
    // SAFETY: l_addr is the public first field of glibc's link map; ld.so reads it when it
    // binds to this object's symbols, which nothing has done yet (contract). DT_VERDEF is
    // the one pointer entry of the dynamic section (in the forwarder's writable page) that
    // ld.so keeps unrelocated and adds l_addr to when it reads it (checking a needer's
    // versions): it moves by the opposite amount.
    unsafe {
        let real = (*forwarder).l_addr;
        // ElfN_Dyn: two words, tag and value.
        let mut entry = (*forwarder).l_ld as *mut usize;
        while *entry as u64 != DT_NULL {
            if *entry as u64 == DT_VERDEF {
                let value = entry.add(1);
                *value = (*value).wrapping_add(real).wrapping_sub(copy);
            }
            entry = entry.add(2);
        }
        (*forwarder).l_addr = copy;
    }
}

/// One function of the host's copy that the program's copy lacks.
struct Missing {
    name: String,
    version: Option<String>,
    /// DT_VERSYM entry for it (the program copy's index of its version, hidden bit).
    versym: u16,
}

/// Functions the host's copy exports that the program's copy lacks, in versions the
/// program's copy defines (a missing version is refused before loading anyway).
fn missing_functions(program: &Object<'_>, host: &Exports<'_>) -> Result<Vec<Missing>> {
    let mut out: Vec<Missing> = Vec::new();
    for export in host.iter() {
        if !export.is_function() || export.is_absolute() {
            continue;
        }
        let name = export.symbol.name.as_str();
        if program.lookup(name, export.version)?.is_some() {
            continue;
        }
        let versym = match export.version {
            None => 1,
            Some(v) => match program.version_index(v)? {
                Some(index) => index | if export.hidden { VERSYM_HIDDEN } else { 0 },
                None => continue,
            },
        };
        if out
            .iter()
            .any(|m| m.name == name && m.version.as_deref() == export.version)
        {
            continue;
        }
        out.push(Missing {
            name: name.to_string(),
            version: export.version.map(str::to_string),
            versym,
        });
    }
    Ok(out)
}

/// Append the stubs to the tables; their values are filled once the layout is known. The
/// copied GNU hash table cannot take new symbols in place (its chains are sorted by
/// bucket), so a System V one is built over every symbol instead.
fn too_many() -> Error {
    Error::Malformed {
        object: "forwarder".into(),
        what: "too many symbols".into(),
    }
}

/// Append a global function symbol `name` (its value set later) with version index
/// `versym` (ignored without version definitions, where every symbol is unversioned);
/// returns its index.
fn append_function(
    tables: &mut Tables,
    name: &[u8],
    section: u16,
    size: u64,
    versym: u16,
) -> Result<u32> {
    let index = u32::try_from(tables.symbols.len() / SYM_SIZE).map_err(|_| too_many())?;
    let offset = u32::try_from(tables.strings.len()).map_err(|_| too_many())?;
    tables.strings.extend_from_slice(name);
    tables.strings.push(0);
    let entry = RawSymbol {
        name: offset,
        info: STB_GLOBAL << 4 | STT_FUNC,
        other: 0,
        section,
        value: 0,
        size,
    };
    tables.symbols.extend_from_slice(&entry.to_bytes());
    if let Some(table) = &mut tables.versym {
        table.extend_from_slice(&versym.to_le_bytes());
    }
    Ok(index)
}

fn add_stubs(tables: &mut Tables, stubs: &[Missing]) -> Result<()> {
    for stub in stubs {
        append_function(
            tables,
            stub.name.as_bytes(),
            SHN_TEXT,
            STUB_SIZE as u64,
            stub.versym,
        )?;
    }
    let names: Vec<&[u8]> = tables
        .symbols
        .chunks_exact(SYM_SIZE)
        .map(|e| {
            RawSymbol::parse(e)
                .and_then(|sym| crate::elf::c_str_at(&tables.strings, sym.name as usize))
                .unwrap_or_default()
        })
        .collect();
    tables.hash = image::sysv_hash_table(&names);
    tables.gnu_hash = false;
    Ok(())
}

/// A stub was called: say which, and abort (the caller expected a function that the
/// program's copy of the library does not have).
extern "C" fn stub_called(message: *const libc::c_char) -> ! {
    // SAFETY: the stub passes its leaked NUL-terminated message; write(2) and abort(3)
    // are async-signal-safe.
    unsafe {
        let len = libc::strlen(message);
        libc::write(2, message as *const c_void, len);
        libc::abort()
    }
}

/// The stubs' code of every loaded forwarder, as absolute address ranges.
static STUB_CODE: Mutex<Vec<Range<usize>>> = Mutex::new(Vec::new());

/// Note where a loaded forwarder's stubs lie.
fn register_stubs(code: Range<usize>) {
    if !code.is_empty() {
        STUB_CODE.lock().push(code);
    }
}

/// Whether `address` is a forwarder's stub (the capsule's `dlsym` answers NULL for those,
/// as it would for a function the library lacks).
pub(crate) fn is_stub(address: usize) -> bool {
    STUB_CODE.lock().iter().any(|r| r.contains(&address))
}
