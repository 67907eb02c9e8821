//! Rewriting relocation slots (JUMP_SLOT, GLOB_DAT, R_X86_64_64) of loaded objects, with page protections restored exactly.
