//! What differs between processor architectures in the runtime: relocation types, whether
//! relocations carry their addend, the machine code the forwarder writes, how an IFUNC
//! resolver is called, and the assembly of the `dlsym` entry points.
//!
//! One file per architecture, each defining the same items; [`native`] is this build's.
//! A port is a new file and a line in the table below (and [`crate::machine`]'s facts).
//! Layouts that only depend on the ELF class (Elf32 vs Elf64 records) live in
//! `elf::layout`. This module imports nothing of the crate.

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
#[cfg(target_arch = "x86")]
pub(crate) mod x86;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64 as native;
#[cfg(target_arch = "x86")]
pub(crate) use x86 as native;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64 as native;

#[cfg(not(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64")))]
compile_error!(
    "capsule supports x86_64, i386 (x86) and aarch64 so far: add a file to capsule/src/arch"
);

/// `ret`, padded with `int3` (x86_64 and i386).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub(crate) const X86_RET: [u8; 16] = {
    let mut code = [0xcc; 16];
    code[0] = 0xc3;
    code
};

/// An IFUNC's implementation, asked of its resolver where ld.so calls resolvers with no
/// arguments (x86_64 and i386: they read the CPU features ld.so set up at start).
///
/// # Safety
/// `resolver` must be the address of an STT_GNU_IFUNC symbol of a loaded, relocated
/// object.
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub(crate) unsafe fn resolve_ifunc_without_arguments(resolver: usize) -> usize {
    // SAFETY: the caller's contract; a resolver has no other effect.
    unsafe { std::mem::transmute::<usize, extern "C" fn() -> usize>(resolver)() }
}

#[cfg(test)]
mod tests {
    use super::native;

    #[test]
    fn the_forwarder_stub_fits_and_is_position_independent() {
        let a = native::forwarder_stub(0x2000, 0x1000, 0x4000);
        let b = native::forwarder_stub(0x3000, 0x2000, 0x5000);
        assert_eq!(a.len(), native::FORWARDER_STUB_SIZE);
        // Moving stub, message and slot by one amount gives the same bytes.
        assert_eq!(a, b);
    }
}
