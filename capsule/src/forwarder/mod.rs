//! Forwarder objects: how a library the program has loaded is shared into a capsule.
//!
//! glibc cannot put one loaded object into two namespaces (no RTLD_SHARED). But a
//! namespace satisfies `DT_NEEDED libX.so.N` with any object in it whose `DT_SONAME` is
//! `libX.so.N`, and ld.so binds to an absolute symbol (`SHN_ABS`) at its value, with no
//! load bias (glibc >= 2.28). So a forwarder is a small ELF object with the library's
//! soname, symbol versions and symbols, each absolute, valued with the address the
//! program's global scope gives that name and version: the program's copy, or an object
//! before it in the scope (the executable's copy-relocated `stdout`, its own `malloc`, an
//! `LD_PRELOAD`). ld.so then binds the capsule straight to the program's functions and
//! data: one libc, one allocator, one `errno` and stdout, no per-call cost.
//!
//! The forwarder copies the program copy's own tables (hash, symbols, strings, versions)
//! and patches only the values, so it costs a copy and a pass over the symbols, not a
//! rehash. Exceptions, each as ld.so would see the program's copy:
//! - IFUNCs are resolved now (their resolvers pick by CPU, as they did for the program);
//! - thread-local symbols are dropped (only glibc's own libraries use libc's, and those
//!   are forwarded too; a TLS symbol needs a TLS block of its object);
//! - `__libc_early_init`, which ld.so calls on the libc of every new namespace, returns at
//!   once: the program's libc is initialised already.
//!
//! Version skew: when the host's copy of a shared library exports functions the program's
//! copy lacks, each becomes a stub that aborts naming it, the library and both files, if
//! it is ever called (the capsule's `dlsym` does not return stubs). Missing data symbols
//! and versions are refused before loading (`sharing::check_skew`).

mod image;

use std::ffi::{c_void, CString};
use std::ops::Range;
use std::path::Path;

use parking_lot::Mutex;

use crate::elf::{Object, SymbolKind};
use crate::error::{Error, Result};
use image::{Layout, Tables, SYM_SIZE};

const SHN_UNDEF: u16 = 0;
const SHN_ABS: u16 = 0xfff1;
/// Any section index other than UNDEF and ABS: a value relative to the forwarder.
const SHN_TEXT: u16 = 1;
const STB_LOCAL: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STT_NOTYPE: u8 = 0;
const STT_FUNC: u8 = 2;
const STT_TLS: u8 = 6;
const STT_GNU_IFUNC: u8 = 10;
const VERSYM_HIDDEN: u16 = 0x8000;
/// One stub's code, padded.
const STUB_SIZE: usize = 32;

/// What a forwarder is made from.
pub(crate) struct Source<'a> {
    pub soname: &'a str,
    /// The program's copy, loaded in the program's namespace, and its file.
    pub program: &'a Object<'a>,
    pub program_path: &'a Path,
    /// Objects before the program's copy in the program's global scope, in order: their
    /// definitions win over the copy's, as they do for the program.
    pub interposers: &'a [Object<'a>],
    /// The host's copy (a file image) and its path: functions it has and the program's
    /// copy lacks become stubs.
    pub host: Option<(&'a Object<'a>, &'a Path)>,
}

/// A forwarder's file, and the functions that are stubs in it.
pub(crate) struct Forwarder {
    pub image: Vec<u8>,
    pub stubs: Vec<String>,
    /// Where the stubs' code lies, relative to the forwarder's load bias.
    pub stub_code: Range<usize>,
}

/// Write the forwarder for `source`.
pub(crate) fn build(source: &Source<'_>) -> Result<Forwarder> {
    let program = source.program;
    let raw = program.raw_tables()?;
    let soname = raw.soname.ok_or_else(|| Error::Malformed {
        object: source.program_path.display().to_string(),
        what: "dynamic section (no DT_SONAME: cannot be shared by name)".into(),
    })?;
    let mut symbols = raw.symbols.to_vec();
    let bias = program.bias();
    let early_init = (source.soname == "libc.so.6")
        .then(|| program.symbols_named(b"__libc_early_init"))
        .transpose()?
        .unwrap_or_default();
    for (index, entry) in symbols.chunks_exact_mut(SYM_SIZE).enumerate().skip(1) {
        let mut sym = Sym::read(entry);
        if sym.section == SHN_UNDEF || sym.info >> 4 == STB_LOCAL || sym.section == SHN_ABS {
            continue;
        }
        match sym.info & 0xf {
            STT_TLS => {
                sym.info = sym.info & 0xf0 | STT_NOTYPE;
                sym.section = SHN_UNDEF;
                sym.value = 0;
            }
            STT_GNU_IFUNC => {
                sym.info = sym.info & 0xf0 | STT_FUNC;
                sym.section = SHN_ABS;
                sym.value = resolve_ifunc(bias.wrapping_add(sym.value as usize)) as u64;
            }
            _ => {
                sym.section = SHN_ABS;
                sym.value = bias.wrapping_add(sym.value as usize) as u64;
            }
        }
        if early_init.contains(&(index as u32)) {
            sym.info = sym.info & 0xf0 | STT_FUNC;
            sym.value = libc_early_init as *const () as u64;
        }
        sym.write(entry);
    }
    apply_interposers(source, &mut symbols)?;

    let stubs = match source.host {
        Some(host) => missing_functions(program, host.0)?,
        None => Vec::new(),
    };
    let mut tables = Tables {
        gnu_hash: raw.gnu_hash,
        hash: raw.hash.to_vec(),
        symbols,
        strings: raw.strings.to_vec(),
        versym: raw.versym.map(<[u8]>::to_vec),
        verdef: raw.verdef.map(|(bytes, n)| (bytes.to_vec(), n)),
        soname,
    };
    if stubs.is_empty() {
        let layout = Layout::new(&tables, 0);
        return Ok(Forwarder {
            image: image::write(&tables, &[], &layout),
            stubs: Vec::new(),
            stub_code: 0..0,
        });
    }
    add_stubs(&mut tables, &stubs, raw.symbols.len() / SYM_SIZE)?;
    let layout = Layout::new(&tables, stubs.len() * STUB_SIZE);
    let first_stub = raw.symbols.len() / SYM_SIZE;
    let mut text = Vec::with_capacity(stubs.len() * STUB_SIZE);
    for (i, stub) in stubs.iter().enumerate() {
        let entry = &mut tables.symbols[(first_stub + i) * SYM_SIZE..][..SYM_SIZE];
        let mut sym = Sym::read(entry);
        sym.value = (layout.text + i * STUB_SIZE) as u64;
        sym.write(entry);
        let host_path = source.host.map_or(Path::new("?"), |(_, path)| path);
        let message = format!(
            "capsule: {}{} was called, but the program's {} ({}) lacks it; the host's ({}) has it. The host's library needs a newer {} than the program's tree provides: update it there, or keep it private with CAPSULE_SHARE=-{}\n",
            stub.name,
            stub.version.as_deref().map_or(String::new(), |v| format!("@{v}")),
            source.soname,
            source.program_path.display(),
            host_path.display(),
            source.soname,
            source.soname,
        );
        let message: &'static CString =
            Box::leak(Box::new(CString::new(message).unwrap_or_default()));
        text.extend_from_slice(&stub_code(
            message.as_ptr() as usize,
            stub_called as *const () as usize,
        ));
    }
    let image = image::write(&tables, &text, &layout);
    Ok(Forwarder {
        image,
        stubs: stubs.into_iter().map(|s| s.name).collect(),
        stub_code: layout.text..layout.text + text.len(),
    })
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
fn missing_functions(program: &Object<'_>, host: &Object<'_>) -> Result<Vec<Missing>> {
    let mut out: Vec<Missing> = Vec::new();
    for symbol in host.symbols() {
        let symbol = symbol?;
        if !matches!(symbol.kind, SymbolKind::Function | SymbolKind::Ifunc) || symbol.absolute {
            continue;
        }
        if program.lookup(symbol.name, symbol.version)?.is_some() {
            continue;
        }
        let versym = match symbol.version {
            None => 1,
            Some(v) => match program.version_index(v)? {
                Some(index) => index | if symbol.hidden { VERSYM_HIDDEN } else { 0 },
                None => continue,
            },
        };
        if out
            .iter()
            .any(|m| m.name == symbol.name && m.version.as_deref() == symbol.version)
        {
            continue;
        }
        out.push(Missing {
            name: symbol.name.to_string(),
            version: symbol.version.map(str::to_string),
            versym,
        });
    }
    Ok(out)
}

/// Append the stubs to the tables; their values are filled once the layout is known. The
/// copied GNU hash table cannot take new symbols in place (its chains are sorted by
/// bucket), so a System V one is built over every symbol instead.
fn add_stubs(tables: &mut Tables, stubs: &[Missing], count: usize) -> Result<()> {
    let overflow = || Error::Malformed {
        object: "forwarder".into(),
        what: "too many symbols".into(),
    };
    let versym = tables.versym.get_or_insert_with(|| vec![0; count * 2]);
    for stub in stubs {
        let name = u32::try_from(tables.strings.len()).map_err(|_| overflow())?;
        tables.strings.extend_from_slice(stub.name.as_bytes());
        tables.strings.push(0);
        let mut entry = [0u8; SYM_SIZE];
        Sym {
            name,
            info: STB_GLOBAL << 4 | STT_FUNC,
            section: SHN_TEXT,
            value: 0,
            size: STUB_SIZE as u64,
        }
        .write(&mut entry);
        tables.symbols.extend_from_slice(&entry);
        versym.extend_from_slice(&stub.versym.to_le_bytes());
    }
    let names: Vec<&[u8]> = tables
        .symbols
        .chunks_exact(SYM_SIZE)
        .map(|e| {
            let offset = Sym::read(e).name as usize;
            let rest = tables.strings.get(offset..).unwrap_or_default();
            &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
        })
        .collect();
    tables.hash = image::sysv_hash_table(&names);
    tables.gnu_hash = false;
    Ok(())
}

/// Point each symbol that an earlier object of the program's scope defines at that
/// definition, as ld.so's lookup in the program's global scope would.
fn apply_interposers(source: &Source<'_>, symbols: &mut [u8]) -> Result<()> {
    let program = source.program;
    let mut taken = vec![false; symbols.len() / SYM_SIZE];
    for object in source.interposers {
        for (index, hash) in object.hashed_symbols() {
            // The table keeps 31 bits of the hash: try both values of the last one.
            if !program.may_define(hash) && !program.may_define(hash | 1) {
                continue;
            }
            let Some(definition) = object.symbol_at(index)? else {
                continue;
            };
            if definition.absolute || definition.kind == SymbolKind::Tls {
                continue;
            }
            for target in program.symbols_named(definition.name.as_bytes())? {
                let slot = target as usize;
                if taken[slot] || program.symbol_at(target)?.is_none() {
                    continue;
                }
                // An unversioned definition takes every version of the name; a
                // versioned one only its own.
                if let Some(wanted) = definition.version {
                    let own = program.symbol_at(target)?.and_then(|s| s.version);
                    if own != Some(wanted) {
                        continue;
                    }
                }
                let value = if definition.kind == SymbolKind::Ifunc {
                    resolve_ifunc(definition.address)
                } else {
                    definition.address
                };
                let entry = &mut symbols[slot * SYM_SIZE..][..SYM_SIZE];
                let mut sym = Sym::read(entry);
                if sym.info & 0xf == STT_NOTYPE && sym.section == SHN_UNDEF {
                    continue; // a TLS symbol, dropped above
                }
                sym.value = value as u64;
                sym.section = SHN_ABS;
                sym.write(entry);
                taken[slot] = true;
            }
        }
    }
    Ok(())
}

/// One `Elf64_Sym`.
struct Sym {
    name: u32,
    info: u8,
    section: u16,
    value: u64,
    size: u64,
}

impl Sym {
    fn read(e: &[u8]) -> Sym {
        Sym {
            name: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
            info: e[4],
            section: u16::from_le_bytes([e[6], e[7]]),
            value: u64::from_le_bytes(e[8..16].try_into().unwrap_or_default()),
            size: u64::from_le_bytes(e[16..24].try_into().unwrap_or_default()),
        }
    }

    fn write(&self, e: &mut [u8]) {
        e[0..4].copy_from_slice(&self.name.to_le_bytes());
        e[4] = self.info;
        e[6..8].copy_from_slice(&self.section.to_le_bytes());
        e[8..16].copy_from_slice(&self.value.to_le_bytes());
        e[16..24].copy_from_slice(&self.size.to_le_bytes());
    }
}

/// What ld.so calls on the libc of each new namespace: the program's libc is set up.
extern "C" fn libc_early_init(_initial: bool) {}

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

/// An IFUNC's implementation, asked of its resolver as ld.so asks it.
fn resolve_ifunc(resolver: usize) -> usize {
    // SAFETY: `resolver` is the address of an STT_GNU_IFUNC symbol of a loaded, relocated
    // object; on x86_64 ld.so calls resolvers with no arguments (they read the CPU
    // features ld.so set up at start), and a resolver has no other effect.
    unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(resolver)() }
}

/// x86_64: `movabs rdi, message; movabs rax, target; jmp rax`, padded with `int3`.
fn stub_code(message: usize, target: usize) -> [u8; STUB_SIZE] {
    let mut code = [0xcc; STUB_SIZE];
    code[0..2].copy_from_slice(&[0x48, 0xbf]);
    code[2..10].copy_from_slice(&(message as u64).to_le_bytes());
    code[10..12].copy_from_slice(&[0x48, 0xb8]);
    code[12..20].copy_from_slice(&(target as u64).to_le_bytes());
    code[20..22].copy_from_slice(&[0xff, 0xe0]);
    code
}

/// The stubs' code of every loaded forwarder, as absolute address ranges.
static STUB_CODE: Mutex<Vec<Range<usize>>> = Mutex::new(Vec::new());

/// Note where a loaded forwarder's stubs lie (its load bias and [`Forwarder::stub_code`]).
pub(crate) fn register_stubs(bias: usize, code: &Range<usize>) {
    if !code.is_empty() {
        STUB_CODE.lock().push(bias + code.start..bias + code.end);
    }
}

/// Whether `address` is a forwarder's stub (the capsule's `dlsym` answers NULL for those,
/// as it would for a function the library lacks).
pub(crate) fn is_stub(address: usize) -> bool {
    STUB_CODE.lock().iter().any(|r| r.contains(&address))
}
