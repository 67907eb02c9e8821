//! Views of a loaded ELF object (dynamic section, symbols, hashes, versions, relocations, RELRO), bounds-checked over a memory source.
