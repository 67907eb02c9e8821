//! The one reader of ELF files on disk: the resolver's candidates (what ld.so looks at),
//! capsule-gen's libraries (their dynamic symbols and versions), and the host's libraries
//! that the skew check and the forwarder's stubs compare with the program's loaded copies
//! (their imports with the file each version is needed from, their exports by name and
//! version: [`Symbols::imports`], [`Symbols::exports`]). Loaded objects are read in place
//! by `crate::elf`.
//!
//! 32-bit and 64-bit little-endian objects of every [`Machine`] capsule knows. Only what
//! the dynamic linker itself looks at is read: the ELF header, the program headers, the
//! dynamic segment and the tables it points to (strings, version records, and for
//! [`Reader::symbols`] the symbol, hash and version-index tables). Section headers are
//! never read: a stripped library is a library to ld.so.
//!
//! A file is read in small blocks with `pread`, not mapped: a mapped file that shrinks
//! under us (a package upgrade of the host tree) would raise SIGBUS in the middle of the
//! search, while a short read is just a "truncated" candidate that the search passes
//! over, as ld.so would. A library like libLLVM is large, and the resolver reads a few
//! pages of it; a symbol or string table, read whole, is one `pread`.
//!
//! Every number in the file is untrusted: offsets and sizes are added with `checked_*` and
//! converted with `try_from`, so a crafted file is an error naming what is wrong, never a
//! panic or a wrap (fuzz target `elffile`, run with debug assertions).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::bytes;
use crate::dynamic_tags::{
    DF_1_NODEFLIB, DT_FLAGS_1, DT_GNU_HASH, DT_HASH, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH,
    DT_SONAME, DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED,
    DT_VERNEEDNUM, DT_VERSYM,
};
use crate::machine::{Machine, ELFCLASS32, ELFCLASS64};

mod bind;
pub use bind::{Export, Exports, Import, SymbolVersion};

const ELFDATA2LSB: u8 = 1;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;

/// `VER_FLG_WEAK` of a needed version: ld.so only warns when it is missing.
const VER_FLG_WEAK: u16 = 2;
/// `VER_FLG_BASE`: the version definition that names the object itself.
pub const VER_FLG_BASE: u16 = 1;
/// Version index 0 (`VER_NDX_LOCAL`): the symbol is not exported.
pub const VER_NDX_LOCAL: u16 = 0;
/// Version index 1 (`VER_NDX_GLOBAL`): the symbol is unversioned.
pub const VER_NDX_GLOBAL: u16 = 1;
/// The bit of a version index that hides it from symbols looked up without a version.
pub const VERSYM_HIDDEN: u16 = 0x8000;

/// `st_shndx` of an undefined symbol.
pub const SHN_UNDEF: u16 = 0;
/// `st_shndx` of an absolute symbol.
pub const SHN_ABS: u16 = 0xfff1;
/// Symbol bindings (`st_info >> 4`).
pub const STB_LOCAL: u8 = 0;
pub const STB_WEAK: u8 = 2;
/// Symbol types (`st_info & 0xf`).
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_COMMON: u8 = 5;
pub const STT_TLS: u8 = 6;
pub const STT_GNU_IFUNC: u8 = 10;

/// One version an object needs from a library (an entry of its DT_VERNEED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededVersion {
    /// The version name, e.g. `GLIBC_2.34`.
    pub name: String,
    /// `VER_FLG_WEAK`: ld.so only warns when it is missing.
    pub weak: bool,
    /// `vna_other`: the version index the object's imports name it by (DT_VERSYM).
    pub index: u16,
}

/// The dynamic-linking facts of a shared object: what the resolver needs.
#[derive(Clone, Debug, Default)]
pub struct ElfFile {
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// DT_RPATH entries, split at `:`; empty when the object has a DT_RUNPATH, because
    /// ld.so then ignores its DT_RPATH altogether (also for the objects it loads).
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries, split at `:`.
    pub runpath: Vec<String>,
    pub has_runpath: bool,
    /// `DF_1_NODEFLIB`: dependencies are not looked up in the cache or default directories.
    pub nodeflib: bool,
    /// DT_VERNEED: per library file name, the versions needed from it.
    pub verneed: Vec<(String, Vec<NeededVersion>)>,
    /// DT_VERDEF: the version names this object defines (its base name included).
    pub verdef: Vec<String>,
}

/// One entry of DT_VERDEF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionDefinition {
    /// `vd_ndx`: what the version-index table calls it.
    pub index: u16,
    /// `vd_flags` ([`VER_FLG_BASE`], ...).
    pub flags: u16,
    /// Its name, then the names of its parents.
    pub names: Vec<String>,
}

/// One entry of the dynamic symbol table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    /// `st_info >> 4` ([`STB_LOCAL`], ...).
    pub bind: u8,
    /// `st_info & 0xf` ([`STT_FUNC`], ...).
    pub kind: u8,
    /// `st_shndx` ([`SHN_UNDEF`], [`SHN_ABS`], or a section).
    pub shndx: u16,
    /// Its entry of the version-index table (DT_VERSYM); None without one.
    pub versym: Option<u16>,
}

/// What a shim generator needs of a library: its exports and their versions; and what the
/// skew check needs of a host's library: its imports and the versions they need
/// ([`Symbols::imports`], [`Symbols::exports`]).
#[derive(Clone, Debug)]
pub struct Symbols {
    pub soname: Option<String>,
    pub definitions: Vec<VersionDefinition>,
    /// DT_VERNEED, as [`ElfFile::verneed`].
    pub verneed: Vec<(String, Vec<NeededVersion>)>,
    /// Every symbol of the dynamic symbol table, in table order (index 0 included).
    pub symbols: Vec<Symbol>,
}

/// [`Reader::facts`] of the file at `path`, if it is a shared object for `machine`; else
/// why ld.so would pass it over (not ELF, another class or machine, not a shared object,
/// truncated, malformed). The reason names the problem, not the path.
pub fn read(path: &Path, machine: Machine) -> Result<ElfFile, String> {
    Reader::open(path)?.expect(machine)?.facts()
}

/// [`read`] of a file already open.
pub fn read_file(file: File, machine: Machine) -> Result<ElfFile, String> {
    Reader::from_file(file)?.expect(machine)?.facts()
}

/// [`read`] of a file's bytes.
pub fn read_bytes(bytes: &[u8], machine: Machine) -> Result<ElfFile, String> {
    Reader::from_bytes(bytes)?.expect(machine)?.facts()
}

/// The machine of the ELF file at `path`.
pub fn machine_of(path: &Path) -> Result<Machine, String> {
    Reader::open(path)?.machine()
}

/// An ELF file, its header read and checked (ELF, 32- or 64-bit, little-endian).
pub struct Reader<'a> {
    file: Blocks<'a>,
    layout: Layout,
    class: u8,
    e_machine: u16,
    e_type: u16,
    phoff: u64,
    phentsize: usize,
    phnum: usize,
}

impl Reader<'static> {
    /// The file at `path`.
    pub fn open(path: &Path) -> Result<Reader<'static>, String> {
        Reader::from_file(File::open(path).map_err(|e| format!("cannot open: {e}"))?)
    }

    /// A file already open.
    pub fn from_file(file: File) -> Result<Reader<'static>, String> {
        Reader::new(Source::File(file))
    }
}

impl<'a> Reader<'a> {
    /// A file's bytes, already in memory (a copy of the whole file is read without
    /// further copies).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Reader<'a>, String> {
        Reader::new(Source::Bytes(bytes))
    }

    fn new(source: Source<'a>) -> Result<Reader<'a>, String> {
        let mut file = Blocks::new(source);
        let first = file.block(0)?;
        let ident: [u8; 20] = first
            .get(..20)
            .and_then(|b| b.try_into().ok())
            .ok_or("too short to be an ELF file")?;
        if &ident[..4] != b"\x7fELF" {
            return Err("not an ELF file".into());
        }
        let class = ident[4];
        let layout = match class {
            ELFCLASS32 => Layout::ELF32,
            ELFCLASS64 => Layout::ELF64,
            other => return Err(format!("malformed: unknown ELF class {other}")),
        };
        if ident[5] != ELFDATA2LSB {
            return Err("wrong byte order (not little-endian)".into());
        }
        let header = file.bytes(0, layout.ehdr, "ELF header")?;
        let half = |at| usize::from(u16_at(&header, at));
        // After e_phoff: e_shoff (a word), e_flags (4 bytes), e_ehsize (2), e_phentsize,
        // e_phnum.
        let e_phentsize = layout.e_phoff + 2 * layout.word_size + 6;
        Ok(Reader {
            class,
            e_machine: u16_at(&header, 18),
            e_type: u16_at(&header, 16),
            phoff: layout.word(&header, layout.e_phoff),
            phentsize: half(e_phentsize),
            phnum: half(e_phentsize + 2),
            layout,
            file,
        })
    }

    /// The machine the file is built for; an error naming its class and `e_machine` if
    /// capsule knows no such machine.
    pub fn machine(&self) -> Result<Machine, String> {
        Machine::from_elf(self.class, self.e_machine).ok_or_else(|| {
            format!(
                "unknown machine (e_machine {}, {}-bit; capsule knows {})",
                self.e_machine,
                self.layout.word_size * 8,
                Machine::ALL.map(Machine::name).join(", ")
            )
        })
    }

    /// This reader if the file is built for `machine`; else why ld.so of that machine
    /// would pass it over (its `open_verify` checks the class first, then the machine).
    pub fn expect(self, machine: Machine) -> Result<Self, String> {
        let bits = |class| if class == ELFCLASS32 { 32 } else { 64 };
        if self.class != machine.elf_class() {
            return Err(format!(
                "wrong ELF class ({}-bit, not {}-bit)",
                bits(self.class),
                bits(machine.elf_class())
            ));
        }
        if self.e_machine != machine.e_machine() {
            let what = match self.machine() {
                Ok(other) => other.name().to_string(),
                Err(_) => format!("e_machine {}", self.e_machine),
            };
            return Err(format!("wrong machine ({what}, not {})", machine.name()));
        }
        Ok(self)
    }

    /// The dynamic-linking facts the resolver needs.
    pub fn facts(mut self) -> Result<ElfFile, String> {
        self.check_type()?;
        let (segments, dynamic) = self.program_headers()?;
        let Some((offset, size)) = dynamic else {
            return Ok(ElfFile::default());
        };
        let dynamic = self.dynamic_entries(offset, size)?;
        self.facts_of(&segments, &dynamic)
    }

    /// The dynamic symbols and version definitions, as ld.so sees them (through the
    /// dynamic section: the symbol count is the hash table's).
    pub fn symbols(mut self) -> Result<Symbols, String> {
        self.check_type()?;
        let (segments, dynamic) = self.program_headers()?;
        let (offset, size) = dynamic.ok_or("not a shared library (no dynamic section)")?;
        let dynamic = self.dynamic_entries(offset, size)?;
        let strings = self.strings(&segments, &dynamic)?;
        let soname = dynamic
            .soname
            .map(|i| strings.get(&mut self.file, i))
            .transpose()?;
        let definitions = match dynamic.verdef {
            Some((vaddr, count)) => {
                let at = file_offset(&segments, vaddr, "version definitions (DT_VERDEF)")?;
                self.read_verdef(&strings, at, count)?
            }
            None => Vec::new(),
        };
        let verneed = self.verneed(&segments, &dynamic, &strings)?;
        let symbols = self.read_symbols(&segments, &dynamic, &strings)?;
        Ok(Symbols {
            soname,
            definitions,
            verneed,
            symbols,
        })
    }

    /// ld.so maps only `ET_DYN` objects as libraries.
    fn check_type(&self) -> Result<(), String> {
        if self.e_type != ET_DYN {
            return Err("not a shared object (ELF type is not ET_DYN)".into());
        }
        Ok(())
    }

    /// The PT_LOAD segments, and the file range of PT_DYNAMIC if there is one.
    fn program_headers(&mut self) -> Result<(Vec<Segment>, Option<FileRange>), String> {
        let l = self.layout;
        if self.phnum > 0 && self.phentsize != l.phdr {
            return Err(format!(
                "malformed: program headers of {} bytes, not {}",
                self.phentsize, l.phdr
            ));
        }
        // phnum < 2^16 and phdr is 56 at most: no overflow.
        let table = self
            .file
            .bytes(self.phoff, self.phnum * l.phdr, "program headers")?;
        let mut segments = Vec::new();
        let mut dynamic = None;
        for phdr in table.chunks_exact(l.phdr) {
            let offset = l.word(phdr, l.p_offset);
            let filesz = l.word(phdr, l.p_filesz);
            match u32_at(phdr, 0) {
                PT_LOAD => segments.push(Segment {
                    offset,
                    vaddr: l.word(phdr, l.p_vaddr),
                    filesz,
                }),
                PT_DYNAMIC => dynamic = Some((offset, filesz)),
                _ => {}
            }
        }
        Ok((segments, dynamic))
    }

    fn dynamic_entries(&mut self, offset: u64, size: u64) -> Result<Dynamic, String> {
        let l = self.layout;
        let entry_size = 2 * l.word_size;
        let max = MAX_DYNAMIC_ENTRIES * entry_size;
        let mut out = Dynamic::default();
        let (mut verneednum, mut verdefnum) = (0, 0);
        let (mut verneed, mut verdef) = (None, None);
        // One read for the whole section (a few hundred bytes). A file cut inside it is an
        // error only where no DT_NULL comes before the cut, as when reading entry by entry.
        let whole = usize::try_from(size / entry_size as u64)
            .map_or(max, |n| n.saturating_mul(entry_size).min(max));
        let section = self.file.available(offset, whole)?;
        let mut ended = false;
        for entry in section.chunks_exact(entry_size) {
            let (tag, value) = (l.word(entry, 0), l.word(entry, l.word_size));
            match tag {
                DT_NULL => {
                    ended = true;
                    break;
                }
                DT_NEEDED => out.needed.push(value),
                DT_SONAME => out.soname = Some(value),
                DT_RPATH => out.rpath.push(value),
                DT_RUNPATH => out.runpath.push(value),
                DT_STRTAB => out.strtab = Some(value),
                DT_STRSZ => out.strsz = value,
                DT_SYMTAB => out.symtab = Some(value),
                DT_SYMENT => out.syment = Some(value),
                DT_HASH => out.hash = Some(value),
                DT_GNU_HASH => out.gnu_hash = Some(value),
                DT_VERSYM => out.versym = Some(value),
                DT_FLAGS_1 => out.flags_1 = value,
                DT_VERNEED => verneed = Some(value),
                DT_VERNEEDNUM => verneednum = value,
                DT_VERDEF => verdef = Some(value),
                DT_VERDEFNUM => verdefnum = value,
                _ => {}
            }
        }
        if !ended && section.len() < whole {
            return Err("truncated: the file ends inside its dynamic section".into());
        }
        if !ended && whole == max {
            return Err(format!(
                "malformed: no DT_NULL in the first {MAX_DYNAMIC_ENTRIES} entries of its dynamic section"
            ));
        }
        out.verneed = verneed.map(|v| (v, verneednum));
        out.verdef = verdef.map(|v| (v, verdefnum));
        Ok(out)
    }

    /// The string table, as the dynamic segment places it.
    fn strings(&self, segments: &[Segment], dynamic: &Dynamic) -> Result<Strings, String> {
        Ok(match dynamic.strtab {
            Some(vaddr) => Strings {
                offset: file_offset(segments, vaddr, "string table")?,
                size: dynamic.strsz,
            },
            None => Strings { offset: 0, size: 0 },
        })
    }

    fn facts_of(&mut self, segments: &[Segment], dynamic: &Dynamic) -> Result<ElfFile, String> {
        let strings = self.strings(segments, dynamic)?;
        let file = &mut self.file;
        let mut all = |indices: &[u64]| -> Result<Vec<String>, String> {
            indices.iter().map(|&i| strings.get(file, i)).collect()
        };
        let needed = all(&dynamic.needed)?;
        let runpath = split(all(&dynamic.runpath)?);
        let has_runpath = !dynamic.runpath.is_empty();
        let rpath = if has_runpath {
            Vec::new()
        } else {
            split(all(&dynamic.rpath)?)
        };
        let soname = dynamic
            .soname
            .map(|i| strings.get(&mut self.file, i))
            .transpose()?;
        let verneed = self.verneed(segments, dynamic, &strings)?;
        let verdef = match dynamic.verdef {
            Some((vaddr, count)) => {
                let at = file_offset(segments, vaddr, "version definitions (DT_VERDEF)")?;
                self.read_verdef(&strings, at, count)?
                    .into_iter()
                    .filter_map(|d| d.names.into_iter().next())
                    .collect()
            }
            None => Vec::new(),
        };
        Ok(ElfFile {
            soname,
            needed,
            rpath,
            runpath,
            has_runpath,
            nodeflib: dynamic.flags_1 & DF_1_NODEFLIB != 0,
            verneed,
            verdef,
        })
    }

    /// DT_VERNEED's records, if the dynamic section has them.
    fn verneed(
        &mut self,
        segments: &[Segment],
        dynamic: &Dynamic,
        strings: &Strings,
    ) -> Result<Vec<(String, Vec<NeededVersion>)>, String> {
        let Some((vaddr, count)) = dynamic.verneed else {
            return Ok(Vec::new());
        };
        let at = file_offset(segments, vaddr, "version needs (DT_VERNEED)")?;
        self.read_verneed(strings, at, count)
    }

    /// Walk DT_VERNEED's `count` records (each `vn_next` further, as ld.so does, stopping
    /// at a zero `vn_next`). The offsets only grow, so the walk ends at the file's end at
    /// worst.
    fn read_verneed(
        &mut self,
        strings: &Strings,
        mut at: u64,
        count: u64,
    ) -> Result<Vec<(String, Vec<NeededVersion>)>, String> {
        let file = &mut self.file;
        let mut out = Vec::new();
        for _ in 0..count {
            let need = file.bytes(at, VERNEED_SIZE, "version needs")?;
            let mut versions = Vec::new();
            let mut aux = advance(at, u32_at(&need, 8))?;
            for _ in 0..u16_at(&need, 2) {
                let entry = file.bytes(aux, VERNAUX_SIZE, "version needs")?;
                versions.push(NeededVersion {
                    name: strings.get(file, u64::from(u32_at(&entry, 8)))?,
                    weak: u16_at(&entry, 4) & VER_FLG_WEAK != 0,
                    index: u16_at(&entry, 6),
                });
                match u32_at(&entry, 12) {
                    0 => break,
                    next => aux = advance(aux, next)?,
                }
            }
            out.push((strings.get(file, u64::from(u32_at(&need, 4)))?, versions));
            match u32_at(&need, 12) {
                0 => break,
                next => at = advance(at, next)?,
            }
        }
        Ok(out)
    }

    /// DT_VERDEF's `count` definitions, each with its names (`vd_cnt` auxiliary entries:
    /// its own, then its parents').
    fn read_verdef(
        &mut self,
        strings: &Strings,
        mut at: u64,
        count: u64,
    ) -> Result<Vec<VersionDefinition>, String> {
        let file = &mut self.file;
        let mut out = Vec::new();
        for _ in 0..count {
            let def = file.bytes(at, VERDEF_SIZE, "version definitions")?;
            let mut names = Vec::new();
            let mut aux = advance(at, u32_at(&def, 12))?;
            for _ in 0..u16_at(&def, 6) {
                let entry = file.bytes(aux, VERDAUX_SIZE, "version definitions")?;
                names.push(strings.get(file, u64::from(u32_at(&entry, 0)))?);
                match u32_at(&entry, 4) {
                    0 => break,
                    next => aux = advance(aux, next)?,
                }
            }
            out.push(VersionDefinition {
                index: u16_at(&def, 4),
                flags: u16_at(&def, 2),
                names,
            });
            match u32_at(&def, 16) {
                0 => break,
                next => at = advance(at, next)?,
            }
        }
        Ok(out)
    }

    /// The dynamic symbol table with each symbol's version index.
    fn read_symbols(
        &mut self,
        segments: &[Segment],
        dynamic: &Dynamic,
        strings: &Strings,
    ) -> Result<Vec<Symbol>, String> {
        let l = self.layout;
        let Some(symtab) = dynamic.symtab else {
            return Ok(Vec::new());
        };
        if let Some(syment) = dynamic.syment.filter(|&s| s != l.sym as u64) {
            return Err(format!(
                "malformed: symbols of {syment} bytes (DT_SYMENT), not {}",
                l.sym
            ));
        }
        let count = self.symbol_count(segments, dynamic)?;
        let too_many = || format!("malformed: {count} dynamic symbols is more than a file holds");
        let count = usize::try_from(count).map_err(|_| too_many())?;
        let len = count.checked_mul(l.sym).ok_or_else(too_many)?;
        let at = file_offset(segments, symtab, "symbol table (DT_SYMTAB)")?;
        let table = self.file.bytes(at, len, "symbol table")?;
        let versions = match dynamic.versym {
            Some(vaddr) => {
                let at = file_offset(segments, vaddr, "version indices (DT_VERSYM)")?;
                // count * sym bytes fitted in memory: count * 2 cannot overflow.
                Some(self.file.bytes(at, count * 2, "version indices")?)
            }
            None => None,
        };
        let strings = strings.load(&mut self.file)?;
        let mut out = Vec::with_capacity(count);
        for (index, sym) in table.chunks_exact(l.sym).enumerate() {
            let info = sym[l.st_info];
            out.push(Symbol {
                name: strings.get(u64::from(u32_at(sym, 0)))?,
                value: l.word(sym, l.st_value),
                size: l.word(sym, l.st_size),
                bind: info >> 4,
                kind: info & 0xf,
                shndx: u16_at(sym, l.st_shndx),
                versym: versions.as_ref().map(|v| u16_at(v, 2 * index)),
            });
        }
        Ok(out)
    }

    /// How many entries the dynamic symbol table has: DT_HASH's chain count, else one
    /// past the last symbol DT_GNU_HASH's chains reach (ld.so can find no other).
    fn symbol_count(&mut self, segments: &[Segment], dynamic: &Dynamic) -> Result<u64, String> {
        if let Some(vaddr) = dynamic.hash {
            let at = file_offset(segments, vaddr, "hash table (DT_HASH)")?;
            let header = self.file.bytes(at, 8, "hash table")?;
            return Ok(u64::from(u32_at(&header, 4)));
        }
        let Some(vaddr) = dynamic.gnu_hash else {
            return Ok(0);
        };
        let what = "GNU hash table (DT_GNU_HASH)";
        let at = file_offset(segments, vaddr, what)?;
        let header = self.file.bytes(at, 16, what)?;
        let nbuckets = u64::from(u32_at(&header, 0));
        let symoffset = u64::from(u32_at(&header, 4));
        let bloom_size = u64::from(u32_at(&header, 8));
        let overflow = || format!("malformed: its {what} passes 2^64");
        let buckets_at = bloom_size
            .checked_mul(self.layout.word_size as u64)
            .and_then(|b| b.checked_add(16))
            .and_then(|b| b.checked_add(at))
            .ok_or_else(overflow)?;
        let buckets_len = usize::try_from(nbuckets * 4).map_err(|_| overflow())?;
        let buckets = self.file.bytes(buckets_at, buckets_len, what)?;
        let last = buckets
            .chunks_exact(4)
            .map(|b| u64::from(u32_at(b, 0)))
            .max()
            .unwrap_or(0);
        if last < symoffset {
            // No bucket holds a symbol: only the unhashed ones below symoffset exist.
            return Ok(symoffset);
        }
        // Walk the last bucket's chain to its end (the entry with the low bit set).
        let chains_at = buckets_at.checked_add(nbuckets * 4).ok_or_else(overflow)?;
        let mut index = last;
        loop {
            let at = (index - symoffset)
                .checked_mul(4)
                .and_then(|o| o.checked_add(chains_at))
                .ok_or_else(overflow)?;
            let entry = self.file.bytes(at, 4, what)?;
            if u32_at(&entry, 0) & 1 != 0 {
                return index.checked_add(1).ok_or_else(overflow);
            }
            index = index.checked_add(1).ok_or_else(overflow)?;
        }
    }
}

/// Where the fields of the ELF structures are in one class.
#[derive(Clone, Copy)]
struct Layout {
    /// Bytes in an address, offset or size (`Elf32_Word`/`Elf64_Xword`).
    word_size: usize,
    ehdr: usize,
    e_phoff: usize,
    phdr: usize,
    p_offset: usize,
    p_vaddr: usize,
    p_filesz: usize,
    sym: usize,
    st_value: usize,
    st_size: usize,
    st_info: usize,
    st_shndx: usize,
}

impl Layout {
    const ELF32: Layout = Layout {
        word_size: 4,
        ehdr: 52,
        e_phoff: 28,
        phdr: 32,
        p_offset: 4,
        p_vaddr: 8,
        p_filesz: 16,
        sym: 16,
        st_value: 4,
        st_size: 8,
        st_info: 12,
        st_shndx: 14,
    };
    const ELF64: Layout = Layout {
        word_size: 8,
        ehdr: 64,
        e_phoff: 32,
        phdr: 56,
        p_offset: 8,
        p_vaddr: 16,
        p_filesz: 32,
        sym: 24,
        st_value: 8,
        st_size: 16,
        st_info: 4,
        st_shndx: 6,
    };

    /// The word at `at` of a record read whole, widened to 64 bits.
    fn word(&self, record: &[u8], at: usize) -> u64 {
        if self.word_size == 4 {
            u64::from(u32_at(record, at))
        } else {
            u64_at(record, at)
        }
    }
}

/// Size of one `pread`: the header and program headers of a typical library come in one
/// read, its dynamic segment, strings and version records in a few more. Not a page: each
/// block is a heap buffer, and a fresh page of heap costs a page fault, which on this
/// project's VMs is dearer than a few more reads (libz's facts: 4 faults with 4 KiB
/// blocks, 2 with 1 KiB).
const BLOCK: u64 = 1024;

/// A read longer than this (a symbol or string table) is one `pread`, not cached blocks.
const LARGE_READ: usize = 4 * BLOCK as usize;

/// The most one `pread` of a large read asks for: the buffer grows with what the file holds.
const READ_PIECE: usize = 256 * 1024;

/// The most dynamic entries read: real sections hold a few dozen (libLLVM's: 40). A
/// PT_DYNAMIC claiming more is read this far and must end (DT_NULL) inside it, so a
/// crafted size cannot make the reader walk a whole file.
const MAX_DYNAMIC_ENTRIES: usize = 4096;

/// The longest string (a soname, a search path, a symbol name) believed before the file
/// is called malformed; a missing NUL would otherwise read the rest of the string table.
const MAX_STRING: u64 = 64 * 1024;

/// Size of the version records (the same in both classes).
const VERNEED_SIZE: usize = 16;
const VERNAUX_SIZE: usize = 16;
const VERDEF_SIZE: usize = 20;
const VERDAUX_SIZE: usize = 8;

/// Where a file's bytes come from.
enum Source<'a> {
    /// Read in blocks with `pread`, each block at most once.
    File(File),
    /// Already in memory: blocks are slices of it.
    Bytes(&'a [u8]),
}

/// A file read in aligned blocks on demand.
struct Blocks<'a> {
    source: Source<'a>,
    /// By block index; a handful per file, so a list beats a hash map.
    blocks: Vec<(u64, Vec<u8>)>,
}

impl<'a> Blocks<'a> {
    fn new(source: Source<'a>) -> Self {
        Blocks {
            source,
            blocks: Vec::new(),
        }
    }

    /// Block `index`, read if not yet; shorter than `BLOCK` at the end of the file.
    fn block(&mut self, index: u64) -> Result<&[u8], String> {
        let file = match &self.source {
            Source::Bytes(all) => {
                // `index` is an offset divided by BLOCK: the product cannot overflow.
                let start = usize::try_from(index * BLOCK).map_or(all.len(), |s| s.min(all.len()));
                let end = start.saturating_add(BLOCK as usize).min(all.len());
                return Ok(&all[start..end]);
            }
            Source::File(file) => file,
        };
        let at = match self.blocks.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                let bytes = read_block(file, index)?;
                self.blocks.push((index, bytes));
                self.blocks.len() - 1
            }
        };
        Ok(&self.blocks[at].1)
    }

    /// `len` bytes at `offset`; "truncated" where the file ends before them.
    fn bytes(&mut self, offset: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
        let out = self.available(offset, len)?;
        if out.len() < len {
            return Err(format!("truncated: the file ends inside its {what}"));
        }
        Ok(out)
    }

    /// Up to `len` bytes at `offset`: fewer where the file ends before them.
    fn available(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let end = u64::try_from(len)
            .ok()
            .and_then(|len| offset.checked_add(len))
            .ok_or_else(|| format!("malformed: {len} bytes at file offset {offset} pass 2^64"))?;
        if let Source::File(file) = &self.source {
            if len > LARGE_READ {
                return read_range(file, offset, len);
            }
        }
        let mut out = Vec::with_capacity(len.min(BLOCK as usize));
        let mut at = offset;
        while at < end {
            let block = self.block(at / BLOCK)?;
            // Both below BLOCK, so the conversions are exact.
            let from = (at % BLOCK) as usize;
            let upto = block.len().min(from + (end - at).min(BLOCK) as usize);
            if from >= upto {
                break;
            }
            out.extend_from_slice(&block[from..upto]);
            at += (upto - from) as u64;
        }
        Ok(out)
    }

    /// The NUL-terminated string at `offset`, at most `limit` bytes before its NUL.
    fn c_string(&mut self, offset: u64, limit: u64) -> Result<String, String> {
        let mut out = Vec::new();
        let mut at = offset;
        loop {
            let block = self.block(at / BLOCK)?;
            let from = (at % BLOCK) as usize;
            let Some(tail) = block.get(from..).filter(|t| !t.is_empty()) else {
                return Err(STRING_TRUNCATED.into());
            };
            match tail.iter().position(|&b| b == 0) {
                Some(nul) => {
                    out.extend_from_slice(&tail[..nul]);
                    break;
                }
                None => out.extend_from_slice(tail),
            }
            // A block ends before 2^64: `at` stays below the end of the file.
            at += tail.len() as u64;
            if out.len() as u64 > limit {
                break;
            }
        }
        if out.len() as u64 > limit {
            return Err(string_too_long(offset));
        }
        Ok(text(&out))
    }
}

fn read_block(file: &File, index: u64) -> Result<Vec<u8>, String> {
    // `index` is an offset divided by BLOCK, so the product cannot overflow.
    read_range(file, index * BLOCK, BLOCK as usize)
}

/// Up to `len` bytes at `offset` (`offset + len` checked by the caller), fewer where the
/// file ends: read in pieces of at most [`READ_PIECE`], so a crafted length allocates no
/// more than the file holds.
fn read_range(file: &File, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    while buf.len() < len {
        let filled = buf.len();
        buf.resize(filled + (len - filled).min(READ_PIECE), 0);
        let mut at = filled;
        while at < buf.len() {
            // Below offset + len, which the caller checked.
            match file.read_at(&mut buf[at..], offset + at as u64) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
        let ended = at < buf.len();
        buf.truncate(at);
        if ended {
            break;
        }
    }
    Ok(buf)
}

// Fields of records that `Blocks::bytes` read whole: a field past the record's end cannot
// be asked for, and would read as 0.
fn u16_at(record: &[u8], at: usize) -> u16 {
    bytes::u16_at(record, at).unwrap_or(0)
}

fn u32_at(record: &[u8], at: usize) -> u32 {
    bytes::u32_at(record, at).unwrap_or(0)
}

fn u64_at(record: &[u8], at: usize) -> u64 {
    bytes::u64_at(record, at).unwrap_or(0)
}

/// One PT_LOAD: where its file bytes are, and where they are mapped.
#[derive(Clone, Copy)]
struct Segment {
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// A file range: offset and size.
type FileRange = (u64, u64);

/// What the dynamic segment says, strings not yet read.
#[derive(Default)]
struct Dynamic {
    needed: Vec<u64>,
    soname: Option<u64>,
    rpath: Vec<u64>,
    runpath: Vec<u64>,
    strtab: Option<u64>,
    strsz: u64,
    symtab: Option<u64>,
    syment: Option<u64>,
    hash: Option<u64>,
    gnu_hash: Option<u64>,
    versym: Option<u64>,
    flags_1: u64,
    verneed: Option<(u64, u64)>,
    verdef: Option<(u64, u64)>,
}

/// The file offset of `vaddr`, through the PT_LOAD that maps it from the file.
fn file_offset(segments: &[Segment], vaddr: u64, what: &str) -> Result<u64, String> {
    segments
        .iter()
        .find(|s| vaddr >= s.vaddr && vaddr - s.vaddr < s.filesz)
        .and_then(|s| s.offset.checked_add(vaddr - s.vaddr))
        .ok_or_else(|| {
            format!("malformed: its {what} (address {vaddr:#x}) is in no loaded segment")
        })
}

/// The string table, as the dynamic segment places it.
struct Strings {
    offset: u64,
    size: u64,
}

impl Strings {
    fn get(&self, file: &mut Blocks<'_>, index: u64) -> Result<String, String> {
        let (at, limit) = self.locate(index)?;
        file.c_string(at, limit)
    }

    /// The file offset of string `index`, and the most bytes it may hold before its NUL.
    fn locate(&self, index: u64) -> Result<(u64, u64), String> {
        if index >= self.size {
            return Err(format!(
                "malformed: string offset {index} is past its string table ({} bytes)",
                self.size
            ));
        }
        let limit = (self.size - index).min(MAX_STRING);
        let at = self.offset.checked_add(index).ok_or_else(|| {
            format!(
                "malformed: string offset {index} of a table at file offset {} passes 2^64",
                self.offset
            )
        })?;
        Ok((at, limit))
    }

    /// The whole table, read at once for reading many strings (every symbol's name): one
    /// read where string by string would look a block up for each.
    fn load(&self, file: &mut Blocks<'_>) -> Result<LoadedStrings<'_>, String> {
        // The byte after the table too: a string may end there (as `c_string` reads it).
        let len = self.size.saturating_add(1).min(u64::MAX - self.offset);
        // Read to the end of the file at most, so less than usize::MAX anyway.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = file.available(self.offset, len)?;
        Ok(LoadedStrings {
            strings: self,
            bytes,
        })
    }
}

/// A string table read whole (up to the end of the file, where it is cut).
struct LoadedStrings<'s> {
    strings: &'s Strings,
    bytes: Vec<u8>,
}

impl LoadedStrings<'_> {
    /// [`Strings::get`], with its results: the same checks on bytes already read.
    fn get(&self, index: u64) -> Result<String, String> {
        let (at, limit) = self.strings.locate(index)?;
        // `index` is below the table's size, and `bytes` no longer than it plus one.
        let tail = usize::try_from(index)
            .ok()
            .and_then(|i| self.bytes.get(i..))
            .unwrap_or_default();
        let most = usize::try_from(limit).map_or(tail.len(), |l| l.saturating_add(1));
        let candidate = &tail[..tail.len().min(most)];
        match candidate.iter().position(|&b| b == 0) {
            Some(nul) => Ok(text(&candidate[..nul])),
            None if candidate.len() as u64 > limit => Err(string_too_long(at)),
            None => Err(STRING_TRUNCATED.into()),
        }
    }
}

const STRING_TRUNCATED: &str = "truncated: the file ends inside a string";

fn string_too_long(offset: u64) -> String {
    format!("malformed: a string at file offset {offset} runs past its table")
}

/// A string of the file: ELF names are bytes, most often UTF-8.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn split(entries: Vec<String>) -> Vec<String> {
    entries
        .iter()
        .flat_map(|e| e.split(':'))
        .map(str::to_string)
        .collect()
}

/// Offset `next` past `at`, for a chain of version records; "malformed" if it overflows.
fn advance(at: u64, next: u32) -> Result<u64, String> {
    at.checked_add(u64::from(next))
        .ok_or_else(|| "malformed: a version record points past the end of the file".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    /// The running libc: present wherever the tests run, with DT_VERDEF and DT_VERNEED.
    fn libc_bytes() -> (std::path::PathBuf, Vec<u8>) {
        let path =
            crate::loaded::running_libc_path().expect("the test process has libc.so.6 mapped");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
        (path, bytes)
    }

    fn native(bytes: &[u8]) -> Result<ElfFile, String> {
        read_bytes(bytes, Machine::NATIVE)
    }

    /// The same facts through goblin's full parse (section headers and all).
    fn facts_by_goblin(bytes: &[u8]) -> ElfFile {
        let elf = Elf::parse(bytes).expect("goblin parses the library");
        let split = |v: &[&str]| split(v.iter().map(|s| s.to_string()).collect());
        let name = |o: usize| elf.dynstrtab.get_at(o).unwrap_or("").to_string();
        ElfFile {
            soname: elf.soname.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath: if elf.runpaths.is_empty() {
                split(&elf.rpaths)
            } else {
                Vec::new()
            },
            runpath: split(&elf.runpaths),
            has_runpath: !elf.runpaths.is_empty(),
            nodeflib: elf.dynamic.as_ref().map_or(0, |d| d.info.flags_1) & DF_1_NODEFLIB != 0,
            verneed: elf.verneed.as_ref().map_or(Vec::new(), |s| {
                s.iter()
                    .map(|n| {
                        let v = n
                            .iter()
                            .map(|a| NeededVersion {
                                name: name(a.vna_name),
                                weak: a.vna_flags & VER_FLG_WEAK != 0,
                                index: a.vna_other,
                            })
                            .collect();
                        (name(n.vn_file), v)
                    })
                    .collect()
            }),
            verdef: elf.verdef.as_ref().map_or(Vec::new(), |s| {
                s.iter()
                    .filter_map(|d| d.iter().next())
                    .map(|a| name(a.vda_name))
                    .collect()
            }),
        }
    }

    /// The defined dynamic symbols and version definitions through goblin, as this
    /// reader reports them.
    fn symbols_by_goblin(bytes: &[u8]) -> (Vec<Symbol>, Vec<VersionDefinition>) {
        let elf = Elf::parse(bytes).expect("goblin parses the library");
        let symbols = elf
            .dynsyms
            .iter()
            .enumerate()
            .filter(|(_, s)| s.st_shndx != 0)
            .map(|(i, s)| Symbol {
                name: elf.dynstrtab.get_at(s.st_name).unwrap_or("").to_string(),
                value: s.st_value,
                size: s.st_size,
                bind: s.st_bind(),
                kind: s.st_type(),
                shndx: s.st_shndx as u16,
                versym: elf
                    .versym
                    .as_ref()
                    .and_then(|v| v.get_at(i))
                    .map(|v| v.vs_val),
            })
            .collect();
        let definitions = elf.verdef.as_ref().map_or(Vec::new(), |s| {
            s.iter()
                .map(|d| VersionDefinition {
                    index: d.vd_ndx,
                    flags: d.vd_flags,
                    names: d
                        .iter()
                        .map(|a| elf.dynstrtab.get_at(a.vda_name).unwrap_or("").to_string())
                        .collect(),
                })
                .collect()
        });
        (symbols, definitions)
    }

    #[test]
    fn agrees_with_a_full_parse_of_libc() {
        let (path, bytes) = libc_bytes();
        let ours = read(&path, Machine::NATIVE).unwrap();
        let full = facts_by_goblin(&bytes);
        assert_eq!(ours.soname.as_deref(), Some("libc.so.6"));
        assert!(
            ours.verdef.iter().any(|v| v.starts_with("GLIBC_2.")),
            "{ours:?}"
        );
        assert!(!ours.verneed.is_empty(), "libc needs versions of ld.so");
        assert_eq!(format!("{ours:?}"), format!("{full:?}"));
    }

    /// Every library of this machine's x86_64 and i386 directories (Debian's multiarch:
    /// both are installed for the tests), read by both readers: the same facts, the same
    /// defined symbols and version definitions. Each file is read for its own machine, and
    /// refused for the other class with the reason ld.so would give.
    #[test]
    fn agrees_with_a_full_parse_of_every_installed_library() {
        let mut read_by_class = [0, 0];
        for machine in [Machine::X86_64, Machine::X86] {
            let dir = Path::new("/usr/lib").join(machine.multiarch());
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (apt-get install libc6:i386 zlib1g:i386)",
                    dir.display()
                )
            });
            for entry in entries {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let meta = std::fs::metadata(&path);
                if !name.contains(".so") || !meta.is_ok_and(|m| m.is_file()) {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                if !bytes.starts_with(b"\x7fELF") {
                    continue; // a linker script (libc.so)
                }
                let reader = Reader::from_bytes(&bytes).unwrap();
                assert_eq!(reader.machine(), Ok(machine), "{name}");
                let other = if machine == Machine::X86 {
                    Machine::X86_64
                } else {
                    Machine::X86
                };
                let refused = read_bytes(&bytes, other).unwrap_err();
                assert!(refused.starts_with("wrong ELF class"), "{name}: {refused}");
                let ours = read_bytes(&bytes, machine).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    format!("{ours:?}"),
                    format!("{:?}", facts_by_goblin(&bytes)),
                    "{name}"
                );
                let symbols = Reader::from_bytes(&bytes).unwrap().symbols().unwrap();
                let defined: Vec<Symbol> = symbols
                    .symbols
                    .into_iter()
                    .filter(|s| s.shndx != SHN_UNDEF)
                    .collect();
                let (goblin_defined, goblin_definitions) = symbols_by_goblin(&bytes);
                assert_eq!(defined, goblin_defined, "{name}");
                assert_eq!(symbols.definitions, goblin_definitions, "{name}");
                assert_eq!(symbols.soname, ours.soname, "{name}");
                read_by_class[usize::from(machine == Machine::X86)] += 1;
            }
        }
        // Debian 12 with the packages the tests install: hundreds of each.
        assert!(
            read_by_class[0] > 100 && read_by_class[1] > 20,
            "libraries read (x86_64, i386): {read_by_class:?}"
        );
    }

    #[test]
    fn loaded_libc_and_ld_so_read_from_memory_agree_with_their_files() {
        for soname in ["libc.so.6", Machine::NATIVE.ld_so()] {
            let (path, in_memory) =
                crate::loaded::glibc_facts(soname).expect("glibc is loaded in a test process");
            let on_disk = read(&path, Machine::NATIVE).unwrap();
            assert_eq!(in_memory.soname.as_deref(), Some(soname));
            assert!(!in_memory.verdef.is_empty(), "{soname}: {in_memory:?}");
            assert_eq!(in_memory.soname, on_disk.soname, "{soname}");
            assert_eq!(in_memory.needed, on_disk.needed, "{soname}");
            assert_eq!(in_memory.verdef, on_disk.verdef, "{soname}");
        }
        assert!(crate::loaded::glibc_facts("libnot-loaded-here.so.9").is_none());
    }

    #[test]
    fn reads_a_few_blocks_not_the_file() {
        let (path, bytes) = libc_bytes();
        let mut reader = Reader::open(&path).unwrap();
        let (segments, dynamic) = reader.program_headers().unwrap();
        let (offset, size) = dynamic.unwrap();
        let dynamic = reader.dynamic_entries(offset, size).unwrap();
        reader.facts_of(&segments, &dynamic).unwrap();
        let read = reader.file.blocks.len() as u64 * BLOCK;
        assert!(
            read * 20 < bytes.len() as u64,
            "read {read} of {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_a_subset_never_a_panic() {
        let (_, bytes) = libc_bytes();
        let full = native(&bytes).unwrap();
        // Every length up to 16 KiB (headers), then cuts through the rest.
        let lengths = (0..16 * 1024).chain((16 * 1024..bytes.len()).step_by(997));
        for len in lengths {
            if let Ok(part) = native(&bytes[..len]) {
                // A cut past everything the reader needs gives the same facts.
                assert_eq!(format!("{part:?}"), format!("{full:?}"), "cut at {len}");
            }
        }
        assert!(native(&bytes[..100]).unwrap_err().contains("truncated"));
        assert!(native(&bytes[..10]).unwrap_err().contains("too short"));
    }

    #[test]
    fn mutated_headers_never_panic() {
        // A cheap stand-in for a fuzzer: the ELF and program headers, byte by byte, of a
        // 64-bit and a 32-bit library, through both readings.
        let (_, libc) = libc_bytes();
        let i386 = std::fs::read("/usr/lib/i386-linux-gnu/libz.so.1")
            .expect("i386 zlib (apt-get install zlib1g:i386)");
        for bytes in [libc, i386] {
            let reader = Reader::from_bytes(&bytes).unwrap();
            let (layout, phnum) = (reader.layout, reader.phnum);
            let cut = &bytes[..(64 * 1024).min(bytes.len())];
            for i in 0..layout.ehdr + phnum * layout.phdr {
                for v in [0u8, 1, 0x7f, 0xff] {
                    let mut b = cut.to_vec();
                    b[i] = v;
                    let _ = Reader::from_bytes(&b).and_then(Reader::facts);
                    let _ = Reader::from_bytes(&b).and_then(Reader::symbols);
                }
            }
        }
    }

    /// The inputs kept in `fuzz/regressions/elffile/` (crafted offsets that wrapped past
    /// 2^64, and whatever the fuzz target `elffile` found): each a "malformed" error.
    #[test]
    fn fuzz_regressions_are_malformed_not_panics() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/elffile");
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(inputs.len() >= 2, "{}: {inputs:?}", dir.display());
        for input in inputs {
            let bytes = std::fs::read(&input).unwrap();
            let reason = Reader::from_bytes(&bytes)
                .and_then(|r| {
                    let machine = r.machine()?;
                    r.expect(machine)?.facts()
                })
                .expect_err(&input.display().to_string());
            assert!(
                reason.starts_with("malformed"),
                "{}: {reason}",
                input.display()
            );
            let _ = Reader::from_bytes(&bytes).and_then(Reader::symbols);
        }
    }

    #[test]
    fn wrapping_offsets_are_malformed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/elffile");
        let read = |name: &str| {
            read_bytes(&std::fs::read(dir.join(name)).unwrap(), Machine::X86_64).unwrap_err()
        };
        assert!(
            read("pt-load-offset-wraps").contains("string table (address 0x20)"),
            "{}",
            read("pt-load-offset-wraps")
        );
        assert!(
            read("string-offset-wraps").contains("string offset 512"),
            "{}",
            read("string-offset-wraps")
        );
    }

    /// A small shared object of `machine`, laid out as a linker would (one PT_LOAD mapping
    /// the whole file at address 0, then PT_DYNAMIC), with a soname, two DT_NEEDED, a
    /// RUNPATH, a DT_HASH symbol table of five symbols (the null one, `f@@V1` a
    /// function, `v@V1` a hidden variable, the imports `g@GLIBC_2.1` and a weak
    /// unversioned `h`), two version definitions (the base one and `V1`) and a version
    /// need (`GLIBC_2.1` of libc.so.6, index 3).
    struct Image {
        bytes: Vec<u8>,
        /// File offsets of the parts tests damage.
        dynamic: usize,
        symtab: usize,
    }

    /// Entries of [`image`]'s symbol table.
    const SYMBOLS: usize = 5;

    fn image(machine: Machine) -> Image {
        let w = machine.word_size();
        let l = if w == 4 { Layout::ELF32 } else { Layout::ELF64 };
        let word = |out: &mut Vec<u8>, v: u64| {
            if w == 4 {
                out.extend_from_slice(&u32::try_from(v).unwrap().to_le_bytes());
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        };
        // Strings.
        let mut strtab = vec![0u8];
        let mut string = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let (soname, libc, libm) = (
            string("libt.so.1"),
            string("libc.so.6"),
            string("libm.so.6"),
        );
        let runpath = string("$ORIGIN/a:/b");
        let (f, v, v1, glibc) = (string("f"), string("v"), string("V1"), string("GLIBC_2.1"));
        let (g, h) = (string("g"), string("h"));
        // Offsets: headers, then the tables, each 8-aligned.
        let phdrs = l.ehdr;
        let dynamic = (phdrs + 2 * l.phdr).next_multiple_of(8);
        let dyn_count = 14;
        let strtab_at = dynamic + dyn_count * 2 * w;
        let symtab = (strtab_at + strtab.len()).next_multiple_of(8);
        let hash = symtab + SYMBOLS * l.sym;
        let versym = hash + 4 * (3 + SYMBOLS);
        let verdef = (versym + SYMBOLS * 2).next_multiple_of(8);
        let verneed = verdef + 2 * (VERDEF_SIZE + VERDAUX_SIZE);
        let end = verneed + VERNEED_SIZE + VERNAUX_SIZE;

        let mut out = Vec::new();
        // ELF header.
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[machine.elf_class(), ELFDATA2LSB, 1, 0]);
        out.resize(16, 0);
        out.extend_from_slice(&ET_DYN.to_le_bytes());
        out.extend_from_slice(&machine.e_machine().to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        word(&mut out, 0); // e_entry
        word(&mut out, phdrs as u64);
        word(&mut out, 0); // e_shoff
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(l.ehdr as u16).to_le_bytes());
        out.extend_from_slice(&(l.phdr as u16).to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.resize(l.ehdr, 0);
        // Program headers: p_offset, p_vaddr, p_filesz at the layout's places.
        for (kind, offset, size) in [(PT_LOAD, 0, end), (PT_DYNAMIC, dynamic, dyn_count * 2 * w)] {
            let at = out.len();
            out.resize(at + l.phdr, 0);
            let mut put = |field: usize, v: u64| {
                let mut b = Vec::new();
                word(&mut b, v);
                out[at + field..at + field + w].copy_from_slice(&b);
            };
            put(l.p_offset, offset as u64);
            put(l.p_vaddr, offset as u64);
            put(l.p_filesz, size as u64);
            out[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        }
        out.resize(dynamic, 0);
        for (tag, value) in [
            (DT_SONAME, soname),
            (DT_NEEDED, libc),
            (DT_NEEDED, libm),
            (DT_RUNPATH, runpath),
            (DT_STRTAB, strtab_at as u64),
            (DT_STRSZ, strtab.len() as u64),
            (DT_SYMTAB, symtab as u64),
            (DT_HASH, hash as u64),
            (DT_VERSYM, versym as u64),
            (DT_VERDEF, verdef as u64),
            (DT_VERDEFNUM, 2),
            (DT_VERNEED, verneed as u64),
            (DT_VERNEEDNUM, 1),
            (DT_NULL, 0),
        ] {
            word(&mut out, tag);
            word(&mut out, value);
        }
        assert_eq!(out.len(), strtab_at);
        out.extend_from_slice(&strtab);
        out.resize(symtab, 0);
        // Symbols: (name, value, size, info, shndx).
        for (name, value, size, info, shndx) in [
            (0, 0, 0, 0, 0),
            (f, 0x1000, 16, (1 << 4) | STT_FUNC, 7u16),
            (v, 0x2000, 4, (1 << 4) | STT_OBJECT, 8),
            (g, 0, 0, (1 << 4) | STT_FUNC, SHN_UNDEF),
            (h, 0, 0, (STB_WEAK << 4) | STT_FUNC, SHN_UNDEF),
        ] {
            let at = out.len();
            out.resize(at + l.sym, 0);
            out[at..at + 4].copy_from_slice(&(name as u32).to_le_bytes());
            let mut b = Vec::new();
            word(&mut b, value);
            out[at + l.st_value..at + l.st_value + w].copy_from_slice(&b);
            b.clear();
            word(&mut b, size);
            out[at + l.st_size..at + l.st_size + w].copy_from_slice(&b);
            out[at + l.st_info] = info;
            out[at + l.st_shndx..at + l.st_shndx + 2].copy_from_slice(&shndx.to_le_bytes());
        }
        // DT_HASH: one bucket, a chain per symbol (the definitions': 2, then 1).
        for v in [1u32, SYMBOLS as u32, 2, 0, 0, 1, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u16, 2, 2 | VERSYM_HIDDEN, 3, 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(verdef, 0);
        // Two definitions: the base (index 1), then V1 (index 2), each with one aux.
        for (flags, index, name, last) in [(VER_FLG_BASE, 1u16, soname, false), (0, 2, v1, true)] {
            out.extend_from_slice(&1u16.to_le_bytes()); // vd_version
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&1u16.to_le_bytes()); // vd_cnt
            out.extend_from_slice(&0u32.to_le_bytes()); // vd_hash
            out.extend_from_slice(&(VERDEF_SIZE as u32).to_le_bytes()); // vd_aux
            let next = if last { 0 } else { VERDEF_SIZE + VERDAUX_SIZE };
            out.extend_from_slice(&(next as u32).to_le_bytes());
            out.extend_from_slice(&(name as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        // One need: GLIBC_2.1 of libc.so.6, weak, index 3.
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes()); // vn_cnt
        out.extend_from_slice(&(libc as u32).to_le_bytes());
        out.extend_from_slice(&(VERNEED_SIZE as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // vna_hash
        out.extend_from_slice(&VER_FLG_WEAK.to_le_bytes());
        out.extend_from_slice(&3u16.to_le_bytes());
        out.extend_from_slice(&(glibc as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(out.len(), end);
        Image {
            bytes: out,
            dynamic,
            symtab,
        }
    }

    #[test]
    fn both_classes_read_alike() {
        for machine in Machine::ALL {
            let image = image(machine);
            let reader = Reader::from_bytes(&image.bytes).unwrap();
            assert_eq!(reader.machine(), Ok(machine));
            let facts = reader.expect(machine).unwrap().facts().unwrap();
            assert_eq!(facts.soname.as_deref(), Some("libt.so.1"), "{machine:?}");
            assert_eq!(facts.needed, ["libc.so.6", "libm.so.6"], "{machine:?}");
            assert_eq!(facts.runpath, ["$ORIGIN/a", "/b"], "{machine:?}");
            assert!(facts.has_runpath && facts.rpath.is_empty(), "{machine:?}");
            assert_eq!(facts.verdef, ["libt.so.1", "V1"], "{machine:?}");
            let symbols = Reader::from_bytes(&image.bytes).unwrap().symbols().unwrap();
            let names: Vec<_> = symbols
                .symbols
                .iter()
                .map(|s| (s.name.as_str(), s.value, s.size, s.kind, s.shndx, s.versym))
                .collect();
            assert_eq!(
                names,
                [
                    ("", 0, 0, 0, 0, Some(0)),
                    ("f", 0x1000, 16, STT_FUNC, 7, Some(2)),
                    ("v", 0x2000, 4, STT_OBJECT, 8, Some(2 | VERSYM_HIDDEN)),
                    ("g", 0, 0, STT_FUNC, SHN_UNDEF, Some(3)),
                    ("h", 0, 0, STT_FUNC, SHN_UNDEF, Some(1)),
                ],
                "{machine:?}"
            );
            assert_eq!(symbols.verneed, facts.verneed, "{machine:?}");
            assert_eq!(
                symbols.definitions,
                [
                    VersionDefinition {
                        index: 1,
                        flags: VER_FLG_BASE,
                        names: vec!["libt.so.1".into()]
                    },
                    VersionDefinition {
                        index: 2,
                        flags: 0,
                        names: vec!["V1".into()]
                    },
                ],
                "{machine:?}"
            );
        }
    }

    /// [`image`]'s symbols, read by [`Reader::symbols`].
    fn image_symbols(machine: Machine) -> Symbols {
        Reader::from_bytes(&image(machine).bytes)
            .and_then(Reader::symbols)
            .unwrap()
    }

    /// DT_VERNEED with each version's index, and each import with the version it needs
    /// and that version's file (`vn_file`, through `vna_other`), in both classes.
    #[test]
    fn imports_name_their_version_and_its_file() {
        for machine in [Machine::X86, Machine::X86_64] {
            let facts = read_bytes(&image(machine).bytes, machine).unwrap();
            let glibc_2_1 = NeededVersion {
                name: "GLIBC_2.1".into(),
                weak: true,
                index: 3,
            };
            let verneed = [("libc.so.6".to_string(), vec![glibc_2_1])];
            assert_eq!(facts.verneed, verneed, "{machine:?}");
            let g = Import {
                name: "g",
                version: Some("GLIBC_2.1"),
                file: Some("libc.so.6"),
                weak: false,
            };
            let h = Import {
                name: "h",
                version: None,
                file: None,
                weak: true,
            };
            assert_eq!(
                image_symbols(machine).imports().unwrap(),
                [g, h],
                "{machine:?}"
            );
        }
    }

    /// Exports with their versions and hidden flags (bit 15 of DT_VERSYM), looked up as
    /// `dlsym` and `dlvsym` find them, in both classes.
    #[test]
    fn exports_are_looked_up_by_name_and_version() {
        for machine in [Machine::X86, Machine::X86_64] {
            let symbols = image_symbols(machine);
            let exports = symbols.exports().unwrap();
            let listed: Vec<_> = exports
                .iter()
                .map(|e| (e.symbol.name.as_str(), e.version, e.hidden, e.is_function()))
                .collect();
            assert_eq!(
                listed,
                [
                    ("f", Some("V1"), false, true),
                    ("v", Some("V1"), true, false)
                ],
                "{machine:?}"
            );
            let found = |name, version| exports.lookup(name, version).map(|e| e.symbol.value);
            assert_eq!(found("f", None), Some(0x1000), "the default f@@V1");
            assert_eq!(found("f", Some("V1")), Some(0x1000));
            assert_eq!(found("f", Some("V2")), None);
            assert_eq!(found("v", None), None, "v@V1 is hidden");
            assert_eq!(found("v", Some("V1")), Some(0x2000));
            assert_eq!(found("g", Some("GLIBC_2.1")), None, "an import");
            assert_eq!(found("h", None), None, "an import");
            assert_eq!(found("", None), None);
        }
    }

    /// A version index no record names is an error naming the symbol; a definition of
    /// value 0 is exported but not bound to, as glibc skips it.
    #[test]
    fn crafted_version_indices_and_values() {
        for machine in [Machine::X86, Machine::X86_64] {
            let image = image(machine);
            let l = Reader::from_bytes(&image.bytes).unwrap().layout;
            let versym = image.symtab + SYMBOLS * l.sym + 4 * (3 + SYMBOLS);
            let symbols = |bytes: &[u8]| Reader::from_bytes(bytes).unwrap().symbols().unwrap();
            let mut bytes = image.bytes.clone();
            bytes[versym + 3 * 2..][..2].copy_from_slice(&9u16.to_le_bytes()); // g
            assert_eq!(
                symbols(&bytes).imports().unwrap_err(),
                "malformed: the import g has version index 9, which no version need (DT_VERNEED) has"
            );
            let mut bytes = image.bytes.clone();
            bytes[versym + 2..][..2].copy_from_slice(&(7 | VERSYM_HIDDEN).to_le_bytes()); // f
            assert_eq!(
                symbols(&bytes).exports().unwrap_err(),
                "malformed: the definition f has version index 7, which no version definition (DT_VERDEF) or need has"
            );
            // A definition in the index of a needed version (an executable's
            // copy-relocated one) is in that version.
            bytes[versym + 2..][..2].copy_from_slice(&3u16.to_le_bytes());
            let symbols = symbols(&bytes);
            let exports = symbols.exports().unwrap();
            assert_eq!(
                exports.lookup("f", None).unwrap().version,
                Some("GLIBC_2.1")
            );
            let mut bytes = image.bytes.clone();
            let value = image.symtab + l.sym + l.st_value; // f
            bytes[value..][..machine.word_size()].fill(0);
            let symbols = Reader::from_bytes(&bytes).unwrap().symbols().unwrap();
            let exports = symbols.exports().unwrap();
            assert_eq!(exports.iter().count(), 2);
            assert!(exports.lookup("f", Some("V1")).is_none());
        }
    }

    #[test]
    fn class_and_machine_are_checked_as_ld_so_checks_them() {
        let i386 = image(Machine::X86).bytes;
        let x86_64 = image(Machine::X86_64).bytes;
        let aarch64 = image(Machine::Aarch64).bytes;
        assert_eq!(
            read_bytes(&i386, Machine::X86_64).unwrap_err(),
            "wrong ELF class (32-bit, not 64-bit)"
        );
        assert_eq!(
            read_bytes(&x86_64, Machine::X86).unwrap_err(),
            "wrong ELF class (64-bit, not 32-bit)"
        );
        assert_eq!(
            read_bytes(&aarch64, Machine::X86_64).unwrap_err(),
            "wrong machine (aarch64, not x86_64)"
        );
        // A machine capsule does not know: named by its number.
        let mut riscv = x86_64.clone();
        riscv[18..20].copy_from_slice(&243u16.to_le_bytes());
        assert_eq!(
            read_bytes(&riscv, Machine::X86_64).unwrap_err(),
            "wrong machine (e_machine 243, not x86_64)"
        );
        assert_eq!(
            Reader::from_bytes(&riscv).unwrap().machine().unwrap_err(),
            "unknown machine (e_machine 243, 64-bit; capsule knows x86_64, i386, aarch64)"
        );
        let mut class3 = x86_64.clone();
        class3[4] = 3;
        assert_eq!(
            native(&class3).unwrap_err(),
            "malformed: unknown ELF class 3"
        );
        let mut big = i386.clone();
        big[5] = 2;
        assert_eq!(
            native(&big).unwrap_err(),
            "wrong byte order (not little-endian)"
        );
        assert_eq!(native(&[b'#'; 64]).unwrap_err(), "not an ELF file");
        // The type is checked after the machine, as ld.so does.
        let mut exec = i386.clone();
        exec[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        assert!(read_bytes(&exec, Machine::X86_64)
            .unwrap_err()
            .contains("class"));
        assert!(read_bytes(&exec, Machine::X86)
            .unwrap_err()
            .contains("ET_DYN"));
        assert!(Reader::from_bytes(&exec)
            .and_then(Reader::symbols)
            .unwrap_err()
            .contains("ET_DYN"));
    }

    #[test]
    fn every_truncation_of_a_32_bit_image_is_an_error_or_the_same() {
        for machine in [Machine::X86, Machine::X86_64] {
            let bytes = image(machine).bytes;
            let facts = format!("{:?}", read_bytes(&bytes, machine).unwrap());
            let symbols = format!("{:?}", Reader::from_bytes(&bytes).unwrap().symbols());
            for len in 0..bytes.len() {
                let cut = &bytes[..len];
                match read_bytes(cut, machine) {
                    Ok(part) => assert_eq!(format!("{part:?}"), facts, "{machine:?} at {len}"),
                    Err(e) => assert!(
                        e.starts_with("truncated") || e.starts_with("too short"),
                        "{machine:?} at {len}: {e}"
                    ),
                }
                if let Ok(part) = Reader::from_bytes(cut).and_then(Reader::symbols) {
                    assert_eq!(format!("{:?}", Ok::<_, String>(part)), symbols, "{len}");
                }
            }
        }
    }

    #[test]
    fn crafted_symbol_counts_are_errors() {
        for machine in [Machine::X86, Machine::X86_64] {
            let image = image(machine);
            let l = Reader::from_bytes(&image.bytes).unwrap().layout;
            // nchain of DT_HASH (just after the symbols) claims 2^32 - 1 symbols.
            let mut bytes = image.bytes.clone();
            let nchain = image.symtab + SYMBOLS * l.sym + 4;
            bytes[nchain..nchain + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let err = Reader::from_bytes(&bytes)
                .and_then(Reader::symbols)
                .unwrap_err();
            assert!(
                err.starts_with("truncated: the file ends inside its symbol table")
                    || err.starts_with("malformed"),
                "{machine:?}: {err}"
            );
            // DT_SYMENT of another size than the class's.
            let mut bytes = image.bytes.clone();
            let w = machine.word_size();
            let entry = image.dynamic + 8 * 2 * w; // DT_HASH, turned into DT_SYMENT 7
            bytes[entry..entry + w].copy_from_slice(&DT_SYMENT.to_le_bytes()[..w]);
            bytes[entry + w..entry + 2 * w].copy_from_slice(&7u64.to_le_bytes()[..w]);
            let err = Reader::from_bytes(&bytes)
                .and_then(Reader::symbols)
                .unwrap_err();
            assert_eq!(
                err,
                format!("malformed: symbols of 7 bytes (DT_SYMENT), not {}", l.sym)
            );
        }
    }

    #[test]
    fn gnu_hash_gives_the_symbol_count() {
        // A DT_GNU_HASH table in place of DT_HASH: symoffset 1, one bloom word, two
        // buckets (the second holds symbols 1..), chains ending at symbol 2.
        for machine in [Machine::X86, Machine::X86_64] {
            let image = image(machine);
            let w = machine.word_size();
            let mut bytes = image.bytes.clone();
            let gnu = bytes.len();
            for v in [2u32, 1, 1, 6] {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bytes.extend(std::iter::repeat_n(0xff, w)); // bloom
            for v in [0u32, 1, 0x10, 0x21] {
                bytes.extend_from_slice(&v.to_le_bytes()); // buckets, then chains
            }
            let entry = image.dynamic + 7 * 2 * w; // DT_HASH
            bytes[entry..entry + w].copy_from_slice(&DT_GNU_HASH.to_le_bytes()[..w]);
            bytes[entry + w..entry + 2 * w].copy_from_slice(&(gnu as u64).to_le_bytes()[..w]);
            // The PT_LOAD must map the table too.
            let l = Reader::from_bytes(&bytes).unwrap().layout;
            let filesz = l.ehdr + l.p_filesz;
            let len = bytes.len() as u64;
            bytes[filesz..filesz + w].copy_from_slice(&len.to_le_bytes()[..w]);
            let symbols = Reader::from_bytes(&bytes).unwrap().symbols().unwrap();
            assert_eq!(symbols.symbols.len(), 3, "{machine:?}");
            // A chain without an end runs into the end of the file: truncated, not a hang.
            let last = bytes.len() - 4;
            bytes[last..].copy_from_slice(&0x20u32.to_le_bytes());
            let err = Reader::from_bytes(&bytes)
                .and_then(Reader::symbols)
                .unwrap_err();
            assert!(err.starts_with("truncated"), "{machine:?}: {err}");
        }
    }

    #[test]
    fn a_dynamic_section_without_an_end_is_malformed() {
        // One PT_DYNAMIC claiming 2^60 bytes over 80 KiB without a DT_NULL: the reader
        // stops after MAX_DYNAMIC_ENTRIES instead of walking the whole file.
        for machine in [Machine::X86, Machine::X86_64] {
            let mut bytes = image(machine).bytes;
            let l = Reader::from_bytes(&bytes).unwrap().layout;
            let w = machine.word_size();
            let phdr = l.ehdr + l.phdr;
            let table = bytes.len() as u64;
            bytes[phdr + l.p_offset..phdr + l.p_offset + w]
                .copy_from_slice(&table.to_le_bytes()[..w]);
            let huge = if w == 4 { u64::from(u32::MAX) } else { 1 << 60 };
            bytes[phdr + l.p_filesz..phdr + l.p_filesz + w]
                .copy_from_slice(&huge.to_le_bytes()[..w]);
            bytes.resize(bytes.len() + 80 * 1024, 0x11);
            assert_eq!(
                read_bytes(&bytes, machine).unwrap_err(),
                "malformed: no DT_NULL in the first 4096 entries of its dynamic section"
            );
        }
    }

    #[test]
    fn not_a_shared_object_is_refused() {
        let (_, mut bytes) = libc_bytes();
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        assert!(native(&bytes).unwrap_err().contains("ET_DYN"));
    }
}
