//! aarch64: RELA relocations; code reaches its data PC-relatively, a page with `adrp` and
//! the offset in it with the next instruction (±4 GiB).

/// `R_AARCH64_ABS64`: a pointer-sized absolute word, S + A.
pub(crate) const R_ABSOLUTE: u32 = 257;
/// `R_AARCH64_GLOB_DAT`: a GOT entry, S + A.
pub(crate) const R_GLOB_DAT: u32 = 1025;
/// `R_AARCH64_JUMP_SLOT`: a PLT's GOT entry, S + A. `R_AARCH64_TLSDESC` entries share
/// DT_JMPREL with these; they are not symbol slots and are left alone by type.
pub(crate) const R_JUMP_SLOT: u32 = 1026;
/// Relocations are `Elf64_Rela` (DT_RELA): the addend is in the entry, not in the slot.
pub(crate) const RELA: bool = true;

const RET_INSN: u32 = 0xd65f_03c0;
/// `brk #0`: traps, as `int3` does on x86.
const BRK_INSN: u32 = 0xd420_0000;

/// Four instructions as little-endian bytes.
const fn code(words: [u32; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (words[i / 4] >> (8 * (i % 4))) as u8;
        i += 1;
    }
    out
}

/// The forwarder's `__libc_early_init`: `ret` (padded with `brk`).
pub(crate) const RET: [u8; 16] = code([RET_INSN, BRK_INSN, BRK_INSN, BRK_INSN]);

/// Bytes of one forwarder stub.
pub(crate) const FORWARDER_STUB_SIZE: usize = 24;

/// `adrp xd, target`, at `pc`: the 4 KiB page of `target` relative to `pc`'s.
fn adrp(rd: u32, pc: usize, target: usize) -> u32 {
    let pages = ((target >> 12) as i64 - (pc >> 12) as i64) as u32;
    0x9000_0000 | (pages & 3) << 29 | (pages >> 2 & 0x7_ffff) << 5 | rd
}

/// A forwarder stub at file offset `at`, calling the function in `slot` with the address
/// of `message` in `x0` (that function never returns):
///
/// ```text
/// adrp x0, message;  add x0, x0, :lo12:message
/// adrp x16, slot;    ldr x16, [x16, :lo12:slot]
/// br x16;            brk #0
/// ```
///
/// Position-independent for any move by whole 4 KiB pages (the file can be cached: ld.so
/// maps it at a page-aligned bias). `x16` is the intra-procedure-call scratch register.
/// `slot` is 8-byte aligned (the start of the forwarder's writable page).
pub(crate) fn forwarder_stub(at: usize, message: usize, slot: usize) -> [u8; FORWARDER_STUB_SIZE] {
    let lo12 = |target: usize| (target & 0xfff) as u32;
    let words = [
        adrp(0, at, message),
        0x9100_0000 | lo12(message) << 10,
        adrp(16, at + 8, slot),
        // ldr x16, [x16, #imm]: the offset is scaled by 8.
        0xf940_0000 | (lo12(slot) >> 3) << 10 | 16 << 5 | 16,
        0xd61f_0000 | 16 << 5,
        BRK_INSN,
    ];
    let mut out = [0; FORWARDER_STUB_SIZE];
    for (bytes, word) in out.chunks_exact_mut(4).zip(words) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// `__ifunc_arg_t` of glibc's `<sys/ifunc.h>` (aarch64), as of glibc 2.36.
#[repr(C)]
struct IfuncArg {
    size: u64,
    hwcap: u64,
    hwcap2: u64,
}

/// `_IFUNC_ARG_HWCAP`: tells a resolver that its second argument is an `__ifunc_arg_t`.
const IFUNC_ARG_HWCAP: u64 = 1 << 62;

/// An IFUNC's implementation, asked of its resolver as ld.so asks it on aarch64
/// (`elf_ifunc_invoke` in `sysdeps/aarch64/dl-irel.h`): `(hwcap | _IFUNC_ARG_HWCAP,
/// &arg)`, the hardware capabilities being the auxiliary vector's, as ld.so read them.
///
/// # Safety
/// `resolver` must be the address of an STT_GNU_IFUNC symbol of a loaded, relocated
/// object.
pub(crate) unsafe fn resolve_ifunc(resolver: usize) -> usize {
    // SAFETY: getauxval only reads the auxiliary vector.
    let (hwcap, hwcap2) = unsafe {
        (
            libc::getauxval(libc::AT_HWCAP),
            libc::getauxval(libc::AT_HWCAP2),
        )
    };
    let arg = IfuncArg {
        size: std::mem::size_of::<IfuncArg>() as u64,
        hwcap,
        hwcap2,
    };
    // SAFETY: the caller's contract; a resolver only reads its arguments.
    unsafe {
        std::mem::transmute::<usize, extern "C" fn(u64, *const IfuncArg) -> usize>(resolver)(
            hwcap | IFUNC_ARG_HWCAP,
            &arg,
        )
    }
}

/// The `dlsym`/`dlvsym` entry points of `shim::dlsym`: `RTLD_NEXT` (`(void *) -1`, the
/// first argument, in `x0`) branches to the previous function with the caller's return
/// address still in `x30`; anything else goes to the Rust wrapper. `x16` is scratch
/// between a call and its callee.
macro_rules! dl_entries {
    ($dlsym_fixed:path, $dlvsym_fixed:path, $next_dlsym:path, $next_dlvsym:path) => {
        core::arch::global_asm!(
            ".pushsection .text.capsule_dl_entries,\"ax\",@progbits",
            ".macro capsule_dl_entry name, fixed, next",
            ".p2align 4",
            r".globl \name",
            r".hidden \name",
            r".type \name, @function",
            r"\name:",
            "cmn x0, #1",
            "b.eq 1f",
            r"b \fixed",
            "1:",
            r"adrp x16, \next",
            r"ldr x16, [x16, :lo12:\next]",
            "br x16",
            r".size \name, . - \name",
            ".endm",
            "capsule_dl_entry __capsule_dlsym_entry, {dlsym_fixed}, {next_dlsym}",
            "capsule_dl_entry __capsule_dlvsym_entry, {dlvsym_fixed}, {next_dlvsym}",
            ".purgem capsule_dl_entry",
            ".popsection",
            dlsym_fixed = sym $dlsym_fixed,
            dlvsym_fixed = sym $dlvsym_fixed,
            next_dlsym = sym $next_dlsym,
            next_dlvsym = sym $next_dlvsym,
        );
    };
}
pub(crate) use dl_entries;

#[cfg(test)]
mod tests {
    use super::*;

    fn words(code: &[u8]) -> Vec<u32> {
        code.chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn the_forwarder_stub_is_what_the_assembler_writes() {
        // binutils 2.40: a stub at 0x2000, its slot at 0x5008, its message at 0x6123.
        assert_eq!(
            words(&forwarder_stub(0x2000, 0x6123, 0x5008)),
            [
                0x9000_0020,
                0x9104_8c00,
                0xf000_0010,
                0xf940_0610,
                0xd61f_0200,
                0xd420_0000
            ]
        );
        // Backwards: -29 pages, split into adrp's low two bits and high nineteen.
        let back = words(&forwarder_stub(0x20000, 0x3010, 0x3008));
        assert_eq!(back[0], 0x9000_0000 | 3 << 29 | 0x7_fff8 << 5);
        assert_eq!(back[2], 0x9000_0000 | 3 << 29 | 0x7_fff8 << 5 | 16);
        assert_eq!(words(&RET)[0], RET_INSN);
    }
}
