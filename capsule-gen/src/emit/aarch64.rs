//! aarch64: a trampoline loads its slot PC-relatively (`adrp` for the 4 KiB page, the
//! offset in the load) into `x16`, the intra-procedure-call scratch register that the
//! psABI lets a veneer clobber, and branches to it. A stub passes its index in `w0`.

use super::Arch;
use capsule::machine::Machine;

pub(super) const ARCH: Arch = Arch {
    machine: Machine::Aarch64,
    target_arch: "aarch64",
    options: "",
    trampoline_align: ".p2align 4",
    trampoline: &[
        "adrp x16, {slots} + 8 * .Lcapsule_slot",
        "ldr x16, [x16, :lo12:{slots} + 8 * .Lcapsule_slot]",
        "br x16",
    ],
    // Two halves, so that any index fits (`mov` takes 16 bits).
    missing_stub: &[
        "movz w0, #(.Lcapsule_stub & 0xffff)",
        "movk w0, #(.Lcapsule_stub >> 16), lsl #16",
        "b {missing}",
    ],
};
