//! One ELF object seen through its program headers and dynamic section: the public view
//! that the rest of the runtime (and the fuzz target) uses.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::ops::Range;

use super::dynamic::{read_dynamic, DynamicInfo, RELOC_TAGS, RELOC_TAG_NAMES};
use super::hash::{GnuTable, HashTable};
use super::layout::{
    reloc_fields, word_at, RawPhdr, CLASS, EHDR_SIZE, E_PHENTSIZE, E_PHNUM, E_PHOFF, RELOC_SIZE,
    WORD,
};
use super::memory::Memory;
use super::reloc::{relr_addresses, RelocTable, Slot};
use super::segment::{
    parse_program_headers, relro_pages, Segment, SegmentFlags, PHDR_SIZE, PT_DYNAMIC, PT_LOAD,
    PT_NOTE,
};
use super::symbol::{Binding, RawSymbol, Symbol, SymbolKind, SymbolTable, SHN_ABS, SYM_SIZE};
use super::version::{SymbolVersion, VersionTables};
use crate::bytes::{u16_at, u32_at};
use crate::error::{Error, Result};
use crate::machine::Machine;

/// A program header as glibc hands it (`dl_iterate_phdr`, `getauxval(AT_PHDR)`):
/// `Elf64_Phdr` or, in a 32-bit process, `Elf32_Phdr`.
pub type ProgramHeader = super::layout::Phdr;

/// The public prefix of glibc's `struct link_map` (`<link.h>`); glibc's private fields
/// follow it in memory and are never read.
#[repr(C)]
#[derive(Debug)]
pub struct LinkMap {
    /// Load bias: the difference between addresses in memory and in the file.
    pub l_addr: usize,
    /// The path the object was loaded from; empty for the main program.
    pub l_name: *const c_char,
    /// Address of the object's dynamic section in memory.
    pub l_ld: *const c_void,
    pub l_next: *const LinkMap,
    pub l_prev: *const LinkMap,
}

/// An object's dynamic tables, as bytes (see [`Object::raw_tables`]).
pub(crate) struct RawTables<'a> {
    /// DT_GNU_HASH (true) or DT_HASH.
    pub gnu_hash: bool,
    pub hash: &'a [u8],
    pub symbols: &'a [u8],
    pub strings: &'a [u8],
    pub versym: Option<&'a [u8]>,
    /// DT_VERDEF's bytes and its entry count.
    pub verdef: Option<(&'a [u8], u64)>,
    /// DT_SONAME's string offset.
    pub soname: Option<u64>,
}

impl LinkMap {
    /// The path the object was loaded from (`l_name`): empty for the main program.
    ///
    /// # Safety
    /// `self` must be a live link map of glibc's, which stays loaded while the name is
    /// used (glibc's `l_name` is a NUL-terminated string).
    pub unsafe fn name(&self) -> &CStr {
        if self.l_name.is_null() {
            return c"";
        }
        // SAFETY: forwarded from this function's contract.
        unsafe { CStr::from_ptr(self.l_name) }
    }

    /// [`LinkMap::name`] as a path.
    ///
    /// # Safety
    /// As for [`LinkMap::name`].
    pub unsafe fn path(&self) -> std::path::PathBuf {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: forwarded from this function's contract.
        let name = unsafe { self.name() };
        std::ffi::OsStr::from_bytes(name.to_bytes()).into()
    }
}

/// A view of one ELF object, live in this process or held as a file image.
#[derive(Debug)]
pub struct Object<'a> {
    name: String,
    bias: usize,
    memory: Memory<'a>,
    segments: Vec<Segment>,
    dynamic: DynamicInfo,
    symbols: SymbolTable<'a>,
    hash: Option<HashTable>,
    gnu: Option<GnuTable<'a>>,
    /// The symbol indices the hash table reaches by name.
    hashed: Range<u32>,
    versions: VersionTables,
}

impl<'a> Object<'a> {
    /// A view of the loaded object that `link_map` describes (from `dlinfo(RTLD_DI_LINKMAP)`
    /// or a walk along `l_next`). Works for every namespace, the main program and the vDSO.
    ///
    /// The program headers come from `dl_iterate_phdr` when the object is in this caller's
    /// namespace, else from the ELF header at `l_addr`: for shared objects the first PT_LOAD
    /// maps file offset 0 at virtual address 0, so the header is mapped there.
    ///
    /// # Safety
    /// `link_map` must point to a live `struct link_map` of this process, and the object
    /// must stay loaded (not `dlclose`d) for `'a`.
    pub unsafe fn from_link_map(link_map: *const LinkMap) -> Result<Object<'a>> {
        if link_map.is_null() {
            return Err(malformed("link map", "null link_map pointer"));
        }
        // SAFETY: the caller guarantees a live link map; the public prefix is plain data.
        let lm = unsafe { &*link_map };
        // SAFETY: as above.
        let name = unsafe { lm.name() }.to_string_lossy().into_owned();
        // SAFETY: forwarded from this function's contract.
        let found = unsafe { Object::from_loaded(&name, lm.l_addr, lm.l_ld as usize, None) };
        match found {
            Err(e) => match mapping_start(lm.l_ld) {
                // A capsule's forwarder carries the load bias of the library it forwards
                // to (see the forwarder module); its own mapping is the one holding its
                // dynamic section.
                // SAFETY: as above: the object's mapping starts there, with its header.
                Some(start) if start != lm.l_addr => unsafe {
                    Object::from_loaded(&name, start, lm.l_ld as usize, None)
                },
                _ => Err(e),
            },
            found => found,
        }
    }

    /// A view of a loaded object from its load bias, the address of its dynamic section
    /// and, where the caller has them (`dl_iterate_phdr`, `getauxval(AT_PHDR)`), its program
    /// headers. Without them they are found as [`Object::from_link_map`] describes.
    ///
    /// # Safety
    /// The object must be loaded at `bias` with its dynamic section at `dynamic`, `phdrs`
    /// (if given) must be its program headers, and it must stay loaded for `'a`.
    pub unsafe fn from_loaded(
        name: &str,
        bias: usize,
        dynamic: usize,
        phdrs: Option<&[ProgramHeader]>,
    ) -> Result<Object<'a>> {
        let name = if name.is_empty() {
            "main program".to_string()
        } else {
            name.to_string()
        };
        let segments = match phdrs {
            Some(phdrs) => segments_from_phdrs(phdrs, bias)
                .ok_or_else(|| malformed(&name, "program headers (address overflow)"))?,
            // SAFETY: forwarded from this function's contract.
            None => unsafe { find_program_headers(&name, bias, dynamic) }?,
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { Object::from_segments(name, bias, dynamic, segments) }
    }

    /// [`Object::from_link_map`] with the object's program headers given.
    ///
    /// # Safety
    /// As for [`Object::from_link_map`]; `phdrs` are the object's program headers.
    pub unsafe fn from_link_map_headers(
        map: *const LinkMap,
        phdrs: &[ProgramHeader],
    ) -> Result<Object<'a>> {
        // SAFETY: the caller guarantees a live link map; its name is NUL-terminated.
        let (name, bias, dynamic) = unsafe {
            let lm = &*map;
            (lm.name().to_string_lossy(), lm.l_addr, lm.l_ld as usize)
        };
        // SAFETY: forwarded from this function's contract.
        unsafe { Object::from_loaded(&name, bias, dynamic, Some(phdrs)) }
    }

    /// Whether this view of a live object still describes the object loaded at `bias`
    /// with its dynamic section at `dynamic` and program headers `phdrs`: the same
    /// segments (so the memory it reads is mapped as it was), and a dynamic section that
    /// reads the same (so every table is where the view has it). A view kept from an
    /// earlier load is used again only then.
    pub(crate) fn describes(&self, bias: usize, dynamic: usize, phdrs: &[ProgramHeader]) -> bool {
        let same_segments = self.memory.is_live()
            && self.bias == bias
            && phdrs.len() == self.segments.len()
            && phdrs
                .iter()
                .zip(&self.segments)
                .all(|(p, s)| Segment::from_raw(RawPhdr::from_libc(p), bias).as_ref() == Some(s));
        same_segments
            && self
                .segments
                .iter()
                .any(|s| s.kind == PT_DYNAMIC && s.address == dynamic)
            && read_dynamic(&self.memory, dynamic, bias).as_ref() == Ok(&self.dynamic)
    }

    /// A view of the object loaded at `bias` with its dynamic section at `dynamic` and
    /// these segments.
    ///
    /// # Safety
    /// As for [`Object::from_loaded`]; `segments` are the object's own.
    unsafe fn from_segments(
        name: String,
        bias: usize,
        dynamic: usize,
        segments: Vec<Segment>,
    ) -> Result<Object<'a>> {
        let declared = segments
            .iter()
            .find(|s| s.kind == PT_DYNAMIC)
            .map(|s| s.address);
        if declared != Some(dynamic) {
            return Err(malformed(
                &name,
                &format!("PT_DYNAMIC ({declared:#x?}) does not match l_ld ({dynamic:#x})"),
            ));
        }
        let ranges = segments
            .iter()
            .filter(|s| s.kind == PT_LOAD && s.flags.read)
            .map(|s| (s.address, s.mem_size));
        // SAFETY: the caller guarantees the object stays loaded for 'a; glibc maps every
        // readable PT_LOAD over its whole p_memsz, and after loading only relocation slots
        // change, which the views read atomically rather than through slices.
        let memory = unsafe { Memory::live(ranges) };
        Object::build(name, bias, memory, segments, dynamic)
    }

    /// A view of an ELF file image (a shared object or executable as stored on disk).
    /// Addresses are the file's virtual addresses (bias 0). Never panics, whatever `bytes`
    /// hold: this is the entry point for fuzzing the views.
    ///
    /// Only for tests and the `elf_image` fuzz target (public for the fuzz crate): the
    /// runtime reads files with [`crate::elffile`], the one reader of files.
    #[doc(hidden)]
    pub fn from_file_image(name: &str, bytes: &'a [u8]) -> Result<Object<'a>> {
        let header = bytes
            .get(..EHDR_SIZE)
            .ok_or_else(|| malformed(name, "ELF header (file too short)"))?;
        let (phoff, phnum) = check_elf_header(header).map_err(|what| malformed(name, what))?;
        let table = usize::try_from(phoff)
            .ok()
            .and_then(|off| bytes.get(off..))
            .ok_or_else(|| malformed(name, "program headers (outside the file)"))?;
        let segments = parse_program_headers(table, phnum, 0)
            .ok_or_else(|| malformed(name, "program headers (outside the file)"))?;
        let mut memory = Memory::image(bytes);
        for s in segments.iter().filter(|s| s.kind == PT_LOAD) {
            memory.add_file_segment(s.address as u64, s.file_offset, s.file_size);
        }
        let dynamic = segments
            .iter()
            .find(|s| s.kind == PT_DYNAMIC)
            .ok_or_else(|| {
                malformed(
                    name,
                    "program headers (no PT_DYNAMIC: not a dynamic object)",
                )
            })?
            .address;
        Object::build(name.to_string(), 0, memory, segments, dynamic)
    }

    fn build(
        name: String,
        bias: usize,
        memory: Memory<'a>,
        segments: Vec<Segment>,
        dynamic_address: usize,
    ) -> Result<Object<'a>> {
        let bad = |what: &str| malformed(&name, what);
        let dynamic = read_dynamic(&memory, dynamic_address, bias).map_err(bad)?;
        if dynamic.jmprel.is_some() && dynamic.pltrel != Some(RELOC_TAGS.0) {
            return Err(bad(&format!(
                "DT_PLTREL (must be {} on {})",
                if crate::arch::native::RELA {
                    "DT_RELA"
                } else {
                    "DT_REL"
                },
                Machine::NATIVE.name()
            )));
        }
        if dynamic.syment.is_some_and(|e| e != SYM_SIZE as u64) {
            return Err(bad("DT_SYMENT (not the size of this class's ElfN_Sym)"));
        }
        let strings = match (dynamic.strtab, dynamic.strsz) {
            (Some(at), Some(size)) => usize::try_from(size)
                .ok()
                .and_then(|size| memory.bytes(at, size))
                .ok_or_else(|| bad("DT_STRTAB/DT_STRSZ (string table outside the object)"))?,
            (None, None) if dynamic.symtab.is_none() => &[][..],
            _ => return Err(bad("DT_STRTAB/DT_STRSZ (one without the other)")),
        };
        let hash = dynamic
            .gnu_hash
            .map(HashTable::Gnu)
            .or(dynamic.hash.map(HashTable::Sysv));
        // `in_table`: how many symbols the hash table itself accounts for.
        let (address, count, in_table) = match (dynamic.symtab, hash) {
            (None, _) => (0, 0, 0),
            (Some(_), None) => return Err(bad(
                "dynamic section (DT_SYMTAB without DT_GNU_HASH or DT_HASH: symbol count unknown)",
            )),
            (Some(at), Some(hash)) => {
                let in_table = hash
                    .symbol_count(&memory)
                    .ok_or_else(|| bad("hash table (points outside the object)"))?;
                let count = exact_symbol_count(&memory, &dynamic, hash, in_table);
                (at, count, in_table)
            }
        };
        let entries = match (count as usize)
            .checked_mul(SYM_SIZE)
            .and_then(|len| memory.bytes(address, len))
        {
            Some(entries) => entries,
            None if count == 0 => &[][..],
            None => {
                return Err(bad(&format!(
                    "DT_SYMTAB ({count} symbols reach outside the object)"
                )))
            }
        };
        if let Some(versym) = dynamic.versym {
            if (count as usize)
                .checked_mul(2)
                .and_then(|len| memory.bytes(versym, len))
                .is_none()
            {
                return Err(bad(&format!(
                    "DT_VERSYM ({count} entries reach outside the object)"
                )));
            }
        }
        // The chains of the hashed symbols alone (an empty table has none).
        let gnu = hash.and_then(|h| h.gnu_table(&memory, in_table.min(count)));
        // The symbols a lookup by name can reach: DT_HASH chains every one; DT_GNU_HASH
        // those from symoffset to the end of its last chain, which for an executable that
        // exports nothing is none at all (binutils: one empty bucket, symoffset 1).
        let hashed = match (hash, &gnu) {
            (Some(HashTable::Sysv(_)), _) => 1.min(count)..count,
            (Some(HashTable::Gnu(_)), Some(table)) => {
                let start = table.symoffset().min(in_table);
                start..in_table.min(count)
            }
            _ => 0..0,
        };
        let versions = VersionTables {
            versym: dynamic.versym,
            verdef: dynamic.verdef.map(|at| (at, dynamic.verdefnum)),
            verneed: dynamic.verneed.map(|at| (at, dynamic.verneednum)),
        };
        Ok(Object {
            symbols: SymbolTable {
                address,
                count,
                entries,
                strings,
            },
            hashed,
            name,
            bias,
            memory,
            segments,
            dynamic,
            gnu,
            hash,
            versions,
        })
    }

    /// The object's path (`l_name`), "main program" for the program, or the name given to
    /// [`Object::from_file_image`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The load bias (`l_addr`); 0 for a file image.
    pub fn bias(&self) -> usize {
        self.bias
    }

    /// Whether this views a live object of this process (only those can be patched).
    pub fn is_live(&self) -> bool {
        self.memory.is_live()
    }

    /// Its DT_SONAME, if it has one.
    pub fn soname(&self) -> Result<Option<&'a str>> {
        let Some(offset) = self.dynamic.soname else {
            return Ok(None);
        };
        let offset = u32::try_from(offset).map_err(|_| self.malformed("DT_SONAME offset"))?;
        self.string(offset, "DT_SONAME").map(Some)
    }

    /// Its DT_NEEDED names, in order.
    pub fn needed(&self) -> Result<Vec<&'a str>> {
        self.dynamic_strings(&self.dynamic.needed, "DT_NEEDED")
    }

    fn dynamic_strings(&self, offsets: &[u64], what: &str) -> Result<Vec<&'a str>> {
        offsets
            .iter()
            .map(|&offset| {
                let offset =
                    u32::try_from(offset).map_err(|_| self.malformed(&format!("{what} offset")))?;
                self.string(offset, what)
            })
            .collect()
    }

    /// The version names it defines (DT_VERDEF; its base name included).
    pub fn defined_versions(&self) -> Result<Vec<&'a str>> {
        self.versions
            .defined_names(&self.memory, &self.symbols)
            .map_err(|what| self.malformed(what))
    }

    /// Whether the object has text relocations (DT_TEXTREL or DF_TEXTREL): its slots may
    /// lie in executable segments, which the patcher refuses to touch.
    pub fn has_text_relocations(&self) -> bool {
        self.dynamic.textrel
    }

    /// Every program header, addresses biased.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The PT_LOAD segments.
    pub fn load_segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter().filter(|s| s.kind == PT_LOAD)
    }

    /// The PT_LOAD segment that holds `address`.
    pub fn load_segment_at(&self, address: usize) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.kind == PT_LOAD && s.range().contains(&address))
    }

    /// The `p_flags` of the PT_LOAD segment that holds `address`.
    pub fn flags_at(&self, address: usize) -> Option<SegmentFlags> {
        self.load_segment_at(address).map(|s| s.flags)
    }

    /// The pages glibc made read-only after relocation (PT_GNU_RELRO rounded down at both
    /// ends to the page size, as `_dl_protect_relro` does).
    pub fn relro(&self) -> Option<Range<usize>> {
        relro_pages(&self.segments, page_size())
    }

    /// Whether `address` lies in the RELRO pages.
    pub fn in_relro(&self, address: usize) -> bool {
        self.relro().is_some_and(|r| r.contains(&address))
    }

    /// The PT_TLS segment: the object's TLS initialisation image.
    pub fn tls(&self) -> Option<&Segment> {
        self.segments.iter().find(|s| s.is_tls())
    }

    /// Entries in the dynamic symbol table (index 0, the null symbol, included).
    pub fn symbol_count(&self) -> u32 {
        self.symbols.count
    }

    /// The defined symbol `name`, found as `dlvsym` (with `version`: exactly that version,
    /// default or not) or `dlsym` (without: an unversioned definition, else the default
    /// `@@` version) would find it in this object alone. Symbols with value 0 are skipped
    /// as glibc skips them, except thread-local ones.
    pub fn lookup(&self, name: &str, version: Option<&str>) -> Result<Option<Symbol<'a>>> {
        let Some(hash) = self.hash else {
            return Ok(None);
        };
        let candidates = match &self.gnu {
            // The table as slices: no view lookups and no names compared but the hash's.
            Some(gnu) => gnu.candidates(crate::elf::hash::gnu_hash(name.as_bytes())),
            None => hash.candidates(&self.memory, name.as_bytes(), self.symbols.count),
        }
        .ok_or_else(|| self.malformed("hash table (chain points outside the object)"))?;
        let mut default = None;
        for index in candidates {
            // The name first: only a match is worth its version lookup.
            if self.symbol_name_bytes(index)? != name.as_bytes() {
                continue;
            }
            let Some(symbol) = self.defined_symbol(index)? else {
                continue;
            };
            if !binds_in_lookup(&symbol) {
                continue;
            }
            match (version, symbol.version) {
                (Some(wanted), Some(v)) if wanted == v => return Ok(Some(symbol)),
                (None, None) => return Ok(Some(symbol)),
                (None, Some(_)) if !symbol.hidden && default.is_none() => default = Some(symbol),
                _ => {}
            }
        }
        Ok(default)
    }

    /// Every defined, exported dynamic symbol (global, weak or unique binding; absolute
    /// version-name symbols included, marked [`Symbol::absolute`]), in table order.
    pub fn symbols(&self) -> impl Iterator<Item = Result<Symbol<'a>>> + '_ {
        (1..self.symbols.count).filter_map(|index| self.defined_symbol(index).transpose())
    }

    /// The name of symbol `index` (defined or imported).
    pub fn symbol_name(&self, index: u32) -> Result<&'a str> {
        let raw = self.raw_symbol(index)?;
        self.string(raw.name, "symbol name")
    }

    /// The name of symbol `index` as bytes, for comparisons that need no UTF-8 check.
    pub fn symbol_name_bytes(&self, index: u32) -> Result<&'a [u8]> {
        let raw = self.raw_symbol(index)?;
        self.symbols.string(raw.name).ok_or_else(|| {
            self.malformed(&format!(
                "symbol name (string offset {} outside DT_STRTAB)",
                raw.name
            ))
        })
    }

    /// The string table from symbol `index`'s name on (its name, its NUL, what follows).
    fn symbol_name_tail(&self, index: u32) -> Result<&'a [u8]> {
        // Read whole only to say what is wrong.
        self.symbols
            .name_tail(index)
            .ok_or_else(|| match self.raw_symbol(index) {
                Err(err) => err,
                Ok(raw) => self.malformed(&format!(
                    "symbol name (string offset {} outside DT_STRTAB)",
                    raw.name
                )),
            })
    }

    /// The version of symbol `index`: for a definition the version it defines, for an
    /// import the version it requires.
    pub fn symbol_version(&self, index: u32) -> Result<SymbolVersion<'a>> {
        let raw = self.raw_symbol(index)?;
        self.versions
            .of(&self.memory, &self.symbols, index, raw.is_defined())
            .map_err(|what| self.malformed(what))
    }

    /// The object's dynamic tables as bytes, for a forwarder that copies them.
    pub(crate) fn raw_tables(&self) -> Result<RawTables<'a>> {
        let count = self.symbols.count as usize;
        let hash = match self.hash {
            Some(h) => h
                .extent(&self.memory, self.symbols.count)
                .and_then(|len| Some((h, self.memory.bytes(h.address(), len)?)))
                .ok_or_else(|| self.malformed("hash table (outside the object)"))?,
            None => return Err(self.malformed("dynamic section (no hash table)")),
        };
        let symbols = self
            .memory
            .bytes(self.symbols.address, count * SYM_SIZE)
            .ok_or_else(|| self.malformed("DT_SYMTAB (outside the object)"))?;
        let versym = match self.versions.versym {
            Some(at) => Some(
                self.memory
                    .bytes(at, count * 2)
                    .ok_or_else(|| self.malformed("DT_VERSYM (outside the object)"))?,
            ),
            None => None,
        };
        let verdef = self
            .versions
            .verdef_bytes(&self.memory)
            .map_err(|what| self.malformed(what))?;
        Ok(RawTables {
            gnu_hash: matches!(hash.0, HashTable::Gnu(_)),
            hash: hash.1,
            symbols,
            strings: self.symbols.strings,
            versym,
            verdef,
            soname: self.dynamic.soname,
        })
    }

    /// The object's DT_GNU_HASH table, which keeps each hashed symbol's hash.
    pub(crate) fn gnu_table(&self) -> Option<GnuTable<'a>> {
        self.gnu
    }

    /// Whether a symbol whose GNU hash is `hash` but for its lowest bit may be defined here
    /// (false: certainly not; true: a symbol of that hash is, or there is no GNU table).
    #[inline]
    pub(crate) fn may_define(&self, hash: u32) -> bool {
        match (&self.gnu, self.hash) {
            (Some(gnu), _) => gnu.has_hash(hash),
            (None, hash_table) => hash_table.is_some(),
        }
    }

    /// The indices of every symbol named `name`, defined or not, any version.
    pub(crate) fn symbols_named(&self, name: &[u8]) -> Result<Vec<u32>> {
        let Some(hash) = self.hash else {
            return Ok(Vec::new());
        };
        let candidates = hash
            .candidates(&self.memory, name, self.symbols.count)
            .ok_or_else(|| self.malformed("hash table (chain points outside the object)"))?;
        let mut out = Vec::new();
        for index in candidates {
            if self.symbol_name_bytes(index)? == name {
                out.push(index);
            }
        }
        Ok(out)
    }

    /// Symbol `index` if it is a defined, exported one.
    pub(crate) fn symbol_at(&self, index: u32) -> Result<Option<Symbol<'a>>> {
        self.defined_symbol(index)
    }

    /// Where symbol `index`'s `Elf64_Sym` lies (in a live object: its address).
    pub(crate) fn symbol_entry_address(&self, index: u32) -> Result<usize> {
        if index >= self.symbols.count {
            return Err(self.malformed(&format!("symbol index {index} (outside the table)")));
        }
        Ok(self.symbols.address + index as usize * SYM_SIZE)
    }

    /// The DT_VERDEF index of the version `name`, if this object defines it.
    pub(crate) fn version_index(&self, name: &str) -> Result<Option<u16>> {
        self.versions
            .defined_index(&self.memory, &self.symbols, name)
            .map_err(|what| self.malformed(what))
    }

    /// Every symbol this object imports (undefined, not local): its index and name.
    pub(crate) fn imports(&self) -> impl Iterator<Item = (u32, &'a [u8])> + '_ {
        (1..self.symbols.count).filter_map(|index| {
            let raw = self.raw_symbol(index).ok()?;
            if raw.is_defined() || raw.binding() == Binding::Local {
                return None;
            }
            Some((index, self.symbols.string(raw.name)?))
        })
    }

    /// Every JUMP_SLOT, GLOB_DAT and R_X86_64_64 slot (from DT_JMPREL and DT_RELA) whose
    /// symbol is `name`.
    ///
    /// With `version`, only slots whose symbol carries exactly that version (the version an
    /// import requires, or the version a definition is in) match; unversioned slots do not,
    /// because an unversioned reference binds to whatever the provider's default is, which
    /// this object cannot tell. Ask without a version to get every slot of the name.
    pub fn slots(&self, name: &str, version: Option<&str>) -> Result<Vec<Slot>> {
        Ok(self
            .slots_matching(&[(name, version)])?
            .into_iter()
            .map(|(_, slot)| slot)
            .collect())
    }

    /// [`Object::slots`] for several (name, version) pairs in one pass over the relocation
    /// tables: each slot with the index of the first pair it matches. The symbols of those
    /// names are found first (most objects have none, and their relocations are not read).
    pub fn slots_matching(&self, wanted: &[(&str, Option<&str>)]) -> Result<Vec<(usize, Slot)>> {
        self.slots_of_symbols(&self.symbols_wanted(wanted)?)
    }

    /// The symbol slots of the symbols `symbols` lists by index (sorted), each with the
    /// tag it has there; no relocation is read when the list is empty.
    pub(crate) fn slots_of_symbols<T: Copy>(&self, symbols: &[(u32, T)]) -> Result<Vec<(T, Slot)>> {
        if symbols.is_empty() {
            return Ok(Vec::new());
        }
        self.slots_picked(|index| {
            if index >= self.symbols.count {
                // A relocation naming no symbol of the table: reading it says so.
                self.raw_symbol(index)?;
            }
            Ok(symbols
                .binary_search_by_key(&index, |&(symbol, _)| symbol)
                .ok()
                .map(|at| symbols[at].1))
        })
    }

    /// The symbols (defined or not) that match a pair of `wanted`, by index, each with the
    /// first pair it matches, sorted by index. The hash table finds the hashed ones by
    /// name; the others (a GNU table's before its `symoffset`, the imports as linkers lay
    /// them out, and all of an executable's that exports nothing) are compared one by one.
    fn symbols_wanted(&self, wanted: &[(&str, Option<&str>)]) -> Result<Vec<(u32, usize)>> {
        let mut named: Vec<(u32, usize)> = Vec::new();
        if !self.hashed.is_empty() {
            for (i, (name, _)) in wanted.iter().enumerate() {
                if wanted[..i].iter().any(|(earlier, _)| earlier == name) {
                    continue;
                }
                for index in self.symbols_named(name.as_bytes())? {
                    named.extend(
                        wanted
                            .iter()
                            .enumerate()
                            .filter(|(_, (n, _))| n == name)
                            .map(|(i, _)| (index, i)),
                    );
                }
            }
        }
        // A few names are compared directly; a map pays off for more.
        let by_name: Option<HashMap<&[u8], Vec<usize>>> = (wanted.len() > 8).then(|| {
            let mut map: HashMap<&[u8], Vec<usize>> = HashMap::new();
            for (i, (name, _)) in wanted.iter().enumerate() {
                map.entry(name.as_bytes()).or_default().push(i);
            }
            map
        });
        // The symbols no lookup by name reaches, compared one by one.
        let unhashed =
            (1..self.hashed.start.max(1)).chain(self.hashed.end.max(1)..self.symbols.count);
        for index in unhashed {
            match &by_name {
                Some(map) => {
                    let name = self.symbol_name_bytes(index)?;
                    named.extend(map.get(name).into_iter().flatten().map(|&i| (index, i)));
                }
                None => {
                    // Compared by their first bytes, with no need to find the name's end.
                    let name = self.symbol_name_tail(index)?;
                    for (i, (want, _)) in wanted.iter().enumerate() {
                        if names_at(name, want.as_bytes()) {
                            named.push((index, i));
                        }
                    }
                }
            }
        }
        named.sort_unstable();
        let mut symbols: Vec<(u32, usize)> = Vec::new();
        for (index, i) in named {
            if symbols.last().is_some_and(|&(last, _)| last == index) {
                continue;
            }
            let has = match self.symbol_version(index)? {
                SymbolVersion::Defined { name, .. } | SymbolVersion::Required { name, .. } => {
                    Some(name)
                }
                SymbolVersion::Unversioned => None,
            };
            if wanted[i].1.is_none_or(|v| Some(v) == has) {
                symbols.push((index, i));
            }
        }
        Ok(symbols)
    }

    /// The addresses the RELR table relocates. They only ever receive the load bias, never
    /// a symbol, so the patcher has no use for them; they are here for completeness.
    pub fn relative_relocations(&self) -> Result<Vec<usize>> {
        let (Some(at), Some(size)) = (self.dynamic.relr, self.dynamic.relrsz) else {
            return Ok(Vec::new());
        };
        if self.dynamic.relrent.is_some_and(|e| e != WORD as u64) {
            return Err(self.malformed(&format!("DT_RELRENT (not {WORD})")));
        }
        usize::try_from(size)
            .ok()
            .and_then(|size| relr_addresses(&self.memory, at, size, self.bias))
            .ok_or_else(|| self.malformed("DT_RELR (table outside the object)"))
    }

    /// The symbol slots of DT_JMPREL and DT_RELA (DT_REL on REL architectures) that `pick`
    /// chooses by their symbol index, with what it said of each.
    fn slots_picked<T>(
        &self,
        mut pick: impl FnMut(u32) -> Result<Option<T>>,
    ) -> Result<Vec<(T, Slot)>> {
        let d = &self.dynamic;
        // The relative relocations that open DT_RELA (as many as DT_RELACOUNT says, which
        // ld.so trusts too) name no symbol: not read. Thousands in a shim.
        let tables = [
            (
                d.jmprel,
                d.pltrelsz,
                Some(RELOC_SIZE as u64),
                0,
                "DT_JMPREL/DT_PLTRELSZ",
            ),
            (
                d.rela,
                d.relasz,
                d.relaent,
                d.relcount.unwrap_or(0),
                RELOC_TAG_NAMES,
            ),
        ];
        let mut slots = Vec::new();
        for (address, size, entry, relative, what) in tables {
            let Some(address) = address else { continue };
            let table = match (size.map(usize::try_from), entry.map(usize::try_from)) {
                (Some(Ok(size)), Some(Ok(entry_size))) => {
                    let skip = usize::try_from(relative)
                        .ok()
                        .and_then(|n| n.checked_mul(entry_size))
                        .map_or(size, |bytes| bytes.min(size));
                    RelocTable {
                        address: address
                            .checked_add(skip)
                            .ok_or_else(|| self.malformed(&format!("{what} (address overflow)")))?,
                        size: size - skip,
                        entry_size,
                    }
                }
                _ => return Err(self.malformed(&format!("{what} (size missing)"))),
            };
            slots.extend(table.slots(&self.memory, self.bias, &mut pick, || {
                self.malformed(&format!("{what} (table outside the object)"))
            })?);
        }
        Ok(slots)
    }

    /// Symbol `index` as a public [`Symbol`] if it is a defined, exported one.
    fn defined_symbol(&self, index: u32) -> Result<Option<Symbol<'a>>> {
        let raw = self.raw_symbol(index)?;
        if !raw.is_exported() {
            return Ok(None);
        }
        let (version, hidden) = match self.symbol_version(index)? {
            SymbolVersion::Defined { name, hidden } => (Some(name), hidden),
            SymbolVersion::Unversioned | SymbolVersion::Required { .. } => (None, false),
        };
        let absolute = raw.section == SHN_ABS;
        Ok(Some(Symbol {
            name: self.string(raw.name, "symbol name")?,
            version,
            hidden,
            kind: raw.kind(),
            binding: raw.binding(),
            address: self.symbol_address(&raw),
            size: raw.size,
            absolute,
            index,
        }))
    }

    fn symbol_address(&self, raw: &RawSymbol) -> usize {
        let value = raw.value as usize;
        if raw.section == SHN_ABS || raw.kind() == SymbolKind::Tls {
            value
        } else {
            value.wrapping_add(self.bias)
        }
    }

    pub(crate) fn raw_symbol(&self, index: u32) -> Result<RawSymbol> {
        self.symbols.get(index).ok_or_else(|| {
            self.malformed(&format!(
                "symbol index {index} (table has {} entries)",
                self.symbols.count
            ))
        })
    }

    fn string(&self, offset: u32, what: &str) -> Result<&'a str> {
        let bytes = self.symbols.string(offset).ok_or_else(|| {
            self.malformed(&format!(
                "{what} (string offset {offset} outside DT_STRTAB)"
            ))
        })?;
        std::str::from_utf8(bytes)
            .map_err(|_| self.malformed(&format!("{what} (not UTF-8 at string offset {offset})")))
    }

    fn malformed(&self, what: &str) -> Error {
        malformed(&self.name, what)
    }
}

/// Whether glibc's `check_match` would let a lookup bind to this definition.
fn binds_in_lookup(symbol: &Symbol<'_>) -> bool {
    let usable_kind = !matches!(symbol.kind, SymbolKind::Other(_));
    let has_value = symbol.address != 0 || symbol.kind == SymbolKind::Tls;
    usable_kind && has_value && !symbol.absolute
}

fn malformed(object: &str, what: &str) -> Error {
    Error::Malformed {
        object: object.to_string(),
        what: what.to_string(),
    }
}

/// The start of the mapping of the loaded object that holds `address` (`dladdr`'s
/// `dli_fbase`, glibc's `l_map_start`).
fn mapping_start(address: *const c_void) -> Option<usize> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr reads the address as a value and fills `info`.
    if unsafe { libc::dladdr(address, info.as_mut_ptr()) } == 0 {
        return None;
    }
    // SAFETY: filled by the successful call.
    let base = unsafe { info.assume_init() }.dli_fbase as usize;
    (base != 0).then_some(base)
}

/// The GNU build ID of the object loaded at `bias` with the program headers `phdrs`
/// (from `dl_iterate_phdr`), read from its note segment without a view; None if it has
/// none, or a note segment lies outside its loaded segments.
///
/// # Safety
/// The object must be loaded at `bias` with these program headers, and stay loaded for
/// `'a`.
pub unsafe fn build_id_at<'a>(bias: usize, phdrs: &[ProgramHeader]) -> Option<&'a [u8]> {
    let range = |p: &ProgramHeader| -> Option<Range<usize>> {
        let start = bias.checked_add(usize::try_from(p.p_vaddr).ok()?)?;
        Some(start..start.checked_add(usize::try_from(p.p_memsz).ok()?)?)
    };
    let loaded: Vec<Range<usize>> = phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .filter_map(range)
        .collect();
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_NOTE)
        .filter_map(range)
        .filter(|notes| {
            loaded
                .iter()
                .any(|l| l.start <= notes.start && notes.end <= l.end)
        })
        .find_map(|notes| {
            // SAFETY: inside a loaded segment of the object (checked above), which stays
            // loaded for 'a (contract).
            let bytes = unsafe {
                std::slice::from_raw_parts(notes.start as *const u8, notes.end - notes.start)
            };
            build_id_in(bytes)
        })
}

/// The description of the first `NT_GNU_BUILD_ID` note named `GNU` in `notes` (a note
/// segment's bytes); None if there is none, or a note runs past the end.
fn build_id_in(mut notes: &[u8]) -> Option<&[u8]> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let padded = |n: u32| (n as usize).checked_next_multiple_of(4);
    // Each note: name size, description size, type, then both, each padded to 4 bytes (the
    // 8-byte-aligned property notes keep their sizes multiples of 8).
    while let (Some(name_len), Some(desc_len), Some(kind)) =
        (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8))
    {
        let name_end = padded(name_len)?.checked_add(12)?;
        let desc_end = padded(desc_len)?.checked_add(name_end)?;
        let name = notes.get(12..)?.get(..name_len as usize)?;
        let desc = notes.get(name_end..)?.get(..desc_len as usize)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" && !desc.is_empty() {
            return Some(desc);
        }
        notes = notes.get(desc_end..)?;
    }
    None
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// `(e_phoff, e_phnum)` of a little-endian ELF header of this process's class and
/// machine.
fn check_elf_header(header: &[u8]) -> Result<(u64, usize), &'static str> {
    if header.get(..4) != Some(b"\x7fELF") {
        return Err("ELF header (no ELF magic)");
    }
    if header.get(4..6) != Some(&[CLASS, 1]) {
        return Err(if CLASS == 2 {
            "ELF header (not 64-bit little-endian)"
        } else {
            "ELF header (not 32-bit little-endian)"
        });
    }
    let (Some(machine), Some(phentsize), Some(phnum), Some(phoff)) = (
        u16_at(header, 18),
        u16_at(header, E_PHENTSIZE),
        u16_at(header, E_PHNUM),
        word_at(header, E_PHOFF),
    ) else {
        return Err("ELF header (truncated)");
    };
    if machine != Machine::NATIVE.e_machine() {
        return Err(match Machine::NATIVE {
            Machine::X86_64 => "ELF header (not x86_64)",
            Machine::X86 => "ELF header (not i386)",
            Machine::Aarch64 => "ELF header (not aarch64)",
        });
    }
    if usize::from(phentsize) != PHDR_SIZE {
        return Err("ELF header (e_phentsize is not the size of this class's ElfN_Phdr)");
    }
    Ok((phoff, usize::from(phnum)))
}

/// Whether the string table from some offset on (`tail`) holds `name` there: its bytes,
/// then the NUL. The first byte is compared alone first (most names differ there), which
/// spares a `memcmp` call.
fn names_at(tail: &[u8], name: &[u8]) -> bool {
    tail.first() == name.first() && tail.starts_with(name) && tail.get(name.len()) == Some(&0)
}

/// The program headers of each of `maps` that the caller's namespace holds (`None` for
/// another namespace's object), from one `dl_iterate_phdr` walk that ends when all are
/// found. An object is matched by its load bias and its dynamic section's address.
///
/// # Safety
/// `maps` must be live link maps, whose objects stay loaded for `'a`.
pub unsafe fn program_headers_of<'a>(maps: &[*const LinkMap]) -> Vec<Option<&'a [ProgramHeader]>> {
    let places: Vec<Option<(usize, usize)>> = maps
        .iter()
        .map(|&map| {
            // SAFETY: the caller guarantees live link maps (or null ones, left out).
            unsafe { map.as_ref() }.map(|lm| (lm.l_addr, lm.l_ld as usize))
        })
        .collect();
    // SAFETY: forwarded from this function's contract.
    unsafe { program_headers_at_places(&places) }
}

/// The program headers of the objects of the caller's namespace loaded at each (load bias,
/// dynamic section address) of `places`, from one `dl_iterate_phdr` walk that ends when
/// all are found.
///
/// # Safety
/// The objects found must stay loaded for `'a`.
unsafe fn program_headers_at_places<'a>(
    places: &[Option<(usize, usize)>],
) -> Vec<Option<&'a [ProgramHeader]>> {
    let mut found: Vec<Option<&'a [ProgramHeader]>> = vec![None; places.len()];
    let mut missing = places.iter().flatten().count();
    if missing == 0 {
        return found;
    }
    crate::iterate_phdr::first(|info| {
        let bias = info.dlpi_addr as usize;
        if info.dlpi_phdr.is_null() || !places.iter().flatten().any(|p| p.0 == bias) {
            return None;
        }
        // SAFETY: glibc passes a valid `info` whose dlpi_phdr points to dlpi_phnum program
        // headers, which stay with the object while it is loaded ('a: contract).
        let phdrs: &'a [ProgramHeader] =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let dynamic = dynamic_address(bias, phdrs)?;
        for (at, place) in places.iter().enumerate() {
            if *place == Some((bias, dynamic)) && found[at].is_none() {
                found[at] = Some(phdrs);
                missing -= 1;
            }
        }
        (missing == 0).then_some(())
    });
    found
}

/// Where the dynamic section of the object loaded at `bias` with program headers `phdrs`
/// lies: its PT_DYNAMIC's address.
pub(crate) fn dynamic_address(bias: usize, phdrs: &[ProgramHeader]) -> Option<usize> {
    phdrs
        .iter()
        .find(|p| RawPhdr::from_libc(p).kind == PT_DYNAMIC)
        .and_then(|p| usize::try_from(RawPhdr::from_libc(p).vaddr).ok())?
        .checked_add(bias)
}

fn segments_from_phdrs(phdrs: &[ProgramHeader], bias: usize) -> Option<Vec<Segment>> {
    phdrs
        .iter()
        .map(|p| Segment::from_raw(RawPhdr::from_libc(p), bias))
        .collect()
}

/// The program headers of the object loaded at `bias` with its dynamic section at
/// `dynamic`: from `dl_iterate_phdr` if it lists the object, else from its ELF header.
///
/// # Safety
/// An object must be loaded at `bias`, and unless it is in the caller's namespace, its ELF
/// header must be mapped at `bias` (true of every shared object: see `from_link_map`).
unsafe fn find_program_headers(name: &str, bias: usize, dynamic: usize) -> Result<Vec<Segment>> {
    // SAFETY: the object is loaded at `bias` (contract) while its view is made.
    let listed = unsafe { program_headers_at_places(&[Some((bias, dynamic))]) };
    if let Some(segments) = listed[0].and_then(|phdrs| segments_from_phdrs(phdrs, bias)) {
        return Ok(segments);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { program_headers_at_bias(name, bias) }
}

/// The dynamic symbol count, where DT_GNU_HASH alone cannot tell it. An object that
/// exports nothing (an executable) has no symbol to hash, and binutils writes that empty
/// table as one empty bucket with symoffset 1, however many undefined symbols come before
/// it (measured: an aarch64 PIE with 12 imports, binutils 2.40). DT_HASH's nchain is
/// exact; without it the relocations name every imported symbol.
fn exact_symbol_count(
    memory: &Memory<'_>,
    dynamic: &DynamicInfo,
    hash: HashTable,
    count: u32,
) -> u32 {
    if !matches!(hash, HashTable::Gnu(_)) || count > 1 {
        return count;
    }
    if let Some(exact) = dynamic
        .hash
        .and_then(|at| HashTable::Sysv(at).symbol_count(memory))
    {
        return exact;
    }
    let tables = [
        (dynamic.jmprel, dynamic.pltrelsz, Some(RELOC_SIZE as u64)),
        (dynamic.rela, dynamic.relasz, dynamic.relaent),
    ];
    let mut bound = count;
    for (address, size, entry) in tables {
        let (Some(address), Some(size), Some(entry)) = (address, size, entry) else {
            continue;
        };
        let (Ok(size), Ok(entry)) = (usize::try_from(size), usize::try_from(entry)) else {
            continue;
        };
        let Some(table) = memory.bytes(address, size).filter(|_| entry >= RELOC_SIZE) else {
            continue;
        };
        for fields in table.chunks_exact(entry).filter_map(reloc_fields) {
            bound = bound.max(fields.1.saturating_add(1));
        }
    }
    bound
}

/// The segments of the shared object `link_map` describes, from the ELF header mapped at
/// its load bias: all a caller needs who wants no more than a segment (PT_TLS, ...) of an
/// object in another namespace, at a fraction of [`Object::from_link_map`]'s cost.
///
/// # Safety
/// `link_map` must point to a live `struct link_map` of a loaded shared object (not the
/// main program or the vDSO), which must stay loaded while this runs.
pub unsafe fn shared_object_segments(link_map: *const LinkMap) -> Result<Vec<Segment>> {
    if link_map.is_null() {
        return Err(malformed("link map", "null link_map pointer"));
    }
    // SAFETY: the caller guarantees a live link map of a shared object, whose first
    // PT_LOAD maps its ELF header at l_addr.
    unsafe { program_headers_at_bias("shared object", (*link_map).l_addr) }
}

/// # Safety
/// A shared object's ELF header must be mapped at `bias`.
unsafe fn program_headers_at_bias(name: &str, bias: usize) -> Result<Vec<Segment>> {
    let size = page_size();
    if bias == 0 || bias & (size - 1) != 0 {
        return Err(malformed(
            name,
            "load bias (not page-aligned, and dl_iterate_phdr does not list the object): pass its program headers to Object::from_loaded",
        ));
    }
    // SAFETY: the caller guarantees the ELF header is mapped at `bias`; the first page of
    // the mapping is readable as a whole since glibc maps at least that page.
    let page = unsafe { std::slice::from_raw_parts(bias as *const u8, size) };
    let (phoff, phnum) =
        check_elf_header(&page[..EHDR_SIZE]).map_err(|what| malformed(name, what))?;
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|off| page.get(off..))
        .ok_or_else(|| malformed(name, "program headers (not in the first page)"))?;
    parse_program_headers(table, phnum, bias)
        .ok_or_else(|| malformed(name, "program headers (not in the first page)"))
}

#[cfg(test)]
mod tests {
    use super::super::layout::{make_info, reloc_bytes, sym_bytes, word_bytes, DYN_SIZE};
    use super::*;

    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut out = u32s(&[name.len() as u32, desc.len() as u32, kind]);
        for part in [name, desc] {
            out.extend_from_slice(part);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        out
    }

    #[test]
    fn the_build_id_is_found_after_other_notes_and_not_past_the_end() {
        let id = [0xab; 20];
        let mut notes = note(b"GNU\0", 5, &[1; 16]); // a property note
        notes.extend(note(b"Xen\0", 3, &[2; 8])); // type 3, another owner
        notes.extend(note(b"GNU\0", 3, &id));
        assert_eq!(build_id_in(&notes), Some(&id[..]));
        assert_eq!(build_id_in(&notes[..notes.len() - 1]), None, "cut short");
        let mut huge = note(b"GNU\0", 3, &id);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(build_id_in(&huge), None, "a size past the end");
        assert_eq!(build_id_in(&note(b"GNU\0", 1, &id)), None, "another type");
    }

    #[test]
    fn the_running_libc_has_the_build_id_of_its_file() {
        let map = crate::loaded::program_libc_link_map().expect("libc's link map");
        // SAFETY: libc is never unloaded.
        let libc = unsafe { Object::from_link_map(map) }.expect("a view of libc");
        // SAFETY: as above; the headers are libc's own.
        let phdrs = unsafe { program_headers_of(&[map]) }[0].expect("libc's program headers");
        // SAFETY: as above.
        let id = unsafe { build_id_at(libc.bias(), phdrs) }.expect("Debian's libc has one");
        let file = std::fs::read(libc.name()).expect("read libc's file");
        assert!(id.len() >= 16, "{id:02x?}");
        assert!(
            file.windows(id.len()).any(|w| w == id),
            "{id:02x?} not in the file"
        );
    }

    /// Where the parts of a hand-made image lie (file offset == virtual address).
    struct Image {
        bytes: Vec<u8>,
        dynamic: usize,
        symtab: usize,
        hash: usize,
        relocs: usize,
    }

    fn push(bytes: &mut Vec<u8>, data: &[u8]) -> usize {
        while bytes.len() & 7 != 0 {
            bytes.push(0);
        }
        let at = bytes.len();
        bytes.extend_from_slice(data);
        at
    }

    fn u16s(w: &[u16]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn u32s(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn words(w: &[u64]) -> Vec<u8> {
        w.iter().flat_map(|&x| word_bytes(x)).collect()
    }

    fn sym(name: u32, info: u8, shndx: u16, value: u64, size: u64) -> Vec<u8> {
        sym_bytes(name, info, 0, shndx, value, size)
    }

    /// A shared object of this process's class and machine defining `value@@V1` (index 1)
    /// and importing `imp` (index 2), with a GLOB_DAT slot for `imp` at 0x2000 and an
    /// absolute slot (addend 16 where relocations carry addends) for `value` after it.
    fn image() -> Image {
        image_hashed(false)
    }

    /// [`image`], with binutils' empty DT_GNU_HASH (one empty bucket, symoffset 1, as for
    /// an executable that exports nothing) in place of its DT_HASH when `empty_gnu`.
    fn image_hashed(empty_gnu: bool) -> Image {
        let mut b = vec![0u8; EHDR_SIZE + 2 * PHDR_SIZE];
        let strtab = push(&mut b, b"\0value\0imp\0V1\0lib\0");
        let symtab = push(
            &mut b,
            &[
                sym(0, 0, 0, 0, 0),
                sym(1, 0x12, 7, 0x1000, 8),
                sym(7, 0x12, 0, 0, 0),
            ]
            .concat(),
        );
        let (hash_tag, hash) = if empty_gnu {
            let mut table = u32s(&[1, 1, 1, 0]);
            table.extend(words(&[0]));
            table.extend(u32s(&[0]));
            (0x6fff_fef5, push(&mut b, &table))
        } else {
            (4, push(&mut b, &u32s(&[1, 3, 2, 0, 0, 1])))
        };
        let versym = push(&mut b, &u16s(&[0, 2, 1])) as u64;
        // Verdef: base version (ndx 1, VER_FLG_BASE) named "lib", then V1 (ndx 2).
        let mut verdef = u16s(&[1, 1, 1, 1]);
        verdef.extend(u32s(&[0, 20, 28, 14, 0]));
        verdef.extend(u16s(&[1, 0, 2, 1]));
        verdef.extend(u32s(&[0, 20, 0, 11, 0]));
        let verdef = push(&mut b, &verdef);
        let (r_glob_dat, r_absolute) = (
            crate::arch::native::R_GLOB_DAT,
            crate::arch::native::R_ABSOLUTE,
        );
        let relocs = push(
            &mut b,
            &[
                reloc_bytes(0x2000, 2, r_glob_dat, 0),
                reloc_bytes(0x2000 + WORD as u64, 1, r_absolute, 16),
            ]
            .concat(),
        );
        let (dt_reloc, dt_relocsz, dt_relocent) = RELOC_TAGS;
        let entries: Vec<u64> = vec![
            6,
            symtab as u64,
            11,
            SYM_SIZE as u64,
            5,
            strtab as u64,
            10,
            18,
            hash_tag,
            hash as u64,
            0x6fff_fff0,
            versym,
            0x6fff_fffc,
            verdef as u64,
            0x6fff_fffd,
            2,
            dt_reloc,
            relocs as u64,
            dt_relocsz,
            2 * RELOC_SIZE as u64,
            dt_relocent,
            RELOC_SIZE as u64,
            0,
            0,
        ];
        let dynamic = push(&mut b, &words(&entries));
        let end = b.len() as u64;
        let mut header = b"\x7fELF".to_vec();
        header.extend([CLASS, 1, 1]);
        header.resize(16, 0);
        header.extend(u16s(&[3, Machine::NATIVE.e_machine()]));
        header.extend(u32s(&[1]));
        header.extend(words(&[0, EHDR_SIZE as u64, 0]));
        header.extend(u32s(&[0]));
        header.extend(u16s(&[EHDR_SIZE as u16, PHDR_SIZE as u16, 2, 0, 0, 0]));
        b[..EHDR_SIZE].copy_from_slice(&header);
        let phdr = |kind, vaddr, filesz, memsz, align| {
            RawPhdr {
                kind,
                flags: 6,
                offset: vaddr,
                vaddr,
                filesz,
                memsz,
                align,
            }
            .to_bytes()
        };
        let dynamic_size = (DYN_SIZE * 12) as u64;
        let phdrs = [
            phdr(PT_LOAD, 0, end, 0x3000, 0x1000),
            phdr(PT_DYNAMIC, dynamic as u64, dynamic_size, dynamic_size, 8),
        ]
        .concat();
        b[EHDR_SIZE..EHDR_SIZE + 2 * PHDR_SIZE].copy_from_slice(&phdrs);
        Image {
            bytes: b,
            dynamic,
            symtab,
            hash,
            relocs,
        }
    }

    fn error_of(bytes: &[u8]) -> String {
        let result = Object::from_file_image("test.so", bytes).and_then(|o| {
            o.lookup("value", None)?;
            o.slots("imp", None)?;
            o.symbols().collect::<Result<Vec<_>>>()
        });
        match result {
            Ok(_) => panic!("a malformed image was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn poke_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    #[test]
    fn well_formed_image_reads_back() {
        let img = image();
        let o = Object::from_file_image("test.so", &img.bytes).unwrap();
        assert_eq!(o.symbol_count(), 3);
        let value = o.lookup("value", None).unwrap().expect("value is defined");
        assert_eq!(
            (value.address, value.size, value.version),
            (0x1000, 8, Some("V1"))
        );
        assert_eq!(value.kind, SymbolKind::Function);
        assert_eq!(
            o.lookup("value", Some("V1")).unwrap().map(|s| s.index),
            Some(1)
        );
        assert_eq!(o.lookup("value", Some("V2")).unwrap(), None);
        assert_eq!(
            o.lookup("imp", None).unwrap(),
            None,
            "imports are not definitions"
        );
        let slots = o.slots("imp", None).unwrap();
        assert_eq!(slots.len(), 1);
        assert_eq!(
            (slots[0].address, slots[0].kind),
            (0x2000, super::super::SlotKind::GlobDat)
        );
        let value_slots = o.slots("value", Some("V1")).unwrap();
        let with_addend = if crate::arch::native::RELA {
            0x20
        } else {
            0x10
        };
        assert_eq!(value_slots[0].value_for(0x10), with_addend);
        assert!(o.slots("value", Some("V9")).unwrap().is_empty());
        let names: Vec<_> = o.symbols().map(|s| s.unwrap().name).collect();
        assert_eq!(names, ["value"]);
    }

    #[test]
    fn slots_are_found_past_an_empty_gnu_hash_table() {
        let img = image_hashed(true);
        let o = Object::from_file_image("test", &img.bytes).unwrap();
        let imports = o.slots("imp", None).unwrap();
        assert_eq!(
            imports.iter().map(|s| s.address).collect::<Vec<_>>(),
            [0x2000],
            "an import no lookup by name reaches"
        );
        assert_eq!(o.slots("value", Some("V1")).unwrap().len(), 1);
        assert!(o.slots("nothing", None).unwrap().is_empty());
    }

    #[test]
    fn an_empty_gnu_hash_table_does_not_hide_the_imports() {
        // binutils' empty .gnu.hash: one empty bucket, symoffset 1, a one-word Bloom filter.
        let mut bytes = u32s(&[1, 1, 1, 0]);
        bytes.extend(words(&[0]));
        bytes.extend(u32s(&[0]));
        // Imports 1..=4, the highest named by the JUMP_SLOT.
        let jmprel = bytes.len();
        bytes.extend(reloc_bytes(0x2000, 4, crate::arch::native::R_JUMP_SLOT, 0));
        let rela = bytes.len();
        bytes.extend(reloc_bytes(0x2008, 2, crate::arch::native::R_GLOB_DAT, 0));
        let sysv = bytes.len();
        bytes.extend(u32s(&[1, 6, 0, 0, 0, 0, 0, 0, 0]));
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        let gnu = HashTable::Gnu(0);
        let said = gnu.symbol_count(&memory).unwrap();
        assert_eq!(said, 1, "what the table alone says");
        let mut dynamic = DynamicInfo {
            jmprel: Some(jmprel),
            pltrelsz: Some(RELOC_SIZE as u64),
            rela: Some(rela),
            relasz: Some(RELOC_SIZE as u64),
            relaent: Some(RELOC_SIZE as u64),
            ..DynamicInfo::default()
        };
        assert_eq!(exact_symbol_count(&memory, &dynamic, gnu, said), 5);
        dynamic.hash = Some(sysv);
        assert_eq!(
            exact_symbol_count(&memory, &dynamic, gnu, said),
            6,
            "nchain"
        );
        // A table that hashes symbols is believed.
        assert_eq!(exact_symbol_count(&memory, &dynamic, gnu, 9), 9);
    }

    /// The inputs kept in `fuzz/regressions/elf_image/`: a DT_HASH chain that loops under
    /// a forged nchain (a timeout of the `elf_image` target); every lookup must end.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fuzz_regressions_end() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/elf_image");
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(!inputs.is_empty(), "{}", dir.display());
        for input in inputs {
            // A hang is the failure: the lookups run on a thread that must answer in time
            // (the unbounded walk took over a minute here, and gigabytes).
            let (done, finished) = std::sync::mpsc::channel();
            let path = input.clone();
            std::thread::spawn(move || {
                let bytes = std::fs::read(&path).unwrap();
                let object = Object::from_file_image("regression", &bytes)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                for name in ["malloc", "free", "dlopen", "foo"] {
                    let _ = object.lookup(name, None);
                    let _ = object.lookup(name, Some("GLIBC_2.2.5"));
                }
                let _ = done.send(());
            });
            assert!(
                finished
                    .recv_timeout(std::time::Duration::from_secs(20))
                    .is_ok(),
                "{}: the lookups did not end",
                input.display()
            );
        }
    }

    #[test]
    fn truncated_dynamic_section_is_malformed() {
        let img = image();
        let err = error_of(&img.bytes[..img.dynamic + DYN_SIZE * 5]);
        assert!(err.contains("dynamic section"), "{err}");
    }

    #[test]
    fn symbol_index_out_of_range_is_malformed() {
        let mut img = image();
        let info = img.relocs + WORD;
        img.bytes[info..info + WORD]
            .copy_from_slice(&word_bytes(make_info(99, crate::arch::native::R_GLOB_DAT)));
        let err = error_of(&img.bytes);
        assert!(err.contains("symbol index 99"), "{err}");
    }

    #[test]
    fn a_kept_view_describes_its_own_object_only() {
        // The test program's own objects, as the scope of a forwarder lists them.
        let mut maps = Vec::new();
        // SAFETY: the base namespace's link maps; nothing unloads them during the test.
        unsafe {
            let mut map = crate::linkmap::base_namespace_head();
            while !map.is_null() {
                maps.push(map);
                map = (*map).l_next;
            }
        }
        // SAFETY: live link maps of objects that stay loaded.
        let headers = unsafe { program_headers_of(&maps) };
        let listed: Vec<_> = maps
            .iter()
            .zip(&headers)
            .filter_map(|(&map, phdrs)| Some((map, (*phdrs)?)))
            .collect();
        assert!(
            listed.len() >= 3,
            "the test program, libc and ld.so at least"
        );
        let (map, phdrs) = listed[1];
        // SAFETY: as above.
        let view = unsafe { Object::from_link_map_headers(map, phdrs) }.unwrap();
        // SAFETY: as above.
        let (bias, dynamic) = unsafe { ((*map).l_addr, (*map).l_ld as usize) };
        assert!(view.describes(bias, dynamic, phdrs));
        assert!(
            !view.describes(bias, dynamic, listed[2].1),
            "another object's headers"
        );
        assert!(
            !view.describes(bias + 0x1000, dynamic, phdrs),
            "another load bias"
        );
        assert!(
            !view.describes(bias, dynamic + 16, phdrs),
            "another dynamic section"
        );
    }

    #[test]
    fn string_offset_out_of_range_is_malformed() {
        let mut img = image();
        poke_u32(&mut img.bytes, img.symtab + SYM_SIZE, 5000);
        let err = error_of(&img.bytes);
        assert!(err.contains("outside DT_STRTAB"), "{err}");
    }

    #[test]
    fn hash_bucket_pointing_outside_is_malformed() {
        let mut img = image();
        poke_u32(&mut img.bytes, img.hash + 8, 7);
        let err = error_of(&img.bytes);
        assert!(err.contains("hash table"), "{err}");
    }

    #[test]
    fn missing_versym_table_is_malformed() {
        let mut img = image();
        let entry = img.dynamic + DYN_SIZE * 5 + WORD;
        img.bytes[entry..entry + WORD].copy_from_slice(&word_bytes(0x9_0000));
        let err = error_of(&img.bytes);
        assert!(err.contains("DT_VERSYM"), "{err}");
    }

    #[test]
    fn no_truncation_or_byte_flip_panics() {
        let img = image();
        let exercise = |bytes: &[u8]| {
            if let Ok(o) = Object::from_file_image("fuzz", bytes) {
                let _ = o.lookup("value", Some("V1"));
                let _ = o.slots("imp", None);
                let _ = o.symbols().count();
                let _ = o.relative_relocations();
                let _ = o.soname();
            }
        };
        for len in 0..img.bytes.len() {
            exercise(&img.bytes[..len]);
        }
        for at in 0..img.bytes.len() {
            for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut bytes = img.bytes.clone();
                bytes[at] = value;
                exercise(&bytes);
            }
        }
    }

    #[test]
    fn random_mutations_of_a_real_object_never_panic() {
        let mut bytes = std::fs::read("/proc/self/exe").expect("read the test binary");
        let pristine = Object::from_file_image("self", &bytes).expect("the test binary parses");
        assert!(pristine.symbol_count() > 1);
        assert!(!pristine.slots("malloc", None).unwrap().is_empty());
        let dynamic = pristine
            .segments()
            .iter()
            .find(|s| s.kind == PT_DYNAMIC)
            .unwrap()
            .file_offset as usize;
        drop(pristine);
        // Mutate the headers and symbol tables at the start and the dynamic section;
        // xorshift keeps it reproducible without a dependency.
        let span = bytes.len().min(0x4000);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let edits: Vec<(usize, u8)> = (0..1 + next() % 8)
                .map(|_| {
                    let at = (next() as usize) % span;
                    let at = if at & 1 == 0 {
                        at
                    } else {
                        dynamic + at % 0x200
                    };
                    (at.min(bytes.len() - 1), next() as u8)
                })
                .collect();
            let saved: Vec<u8> = edits.iter().map(|&(at, _)| bytes[at]).collect();
            for &(at, value) in &edits {
                bytes[at] = value;
            }
            if let Ok(o) = Object::from_file_image("fuzz", &bytes) {
                let _ = o.lookup("malloc", Some("GLIBC_2.2.5"));
                let _ = o.slots("malloc", None);
                let _ = o.symbols().count();
                let _ = o.relative_relocations();
            }
            for (&(at, _), &old) in edits.iter().zip(&saved).rev() {
                bytes[at] = old;
            }
        }
    }

    #[test]
    fn not_an_elf_file_is_malformed() {
        for bytes in [&b""[..], b"\x7fELF", &[0u8; 64]] {
            assert!(Object::from_file_image("junk", bytes).is_err());
        }
    }
}
