//! What the search needs to know of a shared object on disk.
//!
//! Only what ld.so itself looks at is read: the ELF header, the program headers, the
//! dynamic segment, and the strings and version records it points to, in small blocks
//! with `pread`. A library like libLLVM is large, and this reads a few pages of it.
//!
//! The file is read, not mapped: a mapped file that shrinks under us (a package upgrade
//! of the host tree) would raise SIGBUS in the middle of the search, while a short read
//! is just a "truncated" candidate that the search passes over, as ld.so would.
//!
//! Every number in the file is untrusted: offsets and sizes are added with `checked_*` and
//! converted with `try_from`, so a crafted file is an error, never a panic or a wrap
//! (fuzz target `elffile`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use goblin::elf::dynamic::{
    DF_1_NODEFLIB, DT_FLAGS_1, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ,
    DT_STRTAB, DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM,
};
use goblin::elf::header::{ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_DYN, SELFMAG};
use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD};
use goblin::elf::symver::VER_FLG_WEAK;

use crate::bytes;

/// One version an object needs from a library (an entry of its DT_VERNEED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededVersion {
    /// The version name, e.g. `GLIBC_2.34`.
    pub name: String,
    /// `VER_FLG_WEAK`: ld.so only warns when it is missing.
    pub weak: bool,
}

/// The dynamic-linking facts of a shared object.
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

/// Read `path`, or say why ld.so would pass it over (not ELF, another class or machine,
/// not a shared object, truncated, malformed). The reason names the problem, not the path.
pub fn read(path: &Path) -> Result<ElfFile, String> {
    read_file(File::open(path).map_err(|e| format!("cannot open: {e}"))?)
}

/// [`read`] of a file already open.
pub fn read_file(file: File) -> Result<ElfFile, String> {
    parse(&mut Blocks::new(file))
}

/// [`read`] of a file's bytes (the fuzz target's way in).
pub fn read_bytes(bytes: &[u8]) -> Result<ElfFile, String> {
    parse(&mut Blocks::new(bytes))
}

/// Size of one `pread`: the header and program headers of a typical library come in one
/// read, its dynamic segment, strings and version records in a few more. Not a page: each
/// block is a heap buffer, and a fresh page of heap costs a page fault, which on this
/// project's VMs is dearer than a few more reads (libz's facts: 4 faults with 4 KiB
/// blocks, 2 with 1 KiB).
const BLOCK: u64 = 1024;

/// The largest dynamic section read: real ones hold a few dozen entries (libLLVM's: 40).
/// A PT_DYNAMIC claiming more is read this far and must end (DT_NULL) inside it, so a
/// crafted size cannot make the reader walk a whole file.
const MAX_DYNAMIC: usize = 4096 * DYN_SIZE;

/// The longest string (a soname, a search path) believed before the file is called
/// malformed; a missing NUL would otherwise read the rest of the string table.
const MAX_STRING: u64 = 64 * 1024;

/// Size of the ELF header and of one program header, dynamic entry, version record.
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const DYN_SIZE: usize = 16;
const VERNEED_SIZE: usize = 16;
const VERNAUX_SIZE: usize = 16;
const VERDEF_SIZE: usize = 20;
const VERDAUX_SIZE: usize = 8;

/// A file read in aligned blocks on demand, each block at most once.
struct Blocks<R> {
    source: R,
    /// By block index; a handful per file, so a list beats a hash map.
    blocks: Vec<(u64, Vec<u8>)>,
}

/// Where blocks come from: a file, or bytes in the tests.
trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for &[u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        let start = usize::try_from(offset).map_or(self.len(), |o| o.min(self.len()));
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl<R: ReadAt> Blocks<R> {
    fn new(source: R) -> Self {
        Blocks {
            source,
            blocks: Vec::new(),
        }
    }

    /// Block `index`, read if not yet; shorter than `BLOCK` at the end of the file.
    fn block(&mut self, index: u64) -> Result<&[u8], String> {
        let at = match self.blocks.iter().position(|(i, _)| *i == index) {
            Some(at) => at,
            None => {
                let bytes = self.read_block(index)?;
                self.blocks.push((index, bytes));
                self.blocks.len() - 1
            }
        };
        Ok(&self.blocks[at].1)
    }

    fn read_block(&self, index: u64) -> Result<Vec<u8>, String> {
        // `index` is an offset divided by BLOCK, so neither product nor sum can overflow.
        let start = index * BLOCK;
        let mut buf = vec![0u8; BLOCK as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .source
                .read_at(&mut buf[filled..], start + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("cannot read: {e}")),
            }
        }
        buf.truncate(filled);
        Ok(buf)
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
                return Err("truncated: the file ends inside a string".into());
            };
            match tail.iter().position(|&b| b == 0) {
                Some(nul) => {
                    out.extend_from_slice(&tail[..nul]);
                    break;
                }
                None => out.extend_from_slice(tail),
            }
            at += tail.len() as u64;
            if out.len() as u64 > limit {
                break;
            }
        }
        if out.len() as u64 > limit {
            return Err(format!(
                "malformed: a string at file offset {offset} runs past its table"
            ));
        }
        Ok(String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }
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

/// What the dynamic segment says, strings not yet read.
#[derive(Default)]
struct Dynamic {
    needed: Vec<u64>,
    soname: Option<u64>,
    rpath: Vec<u64>,
    runpath: Vec<u64>,
    strtab: Option<u64>,
    strsz: u64,
    flags_1: u64,
    verneed: Option<(u64, u64)>,
    verdef: Option<(u64, u64)>,
}

fn parse<R: ReadAt>(file: &mut Blocks<R>) -> Result<ElfFile, String> {
    let first = file.block(0)?;
    let ident: [u8; 20] = first
        .get(..20)
        .and_then(|b| b.try_into().ok())
        .ok_or("too short to be an ELF file")?;
    check_ident(&ident)?;
    let header = file.bytes(0, EHDR_SIZE, "ELF header")?;
    if u16_at(&header, 16) != ET_DYN {
        return Err("not a shared object (ELF type is not ET_DYN)".into());
    }
    let (segments, dynamic) = program_headers(file, &header)?;
    let Some((offset, size)) = dynamic else {
        return Ok(ElfFile::default());
    };
    let dynamic = dynamic_entries(file, offset, size)?;
    facts(file, &segments, &dynamic)
}

/// ld.so's `open_verify` checks, on the first 20 bytes.
fn check_ident(ident: &[u8; 20]) -> Result<(), String> {
    if &ident[..SELFMAG] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if ident[4] != ELFCLASS64 {
        return Err("wrong ELF class (not 64-bit)".into());
    }
    if ident[5] != ELFDATA2LSB {
        return Err("wrong byte order (not little-endian)".into());
    }
    let machine = u16::from_le_bytes([ident[18], ident[19]]);
    if machine != EM_X86_64 {
        return Err(format!("wrong machine (e_machine {machine}, not x86_64)"));
    }
    Ok(())
}

/// A file range: offset and size.
type FileRange = (u64, u64);

/// The PT_LOAD segments, and the file range of PT_DYNAMIC if there is one.
fn program_headers<R: ReadAt>(
    file: &mut Blocks<R>,
    header: &[u8],
) -> Result<(Vec<Segment>, Option<FileRange>), String> {
    let phoff = u64_at(header, 32);
    let phentsize = usize::from(u16_at(header, 54));
    let phnum = usize::from(u16_at(header, 56));
    if phnum > 0 && phentsize != PHDR_SIZE {
        return Err(format!(
            "malformed: program headers of {phentsize} bytes, not {PHDR_SIZE}"
        ));
    }
    let table = file.bytes(phoff, phnum * PHDR_SIZE, "program headers")?;
    let mut segments = Vec::new();
    let mut dynamic = None;
    for phdr in table.chunks_exact(PHDR_SIZE) {
        let offset = u64_at(phdr, 8);
        let filesz = u64_at(phdr, 32);
        match u32_at(phdr, 0) {
            PT_LOAD => segments.push(Segment {
                offset,
                vaddr: u64_at(phdr, 16),
                filesz,
            }),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            _ => {}
        }
    }
    Ok((segments, dynamic))
}

fn dynamic_entries<R: ReadAt>(
    file: &mut Blocks<R>,
    offset: u64,
    size: u64,
) -> Result<Dynamic, String> {
    let mut out = Dynamic::default();
    let (mut verneednum, mut verdefnum) = (0, 0);
    let (mut verneed, mut verdef) = (None, None);
    // One read for the whole section (a few hundred bytes). A file cut inside it is an
    // error only where no DT_NULL comes before the cut, as when reading entry by entry.
    let whole = usize::try_from(size / DYN_SIZE as u64)
        .map_or(MAX_DYNAMIC, |n| n.saturating_mul(DYN_SIZE).min(MAX_DYNAMIC));
    let section = file.available(offset, whole)?;
    let mut ended = false;
    for entry in section.chunks_exact(DYN_SIZE) {
        let (tag, value) = (u64_at(entry, 0), u64_at(entry, 8));
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
    if !ended && whole == MAX_DYNAMIC {
        return Err(format!(
            "malformed: no DT_NULL in the first {} entries of its dynamic section",
            MAX_DYNAMIC / DYN_SIZE
        ));
    }
    out.verneed = verneed.map(|v| (v, verneednum));
    out.verdef = verdef.map(|v| (v, verdefnum));
    Ok(out)
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
    fn get<R: ReadAt>(&self, file: &mut Blocks<R>, index: u64) -> Result<String, String> {
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
        file.c_string(at, limit)
    }
}

fn facts<R: ReadAt>(
    file: &mut Blocks<R>,
    segments: &[Segment],
    dynamic: &Dynamic,
) -> Result<ElfFile, String> {
    let strings = match dynamic.strtab {
        Some(vaddr) => Strings {
            offset: file_offset(segments, vaddr, "string table")?,
            size: dynamic.strsz,
        },
        None => Strings { offset: 0, size: 0 },
    };
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
    let soname = dynamic.soname.map(|i| strings.get(file, i)).transpose()?;
    let verneed = match dynamic.verneed {
        Some((vaddr, count)) => {
            let at = file_offset(segments, vaddr, "version needs (DT_VERNEED)")?;
            read_verneed(file, &strings, at, count)?
        }
        None => Vec::new(),
    };
    let verdef = match dynamic.verdef {
        Some((vaddr, count)) => {
            let at = file_offset(segments, vaddr, "version definitions (DT_VERDEF)")?;
            read_verdef(file, &strings, at, count)?
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

/// Walk DT_VERNEED's `count` records (each `vn_next` further, as ld.so does, stopping at
/// a zero `vn_next`). The offsets only grow, so the walk ends at the file's end at worst.
fn read_verneed<R: ReadAt>(
    file: &mut Blocks<R>,
    strings: &Strings,
    mut at: u64,
    count: u64,
) -> Result<Vec<(String, Vec<NeededVersion>)>, String> {
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

/// The name of each of DT_VERDEF's `count` definitions (its first auxiliary entry).
fn read_verdef<R: ReadAt>(
    file: &mut Blocks<R>,
    strings: &Strings,
    mut at: u64,
    count: u64,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for _ in 0..count {
        let def = file.bytes(at, VERDEF_SIZE, "version definitions")?;
        if u16_at(&def, 6) > 0 {
            let aux = advance(at, u32_at(&def, 12))?;
            let entry = file.bytes(aux, VERDAUX_SIZE, "version definitions")?;
            out.push(strings.get(file, u64::from(u32_at(&entry, 0)))?);
        }
        match u32_at(&def, 16) {
            0 => break,
            next => at = advance(at, next)?,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    fn parse_bytes(bytes: Vec<u8>) -> Result<ElfFile, String> {
        read_bytes(&bytes)
    }

    /// The running libc: present wherever the tests run, with DT_VERDEF and DT_VERNEED.
    fn libc_bytes() -> (std::path::PathBuf, Vec<u8>) {
        let path = crate::prefix::glibc::running_libc_path()
            .expect("the test process has libc.so.6 mapped");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
        (path, bytes)
    }

    /// The same facts through goblin's full parse, the reader this one replaced.
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

    #[test]
    fn agrees_with_a_full_parse_of_libc() {
        let (path, bytes) = libc_bytes();
        let ours = read(&path).unwrap();
        let full = facts_by_goblin(&bytes);
        assert_eq!(ours.soname.as_deref(), Some("libc.so.6"));
        assert!(ours.verdef.iter().any(|v| v == "GLIBC_2.2.5"), "{ours:?}");
        assert!(!ours.verneed.is_empty(), "libc needs versions of ld.so");
        assert_eq!(format!("{ours:?}"), format!("{full:?}"));
    }

    #[test]
    fn loaded_libc_and_ld_so_read_from_memory_agree_with_their_files() {
        for soname in ["libc.so.6", "ld-linux-x86-64.so.2"] {
            let (path, in_memory) =
                crate::prefix::glibc::loaded(soname).expect("glibc is loaded in a test process");
            let on_disk = read(&path).unwrap();
            assert_eq!(in_memory.soname.as_deref(), Some(soname));
            assert!(!in_memory.verdef.is_empty(), "{soname}: {in_memory:?}");
            assert_eq!(in_memory.soname, on_disk.soname, "{soname}");
            assert_eq!(in_memory.needed, on_disk.needed, "{soname}");
            assert_eq!(in_memory.verdef, on_disk.verdef, "{soname}");
        }
        assert!(crate::prefix::glibc::loaded("libnot-loaded-here.so.9").is_none());
    }

    #[test]
    fn reads_a_few_blocks_not_the_file() {
        let (path, bytes) = libc_bytes();
        let mut blocks = Blocks::new(File::open(&path).unwrap());
        parse(&mut blocks).unwrap();
        let read = blocks.blocks.len() as u64 * BLOCK;
        assert!(
            read * 20 < bytes.len() as u64,
            "read {read} of {} bytes",
            bytes.len()
        );
    }

    #[test]
    fn every_truncation_is_an_error_or_a_subset_never_a_panic() {
        let (_, bytes) = libc_bytes();
        let full = parse_bytes(bytes.clone()).unwrap();
        // Every length up to 16 KiB (headers), then cuts through the rest.
        let lengths = (0..16 * 1024).chain((16 * 1024..bytes.len()).step_by(997));
        for len in lengths {
            if let Ok(part) = parse_bytes(bytes[..len].to_vec()) {
                // A cut past everything the reader needs gives the same facts.
                assert_eq!(format!("{part:?}"), format!("{full:?}"), "cut at {len}");
            }
        }
        assert!(parse_bytes(bytes[..100].to_vec())
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_bytes(bytes[..10].to_vec())
            .unwrap_err()
            .contains("too short"));
    }

    #[test]
    fn mutated_headers_never_panic() {
        // A cheap stand-in for a fuzzer: the ELF and program headers, byte by byte.
        let (_, bytes) = libc_bytes();
        let phnum = usize::from(u16_at(&bytes, 56));
        for i in 0..EHDR_SIZE + phnum * PHDR_SIZE {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = bytes[..64 * 1024.min(bytes.len())].to_vec();
                b[i] = v;
                let _ = parse_bytes(b);
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
            let reason = read_bytes(&bytes).expect_err(&input.display().to_string());
            assert!(
                reason.starts_with("malformed"),
                "{}: {reason}",
                input.display()
            );
        }
    }

    #[test]
    fn wrapping_offsets_are_malformed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/elffile");
        let read = |name: &str| read_bytes(&std::fs::read(dir.join(name)).unwrap()).unwrap_err();
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

    #[test]
    fn a_dynamic_section_without_an_end_is_malformed() {
        // One PT_DYNAMIC claiming 2^60 bytes over 80 KiB without a DT_NULL: the reader
        // stops after MAX_DYNAMIC bytes instead of walking the whole file.
        let mut bytes = vec![0u8; EHDR_SIZE + PHDR_SIZE];
        bytes[..4].copy_from_slice(b"\x7fELF");
        (bytes[4], bytes[5]) = (ELFCLASS64, ELFDATA2LSB);
        bytes[16..18].copy_from_slice(&ET_DYN.to_le_bytes());
        bytes[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        bytes[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        bytes[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        bytes[56..58].copy_from_slice(&1u16.to_le_bytes());
        let phdr = EHDR_SIZE;
        bytes[phdr..phdr + 4].copy_from_slice(&PT_DYNAMIC.to_le_bytes());
        let table = bytes.len() as u64;
        bytes[phdr + 8..phdr + 16].copy_from_slice(&table.to_le_bytes());
        bytes[phdr + 32..phdr + 40].copy_from_slice(&(1u64 << 60).to_le_bytes());
        bytes.resize(bytes.len() + 80 * 1024, 0x11);
        assert_eq!(
            read_bytes(&bytes).unwrap_err(),
            "malformed: no DT_NULL in the first 4096 entries of its dynamic section"
        );
    }

    #[test]
    fn not_a_shared_object_is_refused() {
        let (_, mut bytes) = libc_bytes();
        bytes[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        assert!(parse_bytes(bytes).unwrap_err().contains("ET_DYN"));
    }

    #[test]
    fn ident_checks() {
        let mut ident = [0u8; 20];
        ident[..4].copy_from_slice(b"\x7fELF");
        ident[4] = ELFCLASS64;
        ident[5] = ELFDATA2LSB;
        ident[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert!(check_ident(&ident).is_ok());
        let mut class32 = ident;
        class32[4] = 1;
        assert!(check_ident(&class32).unwrap_err().contains("class"));
        let mut arm = ident;
        arm[18] = 183;
        assert!(check_ident(&arm).unwrap_err().contains("machine"));
        assert!(check_ident(&[b'#'; 20]).unwrap_err().contains("not an ELF"));
    }
}
