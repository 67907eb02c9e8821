//! Writing a forwarder's ELF file: headers and one read-only segment with the dynamic
//! tables (the stubs' messages, one relocation), one read+execute segment with a `ret` and
//! the stubs' code, and a writable page holding the stubs' jump slot, the constructor
//! array (one entry, relocated against the interposer's `capsule_forwarder_init`) and the
//! dynamic section (ld.so relocates its pointer entries in place).
//!
//! No section headers: ld.so reads only program headers and the dynamic section.

use crate::elf::SYM_SIZE;

const PAGE: usize = 4096;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// The writable page starts with the stubs' jump slot and the constructor array (one
/// word each); the dynamic section follows.
pub(super) const SLOT_BEFORE_DYNAMIC: usize = 16;
const RELA_SIZE: usize = 24;
const R_X86_64_64: u64 = 1;
/// The code segment: a `ret` (padded), then one [`STUB_SIZE`] stub per missing function.
pub(super) const RET_SIZE: usize = 16;
pub(super) const STUB_SIZE: usize = 16;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PHDR_COUNT: usize = 5;

const DT_NULL: u64 = 0;
const DT_HASH: u64 = 4;
const DT_STRTAB: u64 = 5;
const DT_SYMTAB: u64 = 6;
const DT_STRSZ: u64 = 10;
const DT_SYMENT: u64 = 11;
const DT_SONAME: u64 = 14;
const DT_GNU_HASH: u64 = 0x6fff_fef5;
const DT_VERSYM: u64 = 0x6fff_fff0;
const DT_VERDEF: u64 = 0x6fff_fffc;
const DT_VERDEFNUM: u64 = 0x6fff_fffd;
const DT_RELA: u64 = 7;
const DT_RELASZ: u64 = 8;
const DT_RELAENT: u64 = 9;
const DT_INIT_ARRAY: u64 = 25;
const DT_INIT_ARRAYSZ: u64 = 27;

/// The dynamic tables of a forwarder.
pub(super) struct Tables {
    /// DT_GNU_HASH (true) or DT_HASH.
    pub gnu_hash: bool,
    pub hash: Vec<u8>,
    pub symbols: Vec<u8>,
    pub strings: Vec<u8>,
    pub versym: Option<Vec<u8>>,
    pub verdef: Option<(Vec<u8>, u64)>,
    pub soname: u64,
    /// The index of the imported symbol the constructor array is relocated against.
    pub constructor: u32,
}

/// Where each part lands (file offsets equal virtual addresses: bias-relative).
pub(super) struct Layout {
    hash: usize,
    symbols: usize,
    strings: usize,
    versym: usize,
    verdef: usize,
    /// The stubs' messages, NUL-terminated, back to back.
    pub messages: usize,
    rela: usize,
    tables_end: usize,
    /// The code segment: a `ret`, then the stubs.
    pub text: usize,
    text_end: usize,
    /// The writable page: the stubs' jump slot, then the dynamic section.
    pub slot: usize,
    dynamic: usize,
    dynamic_entries: usize,
}

fn align(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

impl Layout {
    pub fn new(tables: &Tables, messages_len: usize, stubs: usize) -> Layout {
        let headers = EHDR_SIZE + PHDR_SIZE * PHDR_COUNT;
        let hash = align(headers, 8);
        let symbols = align(hash + tables.hash.len(), 8);
        let strings = symbols + tables.symbols.len();
        let versym = align(strings + tables.strings.len(), 2);
        let verdef = align(versym + tables.versym.as_ref().map_or(0, Vec::len), 8);
        let messages = verdef + tables.verdef.as_ref().map_or(0, |(v, _)| v.len());
        let rela = align(messages + messages_len, 8);
        let tables_end = rela + RELA_SIZE;
        let text = align(tables_end, PAGE);
        let text_end = text + RET_SIZE + stubs * STUB_SIZE;
        let slot = align(text_end, PAGE);
        let dynamic_entries =
            13 + usize::from(tables.versym.is_some()) + 2 * usize::from(tables.verdef.is_some());
        Layout {
            hash,
            symbols,
            strings,
            versym,
            verdef,
            messages,
            rela,
            tables_end,
            text,
            text_end,
            slot,
            dynamic: slot + SLOT_BEFORE_DYNAMIC,
            dynamic_entries,
        }
    }
}

/// The whole file; `text` is the code segment's bytes after the `ret`.
pub(super) fn write(tables: &Tables, messages: &[u8], stubs: &[u8], layout: &Layout) -> Vec<u8> {
    let dynamic_size = layout.dynamic_entries * 16;
    let mut out = vec![0u8; layout.dynamic + dynamic_size];

    // ELF header: 64-bit, little-endian, SysV ABI, ET_DYN for x86_64.
    let mut h = Writer::at(&mut out, 0);
    h.bytes(b"\x7fELF\x02\x01\x01\x00");
    h.bytes(&[0; 8]);
    h.u16(3); // e_type ET_DYN
    h.u16(62); // e_machine EM_X86_64
    h.u32(1); // e_version
    h.u64(0); // e_entry
    h.u64(EHDR_SIZE as u64); // e_phoff
    h.u64(0); // e_shoff
    h.u32(0); // e_flags
    h.u16(EHDR_SIZE as u16);
    h.u16(PHDR_SIZE as u16);
    h.u16(PHDR_COUNT as u16);
    h.u16(64); // e_shentsize
    h.u16(0); // e_shnum
    h.u16(0); // e_shstrndx

    let mut p = Writer::at(&mut out, EHDR_SIZE);
    let mut segment = |kind: u32, flags: u32, start: usize, size: usize, align: usize| {
        p.u32(kind);
        p.u32(flags);
        for v in [start, start, start, size, size, align] {
            p.u64(v as u64);
        }
    };
    let writable = SLOT_BEFORE_DYNAMIC + dynamic_size;
    segment(PT_LOAD, PF_R, 0, layout.tables_end, PAGE);
    segment(
        PT_LOAD,
        PF_R | PF_X,
        layout.text,
        layout.text_end - layout.text,
        PAGE,
    );
    segment(PT_LOAD, PF_R | PF_W, layout.slot, writable, PAGE);
    segment(PT_DYNAMIC, PF_R | PF_W, layout.dynamic, dynamic_size, 8);
    // Without it, ld.so would make the process's stacks executable.
    segment(PT_GNU_STACK, PF_R | PF_W, 0, 0, 16);

    let mut place = |at: usize, bytes: &[u8]| out[at..][..bytes.len()].copy_from_slice(bytes);
    place(layout.hash, &tables.hash);
    place(layout.symbols, &tables.symbols);
    place(layout.strings, &tables.strings);
    if let Some(versym) = &tables.versym {
        place(layout.versym, versym);
    }
    if let Some((verdef, _)) = &tables.verdef {
        place(layout.verdef, verdef);
    }
    place(layout.messages, messages);
    // Elf64_Rela: the constructor array's word gets the address of the imported symbol.
    let mut rela = Vec::with_capacity(RELA_SIZE);
    rela.extend_from_slice(&((layout.slot + 8) as u64).to_le_bytes());
    rela.extend_from_slice(&(u64::from(tables.constructor) << 32 | R_X86_64_64).to_le_bytes());
    rela.extend_from_slice(&0u64.to_le_bytes());
    place(layout.rela, &rela);
    let mut ret = [0xcc; RET_SIZE];
    ret[0] = 0xc3;
    place(layout.text, &ret);
    place(layout.text + RET_SIZE, stubs);

    let mut d = Writer::at(&mut out, layout.dynamic);
    let mut entry = |tag: u64, value: usize| {
        d.u64(tag);
        d.u64(value as u64);
    };
    entry(
        if tables.gnu_hash {
            DT_GNU_HASH
        } else {
            DT_HASH
        },
        layout.hash,
    );
    entry(DT_SYMTAB, layout.symbols);
    entry(DT_SYMENT, SYM_SIZE);
    entry(DT_STRTAB, layout.strings);
    entry(DT_STRSZ, tables.strings.len());
    entry(DT_SONAME, tables.soname as usize);
    if tables.versym.is_some() {
        entry(DT_VERSYM, layout.versym);
    }
    if let Some((_, count)) = &tables.verdef {
        entry(DT_VERDEF, layout.verdef);
        entry(DT_VERDEFNUM, *count as usize);
    }
    entry(DT_RELA, layout.rela);
    entry(DT_RELASZ, RELA_SIZE);
    entry(DT_RELAENT, RELA_SIZE);
    entry(DT_INIT_ARRAY, layout.slot + 8);
    entry(DT_INIT_ARRAYSZ, 8);
    entry(DT_NULL, 0);
    // The remaining reserved entries stay DT_NULL.
    out
}

/// Little-endian writes at a moving offset.
struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    fn at(out: &'a mut [u8], at: usize) -> Writer<'a> {
        Writer { out, at }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.out[self.at..self.at + b.len()].copy_from_slice(b);
        self.at += b.len();
    }
    fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// A System V hash table (DT_HASH) over `names` (index 0, the null symbol, included).
pub(super) fn sysv_hash_table(names: &[&[u8]]) -> Vec<u8> {
    let count = names.len() as u32;
    let nbucket = (count / 2).max(1);
    let mut buckets = vec![0u32; nbucket as usize];
    let mut chains = vec![0u32; count as usize];
    for (index, name) in names.iter().enumerate().skip(1).rev() {
        let b = (crate::elf::sysv_hash(name) % nbucket) as usize;
        chains[index] = buckets[b];
        buckets[b] = index as u32;
    }
    let mut out = Vec::with_capacity(8 + 4 * (buckets.len() + chains.len()));
    for word in [nbucket, count].iter().chain(&buckets).chain(&chains) {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out
}

/// x86_64 stub at `at` (a file offset): `lea rdi, [rip + message]; jmp [rip + slot]`,
/// padded with `int3`. Position-independent, so the file can be cached.
pub(super) fn stub_code(at: usize, message: usize, slot: usize) -> [u8; STUB_SIZE] {
    let rel = |target: usize, next: usize| (target as i64 - next as i64) as i32;
    let mut code = [0xcc; STUB_SIZE];
    code[0..3].copy_from_slice(&[0x48, 0x8d, 0x3d]);
    code[3..7].copy_from_slice(&rel(message, at + 7).to_le_bytes());
    code[7..9].copy_from_slice(&[0xff, 0x25]);
    code[9..13].copy_from_slice(&rel(slot, at + 13).to_le_bytes());
    code
}
