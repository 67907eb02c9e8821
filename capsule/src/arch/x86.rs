//! i386: REL relocations (the addend is the slot's own content), and no PC-relative data
//! addressing: code finds its data from its own address, taken with a call.

/// `R_386_32`: a pointer-sized absolute word, S + A, A being what the slot held.
pub(crate) const R_ABSOLUTE: u32 = 1;
/// `R_386_GLOB_DAT`: a GOT entry, S.
pub(crate) const R_GLOB_DAT: u32 = 6;
/// `R_386_JMP_SLOT`: a PLT's GOT entry, S.
pub(crate) const R_JUMP_SLOT: u32 = 7;
/// Relocations are `Elf32_Rel` (DT_REL): an `R_386_32` slot's addend is what the slot
/// held before ld.so added S to it.
pub(crate) const RELA: bool = false;

/// The forwarder's `__libc_early_init`: `ret` (padded with `int3`).
pub(crate) use super::X86_RET as RET;

/// Bytes of one forwarder stub.
pub(crate) const FORWARDER_STUB_SIZE: usize = 32;

/// A forwarder stub at file offset `at`, position-independent (the file is cached), that
/// calls the function in `slot` with the address of `message` (cdecl, on a 16-byte
/// aligned stack, as the i386 psABI wants at a call); that function never returns:
///
/// ```text
/// call 1f; 1: pop eax            ; eax = the stub's address + 5
/// lea ecx, [eax + message - 1b]
/// and esp, -16; sub esp, 12; push ecx
/// call dword ptr [eax + slot - 1b]
/// ```
pub(crate) fn forwarder_stub(at: usize, message: usize, slot: usize) -> [u8; FORWARDER_STUB_SIZE] {
    let here = at + 5;
    let rel = |target: usize| (target as i64 - here as i64) as i32;
    let mut code = [0xcc; FORWARDER_STUB_SIZE];
    code[0..6].copy_from_slice(&[0xe8, 0, 0, 0, 0, 0x58]);
    code[6..8].copy_from_slice(&[0x8d, 0x88]);
    code[8..12].copy_from_slice(&rel(message).to_le_bytes());
    code[12..19].copy_from_slice(&[0x83, 0xe4, 0xf0, 0x83, 0xec, 0x0c, 0x51]);
    code[19..21].copy_from_slice(&[0xff, 0x90]);
    code[21..25].copy_from_slice(&rel(slot).to_le_bytes());
    code
}

/// ld.so calls IFUNC resolvers with no arguments here (`elf_ifunc_invoke`).
pub(crate) use super::resolve_ifunc_without_arguments as resolve_ifunc;

/// The `dlsym`/`dlvsym` entry points of `shim::dlsym`: `RTLD_NEXT` (`(void *) -1`, the
/// first argument, on the stack above the return address) jumps to the previous function
/// with the caller's return address still on the stack; anything else goes to the Rust
/// wrapper. The previous function's address is read relative to the entry's own, which a
/// call to the next instruction and a pop put in `ecx` (scratch in `dlsym`'s cdecl).
macro_rules! dl_entries {
    ($dlsym_fixed:path, $dlvsym_fixed:path, $next_dlsym:path, $next_dlvsym:path) => {
        // AT&T syntax: LLVM's Intel parser takes no `symbol - label` displacement.
        core::arch::global_asm!(
            ".pushsection .text.capsule_dl_entries,\"ax\",@progbits",
            ".p2align 4",
            ".globl __capsule_dlsym_entry",
            ".hidden __capsule_dlsym_entry",
            ".type __capsule_dlsym_entry, @function",
            "__capsule_dlsym_entry:",
            "cmpl $-1, 4(%esp)",
            "je .Lcapsule_dlsym_next",
            "jmp {dlsym_fixed}",
            ".Lcapsule_dlsym_next:",
            "call .Lcapsule_dlsym_pc",
            ".Lcapsule_dlsym_pc:",
            "popl %ecx",
            "jmp *({next_dlsym} - .Lcapsule_dlsym_pc)(%ecx)",
            ".size __capsule_dlsym_entry, . - __capsule_dlsym_entry",
            ".p2align 4",
            ".globl __capsule_dlvsym_entry",
            ".hidden __capsule_dlvsym_entry",
            ".type __capsule_dlvsym_entry, @function",
            "__capsule_dlvsym_entry:",
            "cmpl $-1, 4(%esp)",
            "je .Lcapsule_dlvsym_next",
            "jmp {dlvsym_fixed}",
            ".Lcapsule_dlvsym_next:",
            "call .Lcapsule_dlvsym_pc",
            ".Lcapsule_dlvsym_pc:",
            "popl %ecx",
            "jmp *({next_dlvsym} - .Lcapsule_dlvsym_pc)(%ecx)",
            ".size __capsule_dlvsym_entry, . - __capsule_dlvsym_entry",
            ".popsection",
            dlsym_fixed = sym $dlsym_fixed,
            dlvsym_fixed = sym $dlvsym_fixed,
            next_dlsym = sym $next_dlsym,
            next_dlvsym = sym $next_dlvsym,
            options(att_syntax),
        );
    };
}
pub(crate) use dl_entries;
