//! The dynamic section's tags (`DT_*`) and flags: one set for the reader of files
//! (`elffile`), the views of loaded objects (`elf`) and the forwarder's writer. The same
//! numbers in both classes (an `Elf32_Dyn` holds them in 32 bits).

pub(crate) const DT_NULL: u64 = 0;
pub(crate) const DT_NEEDED: u64 = 1;
pub(crate) const DT_PLTRELSZ: u64 = 2;
pub(crate) const DT_HASH: u64 = 4;
pub(crate) const DT_STRTAB: u64 = 5;
pub(crate) const DT_SYMTAB: u64 = 6;
pub(crate) const DT_RELA: u64 = 7;
pub(crate) const DT_RELASZ: u64 = 8;
pub(crate) const DT_RELAENT: u64 = 9;
pub(crate) const DT_STRSZ: u64 = 10;
pub(crate) const DT_SYMENT: u64 = 11;
pub(crate) const DT_SONAME: u64 = 14;
pub(crate) const DT_RPATH: u64 = 15;
pub(crate) const DT_REL: u64 = 17;
pub(crate) const DT_RELSZ: u64 = 18;
pub(crate) const DT_RELENT: u64 = 19;
pub(crate) const DT_PLTREL: u64 = 20;
pub(crate) const DT_TEXTREL: u64 = 22;
pub(crate) const DT_JMPREL: u64 = 23;
pub(crate) const DT_INIT_ARRAY: u64 = 25;
pub(crate) const DT_INIT_ARRAYSZ: u64 = 27;
pub(crate) const DT_RUNPATH: u64 = 29;
pub(crate) const DT_FLAGS: u64 = 30;
pub(crate) const DT_RELRSZ: u64 = 35;
pub(crate) const DT_RELR: u64 = 36;
pub(crate) const DT_RELRENT: u64 = 37;
pub(crate) const DT_GNU_HASH: u64 = 0x6fff_fef5;
pub(crate) const DT_VERSYM: u64 = 0x6fff_fff0;
pub(crate) const DT_RELACOUNT: u64 = 0x6fff_fff9;
pub(crate) const DT_RELCOUNT: u64 = 0x6fff_fffa;
pub(crate) const DT_FLAGS_1: u64 = 0x6fff_fffb;
pub(crate) const DT_VERDEF: u64 = 0x6fff_fffc;
pub(crate) const DT_VERDEFNUM: u64 = 0x6fff_fffd;
pub(crate) const DT_VERNEED: u64 = 0x6fff_fffe;
pub(crate) const DT_VERNEEDNUM: u64 = 0x6fff_ffff;

/// `DF_TEXTREL` of DT_FLAGS: relocations write to read-only segments.
pub(crate) const DF_TEXTREL: u64 = 4;
/// `DF_1_NODEFLIB` of DT_FLAGS_1: dependencies are not looked up in the cache or default
/// directories.
pub(crate) const DF_1_NODEFLIB: u64 = 0x800;
