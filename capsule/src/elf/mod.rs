//! Views of a loaded ELF object (dynamic section, symbols, hashes, versions, relocations,
//! RELRO), bounds-checked over a memory source.
//!
//! An [`Object`] reads a live object of this process (built from its link map), of the
//! process's class, in place. Files are read by [`crate::elffile`]; an ELF file image in a
//! byte slice is viewed here only for tests and fuzzing (the same checked reads, so a
//! malformed table gives [`Error::Malformed`](crate::Error::Malformed) rather than a crash).

mod dynamic;
mod hash;
pub(crate) mod layout;
mod memory;
mod object;
mod reloc;
mod segment;
mod symbol;
mod version;

pub(crate) use hash::{gnu_hash, sysv_hash, GnuTable};
pub(crate) use memory::c_str_at;
pub(crate) use object::page_size;
pub(crate) use object::{build_id_at, dynamic_address, program_headers_of};
pub use object::{shared_object_segments, LinkMap, Object, ProgramHeader};
pub use reloc::{Slot, SlotKind};
pub use segment::{Segment, SegmentFlags};
pub use symbol::{Binding, Symbol, SymbolKind};
pub(crate) use symbol::{RawSymbol, SHN_ABS, SHN_UNDEF, SYM_SIZE};
pub use version::SymbolVersion;
