//! Writing a forwarder's ELF file, of the process's class and machine: headers and one
//! read-only segment with the dynamic tables (the stubs' messages, one relocation), one
//! read+execute segment with a `ret` and the stubs' code, and a writable page holding the
//! stubs' jump slot, the constructor array (one entry, relocated against the interposer's
//! `capsule_forwarder_init`) and the dynamic section (ld.so relocates its pointer entries
//! in place).
//!
//! No section headers: ld.so reads only program headers and the dynamic section.

use crate::arch::native as arch;
use crate::dynamic_tags::{
    DT_GNU_HASH, DT_HASH, DT_INIT_ARRAY, DT_INIT_ARRAYSZ, DT_NULL, DT_REL, DT_RELA, DT_RELAENT,
    DT_RELASZ, DT_RELENT, DT_RELSZ, DT_SONAME, DT_STRSZ, DT_STRTAB, DT_SYMENT, DT_SYMTAB,
    DT_VERDEF, DT_VERDEFNUM, DT_VERSYM,
};
use crate::elf::layout::{
    reloc_bytes, word_bytes, RawPhdr, CLASS, DYN_SIZE, EHDR_SIZE, PHDR_SIZE, RELOC_SIZE, SYM_SIZE,
    WORD,
};
use crate::machine::Machine;

const PAGE: usize = 4096;
/// The writable page starts with the stubs' jump slot and the constructor array (one
/// word each); the dynamic section follows.
pub(super) const SLOT_BEFORE_DYNAMIC: usize = 2 * WORD;
/// The code segment: a `ret` (padded), then one [`STUB_SIZE`] stub per missing function.
pub(super) const RET_SIZE: usize = arch::RET.len();
pub(super) const STUB_SIZE: usize = arch::FORWARDER_STUB_SIZE;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PHDR_COUNT: usize = 5;

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
    /// Entries of the dynamic section beyond ld.so's (see `remembered`).
    pub extra_dynamic: Vec<(u64, u64)>,
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
        let tables_end = rela + RELOC_SIZE;
        let text = align(tables_end, PAGE);
        let text_end = text + RET_SIZE + stubs * STUB_SIZE;
        let slot = align(text_end, PAGE);
        let dynamic_entries = 13
            + usize::from(tables.versym.is_some())
            + 2 * usize::from(tables.verdef.is_some())
            + tables.extra_dynamic.len();
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
    let dynamic_size = layout.dynamic_entries * DYN_SIZE;
    let mut out = vec![0u8; layout.dynamic + dynamic_size];

    // ELF header: this process's class, little-endian, SysV ABI, ET_DYN, its machine.
    let mut h = Writer::at(&mut out, 0);
    h.bytes(b"\x7fELF");
    h.bytes(&[CLASS, 1, 1, 0]);
    h.bytes(&[0; 8]);
    h.u16(3); // e_type ET_DYN
    h.u16(Machine::NATIVE.e_machine());
    h.u32(1); // e_version
    h.word(0); // e_entry
    h.word(EHDR_SIZE); // e_phoff
    h.word(0); // e_shoff
    h.u32(0); // e_flags
    h.u16(EHDR_SIZE as u16);
    h.u16(PHDR_SIZE as u16);
    h.u16(PHDR_COUNT as u16);
    h.u16(if WORD == 8 { 64 } else { 40 }); // e_shentsize
    h.u16(0); // e_shnum
    h.u16(0); // e_shstrndx

    let mut p = Writer::at(&mut out, EHDR_SIZE);
    let mut segment = |kind: u32, flags: u32, start: usize, size: usize, align: usize| {
        let header = RawPhdr {
            kind,
            flags,
            offset: start as u64,
            vaddr: start as u64,
            filesz: size as u64,
            memsz: size as u64,
            align: align as u64,
        };
        p.bytes(&header.to_bytes());
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
    segment(PT_DYNAMIC, PF_R | PF_W, layout.dynamic, dynamic_size, WORD);
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
    // The constructor array's word gets the address of the imported symbol (an absolute
    // relocation, addend 0: in the entry, or, REL, in the word, which is 0 already).
    let constructor = layout.slot + WORD;
    let reloc = reloc_bytes(constructor as u64, tables.constructor, arch::R_ABSOLUTE, 0);
    place(layout.rela, &reloc);
    place(layout.text, &arch::RET);
    place(layout.text + RET_SIZE, stubs);

    let mut d = Writer::at(&mut out, layout.dynamic);
    let mut entry = |tag: u64, value: usize| {
        d.word(tag as usize);
        d.word(value);
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
    let (table, size, entry_size) = if arch::RELA {
        (DT_RELA, DT_RELASZ, DT_RELAENT)
    } else {
        (DT_REL, DT_RELSZ, DT_RELENT)
    };
    entry(table, layout.rela);
    entry(size, RELOC_SIZE);
    entry(entry_size, RELOC_SIZE);
    entry(DT_INIT_ARRAY, constructor);
    entry(DT_INIT_ARRAYSZ, WORD);
    for &(tag, value) in &tables.extra_dynamic {
        // The remembered tags' values fit 32 bits (see `remembered::encode`).
        entry(tag, value as usize);
    }
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
    /// An address-sized value.
    fn word(&mut self, v: usize) {
        self.bytes(&word_bytes(v as u64));
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

/// The stub at file offset `at` (see the architecture's `forwarder_stub`).
pub(super) fn stub_code(at: usize, message: usize, slot: usize) -> [u8; STUB_SIZE] {
    arch::forwarder_stub(at, message, slot)
}
