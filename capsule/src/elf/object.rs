//! One ELF object seen through its program headers and dynamic section: the public view
//! that the rest of the runtime (and the fuzz target) uses.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ops::Range;

use super::dynamic::{read_dynamic, DynamicInfo, DT_PLTREL_RELA};
use super::hash::{GnuTable, HashTable};
use super::memory::Memory;
use super::reloc::{relr_addresses, RelaTable, Slot, RELA_SIZE};
use super::segment::{
    parse_program_headers, relro_pages, Segment, SegmentFlags, PHDR_SIZE, PT_DYNAMIC, PT_LOAD,
};
use super::symbol::{Binding, RawSymbol, Symbol, SymbolKind, SymbolTable, SHN_ABS, SYM_SIZE};
use super::version::{SymbolVersion, VersionTables};
use crate::bytes::{u16_at, u64_at};
use crate::error::{Error, Result};

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

/// A symbol an object imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Import<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// The soname the version is required from (DT_VERNEED).
    pub file: Option<&'a str>,
    pub weak: bool,
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
    versions: VersionTables,
}

const ELF_HEADER_SIZE: usize = 64;
const EM_X86_64: u16 = 62;

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
        phdrs: Option<&[libc::Elf64_Phdr]>,
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
    pub fn from_file_image(name: &str, bytes: &'a [u8]) -> Result<Object<'a>> {
        let header = bytes
            .get(..ELF_HEADER_SIZE)
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
        if dynamic.jmprel.is_some() && dynamic.pltrel != Some(DT_PLTREL_RELA) {
            return Err(bad("DT_PLTREL (must be DT_RELA on x86_64)"));
        }
        if dynamic.syment.is_some_and(|e| e != SYM_SIZE as u64) {
            return Err(bad("DT_SYMENT (not the size of Elf64_Sym)"));
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
        let (address, count) = match (dynamic.symtab, hash) {
            (None, _) => (0, 0),
            (Some(_), None) => return Err(bad(
                "dynamic section (DT_SYMTAB without DT_GNU_HASH or DT_HASH: symbol count unknown)",
            )),
            (Some(at), Some(hash)) => {
                let count = hash
                    .symbol_count(&memory)
                    .ok_or_else(|| bad("hash table (points outside the object)"))?;
                (at, count)
            }
        };
        let entries = match memory.bytes(address, count as usize * SYM_SIZE) {
            Some(entries) => entries,
            None if count == 0 => &[][..],
            None => {
                return Err(bad(&format!(
                    "DT_SYMTAB ({count} symbols reach outside the object)"
                )))
            }
        };
        if let Some(versym) = dynamic.versym {
            if memory.bytes(versym, count as usize * 2).is_none() {
                return Err(bad(&format!(
                    "DT_VERSYM ({count} entries reach outside the object)"
                )));
            }
        }
        let gnu = hash.and_then(|h| h.gnu_table(&memory, count));
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

    /// Every symbol this object imports (undefined, global), with the version it requires:
    /// what ld.so must find for it elsewhere. Weak imports are marked: ld.so binds them to 0
    /// when nothing defines them.
    pub(crate) fn imports(&self) -> Result<Vec<Import<'a>>> {
        let mut out = Vec::new();
        for index in 1..self.symbols.count {
            let raw = self.raw_symbol(index)?;
            if raw.is_defined() || raw.binding() == Binding::Local {
                continue;
            }
            let (version, file) = match self.symbol_version(index)? {
                SymbolVersion::Required { name, file } => (Some(name), Some(file)),
                _ => (None, None),
            };
            out.push(Import {
                name: self.string(raw.name, "symbol name")?,
                version,
                file,
                weak: raw.binding() == Binding::Weak,
            });
        }
        Ok(out)
    }

    /// The GNU hash (lowest bit cleared) of each symbol the hash table holds, by index.
    pub(crate) fn hashed_symbols(&self) -> Vec<(u32, u32)> {
        self.hash
            .map_or(Vec::new(), |h| h.hashed(&self.memory, self.symbols.count))
    }

    /// Whether a symbol whose GNU hash is `hash` but for its lowest bit may be defined here
    /// (false: certainly not; true: a symbol of that hash is, or there is no GNU table).
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

    /// The name of every symbol this object imports (undefined, not local), as bytes:
    /// cheaper than [`Object::imports`] where only names matter.
    pub(crate) fn imported_names(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (1..self.symbols.count).filter_map(|index| {
            let raw = self.raw_symbol(index).ok()?;
            if raw.is_defined() || raw.binding() == Binding::Local {
                return None;
            }
            self.symbols.string(raw.name)
        })
    }

    /// The versions this object requires, by file: (file, version name, weak).
    pub(crate) fn required_versions(&self) -> Result<Vec<(&'a str, &'a str, bool)>> {
        self.versions
            .required(&self.memory, &self.symbols)
            .map_err(|what| self.malformed(what))
    }

    /// Every JUMP_SLOT, GLOB_DAT and R_X86_64_64 slot (from DT_JMPREL and DT_RELA) whose
    /// symbol is `name`.
    ///
    /// With `version`, only slots whose symbol carries exactly that version (the version an
    /// import requires, or the version a definition is in) match; unversioned slots do not,
    /// because an unversioned reference binds to whatever the provider's default is, which
    /// this object cannot tell. Ask without a version to get every slot of the name.
    pub fn slots(&self, name: &str, version: Option<&str>) -> Result<Vec<Slot>> {
        let mut matching = Vec::new();
        for slot in self.all_slots()? {
            if slot.symbol == 0 || self.symbol_name_bytes(slot.symbol)? != name.as_bytes() {
                continue;
            }
            if let Some(wanted) = version {
                let has = match self.symbol_version(slot.symbol)? {
                    SymbolVersion::Defined { name, .. } | SymbolVersion::Required { name, .. } => {
                        Some(name)
                    }
                    SymbolVersion::Unversioned => None,
                };
                if has != Some(wanted) {
                    continue;
                }
            }
            matching.push(slot);
        }
        Ok(matching)
    }

    /// The addresses the RELR table relocates. They only ever receive the load bias, never
    /// a symbol, so the patcher has no use for them; they are here for completeness.
    pub fn relative_relocations(&self) -> Result<Vec<usize>> {
        let (Some(at), Some(size)) = (self.dynamic.relr, self.dynamic.relrsz) else {
            return Ok(Vec::new());
        };
        if self.dynamic.relrent.is_some_and(|e| e != 8) {
            return Err(self.malformed("DT_RELRENT (not 8)"));
        }
        usize::try_from(size)
            .ok()
            .and_then(|size| relr_addresses(&self.memory, at, size, self.bias))
            .ok_or_else(|| self.malformed("DT_RELR (table outside the object)"))
    }

    /// Every symbol slot of DT_JMPREL and DT_RELA.
    pub(crate) fn all_slots(&self) -> Result<Vec<Slot>> {
        let d = &self.dynamic;
        let tables = [
            (
                d.jmprel,
                d.pltrelsz,
                Some(RELA_SIZE as u64),
                "DT_JMPREL/DT_PLTRELSZ",
            ),
            (d.rela, d.relasz, d.relaent, "DT_RELA/DT_RELASZ/DT_RELAENT"),
        ];
        let mut slots = Vec::new();
        for (address, size, entry, what) in tables {
            let Some(address) = address else { continue };
            let table = match (size.map(usize::try_from), entry.map(usize::try_from)) {
                (Some(Ok(size)), Some(Ok(entry_size))) => RelaTable {
                    address,
                    size,
                    entry_size,
                },
                _ => return Err(self.malformed(&format!("{what} (size missing)"))),
            };
            let found = table
                .slots(&self.memory, self.bias)
                .ok_or_else(|| self.malformed(&format!("{what} (table outside the object)")))?;
            slots.extend(found);
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

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| s.is_power_of_two())
        .unwrap_or(4096)
}

/// `(e_phoff, e_phnum)` of a 64-bit little-endian x86_64 ELF header.
fn check_elf_header(header: &[u8]) -> Result<(u64, usize), &'static str> {
    if header.get(..4) != Some(b"\x7fELF") {
        return Err("ELF header (no ELF magic)");
    }
    if header.get(4..6) != Some(&[2, 1]) {
        return Err("ELF header (not 64-bit little-endian)");
    }
    let (Some(machine), Some(phentsize), Some(phnum), Some(phoff)) = (
        u16_at(header, 18),
        u16_at(header, 54),
        u16_at(header, 56),
        u64_at(header, 32),
    ) else {
        return Err("ELF header (truncated)");
    };
    if machine != EM_X86_64 {
        return Err("ELF header (not x86_64)");
    }
    if usize::from(phentsize) != PHDR_SIZE {
        return Err("ELF header (e_phentsize is not the size of Elf64_Phdr)");
    }
    Ok((phoff, usize::from(phnum)))
}

fn segments_from_phdrs(phdrs: &[libc::Elf64_Phdr], bias: usize) -> Option<Vec<Segment>> {
    let mut table = Vec::with_capacity(phdrs.len() * PHDR_SIZE);
    for p in phdrs {
        table.extend_from_slice(&p.p_type.to_le_bytes());
        table.extend_from_slice(&p.p_flags.to_le_bytes());
        for field in [
            p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz, p.p_align,
        ] {
            table.extend_from_slice(&field.to_le_bytes());
        }
    }
    parse_program_headers(&table, phdrs.len(), bias)
}

/// The program headers of the object loaded at `bias` with its dynamic section at
/// `dynamic`: from `dl_iterate_phdr` if it lists the object, else from its ELF header.
///
/// # Safety
/// An object must be loaded at `bias`, and unless it is in the caller's namespace, its ELF
/// header must be mapped at `bias` (true of every shared object: see `from_link_map`).
unsafe fn find_program_headers(name: &str, bias: usize, dynamic: usize) -> Result<Vec<Segment>> {
    if let Some(segments) = program_headers_from_iteration(bias, dynamic) {
        return Ok(segments);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { program_headers_at_bias(name, bias) }
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
        check_elf_header(&page[..ELF_HEADER_SIZE]).map_err(|what| malformed(name, what))?;
    let table = usize::try_from(phoff)
        .ok()
        .and_then(|off| page.get(off..))
        .ok_or_else(|| malformed(name, "program headers (not in the first page)"))?;
    parse_program_headers(table, phnum, bias)
        .ok_or_else(|| malformed(name, "program headers (not in the first page)"))
}

/// What `dl_iterate_phdr`'s callback looks for and what it found.
struct PhdrSearch {
    bias: usize,
    dynamic: usize,
    found: Option<Vec<Segment>>,
}

fn program_headers_from_iteration(bias: usize, dynamic: usize) -> Option<Vec<Segment>> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: `data` is the PhdrSearch passed below, alive for the whole iteration, and
        // glibc passes a valid `info` whose phdr array has dlpi_phnum entries.
        let (search, info) = unsafe { (&mut *(data as *mut PhdrSearch), &*info) };
        if info.dlpi_addr as usize != search.bias || info.dlpi_phdr.is_null() {
            return 0;
        }
        // SAFETY: as above: dlpi_phdr points to dlpi_phnum program headers.
        let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let Some(segments) = segments_from_phdrs(phdrs, search.bias) else {
            return 0;
        };
        let dynamic_matches = segments
            .iter()
            .any(|s| s.kind == PT_DYNAMIC && s.address == search.dynamic);
        if dynamic_matches {
            search.found = Some(segments);
            return 1;
        }
        0
    }
    let mut search = PhdrSearch {
        bias,
        dynamic,
        found: None,
    };
    // SAFETY: the callback only reads what glibc hands it and writes `search`, which
    // outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut search as *mut PhdrSearch as *mut c_void) };
    search.found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the parts of a hand-made image lie (file offset == virtual address).
    struct Image {
        bytes: Vec<u8>,
        dynamic: usize,
        symtab: usize,
        hash: usize,
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

    fn u64s(w: &[u64]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sym(name: u32, info: u8, shndx: u16, value: u64, size: u64) -> Vec<u8> {
        let mut s = name.to_le_bytes().to_vec();
        s.extend([info, 0]);
        s.extend(shndx.to_le_bytes());
        s.extend(value.to_le_bytes());
        s.extend(size.to_le_bytes());
        s
    }

    /// A shared object defining `value@@V1` (index 1) and importing `imp` (index 2), with a
    /// GLOB_DAT slot for `imp` at 0x2000 and an R_X86_64_64 slot for `value` at 0x2008.
    fn image() -> Image {
        let mut b = vec![0u8; 64 + 2 * PHDR_SIZE];
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
        let hash = push(&mut b, &u32s(&[1, 3, 2, 0, 0, 1]));
        let versym = push(&mut b, &u16s(&[0, 2, 1])) as u64;
        // Verdef: base version (ndx 1, VER_FLG_BASE) named "lib", then V1 (ndx 2).
        let mut verdef = u16s(&[1, 1, 1, 1]);
        verdef.extend(u32s(&[0, 20, 28, 14, 0]));
        verdef.extend(u16s(&[1, 0, 2, 1]));
        verdef.extend(u32s(&[0, 20, 0, 11, 0]));
        let verdef = push(&mut b, &verdef);
        let rela = push(
            &mut b,
            &u64s(&[0x2000, 2 << 32 | 6, 0, 0x2008, 1 << 32 | 1, 16]),
        );
        let entries: Vec<u64> = vec![
            6,
            symtab as u64,
            11,
            24,
            5,
            strtab as u64,
            10,
            18,
            4,
            hash as u64,
            0x6fff_fff0,
            versym,
            0x6fff_fffc,
            verdef as u64,
            0x6fff_fffd,
            2,
            7,
            rela as u64,
            8,
            48,
            9,
            24,
            0,
            0,
        ];
        let dynamic = push(&mut b, &u64s(&entries));
        let end = b.len() as u64;
        let mut header = b"\x7fELF\x02\x01\x01".to_vec();
        header.resize(16, 0);
        header.extend(u16s(&[3, EM_X86_64]));
        header.extend(u32s(&[1]));
        header.extend(u64s(&[0, 64, 0]));
        header.extend(u32s(&[0]));
        header.extend(u16s(&[64, PHDR_SIZE as u16, 2, 0, 0, 0]));
        b[..64].copy_from_slice(&header);
        let mut phdrs = u32s(&[PT_LOAD, 6]);
        phdrs.extend(u64s(&[0, 0, 0, end, 0x3000, 0x1000]));
        phdrs.extend(u32s(&[PT_DYNAMIC, 6]));
        phdrs.extend(u64s(&[
            dynamic as u64,
            dynamic as u64,
            0,
            16 * 12,
            16 * 12,
            8,
        ]));
        b[64..64 + 2 * PHDR_SIZE].copy_from_slice(&phdrs);
        Image {
            bytes: b,
            dynamic,
            symtab,
            hash,
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
        assert_eq!(value_slots[0].value_for(0x10), 0x20);
        assert!(o.slots("value", Some("V9")).unwrap().is_empty());
        let names: Vec<_> = o.symbols().map(|s| s.unwrap().name).collect();
        assert_eq!(names, ["value"]);
    }

    #[test]
    fn truncated_dynamic_section_is_malformed() {
        let img = image();
        let err = error_of(&img.bytes[..img.dynamic + 16 * 5]);
        assert!(err.contains("dynamic section"), "{err}");
    }

    #[test]
    fn symbol_index_out_of_range_is_malformed() {
        let mut img = image();
        let rela_info = img.bytes.len() - 16 * 12 - 48 + 8;
        img.bytes[rela_info + 4..rela_info + 8].copy_from_slice(&99u32.to_le_bytes());
        let err = error_of(&img.bytes);
        assert!(err.contains("symbol index 99"), "{err}");
    }

    #[test]
    fn string_offset_out_of_range_is_malformed() {
        let mut img = image();
        poke_u32(&mut img.bytes, img.symtab + 24, 5000);
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
        let entry = img.dynamic + 16 * 5 + 8;
        img.bytes[entry..entry + 8].copy_from_slice(&0x9_0000u64.to_le_bytes());
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
