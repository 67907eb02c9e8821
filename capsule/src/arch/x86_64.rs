//! x86_64: RELA relocations, RIP-relative code.

/// `R_X86_64_64`: a pointer-sized absolute word, S + A.
pub(crate) const R_ABSOLUTE: u32 = 1;
/// `R_X86_64_GLOB_DAT`: a GOT entry, S.
pub(crate) const R_GLOB_DAT: u32 = 6;
/// `R_X86_64_JUMP_SLOT`: a PLT's GOT entry, S.
pub(crate) const R_JUMP_SLOT: u32 = 7;
/// Relocations are `Elf64_Rela` (DT_RELA): the addend is in the entry, not in the slot.
pub(crate) const RELA: bool = true;

/// The forwarder's `__libc_early_init`: `ret` (padded with `int3`).
pub(crate) use super::X86_RET as RET;

/// Bytes of one forwarder stub.
pub(crate) const FORWARDER_STUB_SIZE: usize = 16;

/// A forwarder stub at file offset `at`: `lea rdi, [rip + message]; jmp [rip + slot]`,
/// padded with `int3`. Position-independent, so the file can be cached.
pub(crate) fn forwarder_stub(at: usize, message: usize, slot: usize) -> [u8; FORWARDER_STUB_SIZE] {
    let rel = |target: usize, next: usize| (target as i64 - next as i64) as i32;
    let mut code = [0xcc; FORWARDER_STUB_SIZE];
    code[0..3].copy_from_slice(&[0x48, 0x8d, 0x3d]);
    code[3..7].copy_from_slice(&rel(message, at + 7).to_le_bytes());
    code[7..9].copy_from_slice(&[0xff, 0x25]);
    code[9..13].copy_from_slice(&rel(slot, at + 13).to_le_bytes());
    code
}

/// ld.so calls IFUNC resolvers with no arguments here (`elf_ifunc_invoke`).
pub(crate) use super::resolve_ifunc_without_arguments as resolve_ifunc;

/// The `dlsym`/`dlvsym` entry points of `shim::dlsym`: `RTLD_NEXT` (`(void *) -1`, the
/// first argument) jumps to the previous function with the caller's return address still
/// on the stack; anything else goes to the Rust wrapper.
macro_rules! dl_entries {
    ($dlsym_fixed:path, $dlvsym_fixed:path, $next_dlsym:path, $next_dlvsym:path) => {
        core::arch::global_asm!(
            ".pushsection .text.capsule_dl_entries,\"ax\",@progbits",
            ".p2align 4",
            ".globl __capsule_dlsym_entry",
            ".hidden __capsule_dlsym_entry",
            ".type __capsule_dlsym_entry, @function",
            "__capsule_dlsym_entry:",
            "cmp rdi, -1",
            "je .Lcapsule_dlsym_next",
            "jmp {dlsym_fixed}",
            ".Lcapsule_dlsym_next:",
            "jmp qword ptr [rip + {next_dlsym}]",
            ".size __capsule_dlsym_entry, . - __capsule_dlsym_entry",
            ".p2align 4",
            ".globl __capsule_dlvsym_entry",
            ".hidden __capsule_dlvsym_entry",
            ".type __capsule_dlvsym_entry, @function",
            "__capsule_dlvsym_entry:",
            "cmp rdi, -1",
            "je .Lcapsule_dlvsym_next",
            "jmp {dlvsym_fixed}",
            ".Lcapsule_dlvsym_next:",
            "jmp qword ptr [rip + {next_dlvsym}]",
            ".size __capsule_dlvsym_entry, . - __capsule_dlvsym_entry",
            ".popsection",
            dlsym_fixed = sym $dlsym_fixed,
            dlvsym_fixed = sym $dlvsym_fixed,
            next_dlsym = sym $next_dlsym,
            next_dlvsym = sym $next_dlvsym,
        );
    };
}
pub(crate) use dl_entries;
