//! x86_64: a trampoline is one RIP-relative indirect jump through its slot; a stub passes
//! its index in `edi`.

use super::Arch;
use capsule::machine::Machine;

pub(super) const ARCH: Arch = Arch {
    machine: Machine::X86_64,
    target_arch: "x86_64",
    options: "",
    trampoline_align: ".p2align 3",
    trampoline: &["jmp qword ptr [rip + {slots} + 8 * .Lcapsule_slot]"],
    missing_stub: &["mov edi, .Lcapsule_stub", "jmp {missing}"],
};
