//! i386: no PC-relative data addressing, so a trampoline takes its own address with a call
//! to the next instruction and a pop into `ecx`, scratch in the cdecl convention every
//! exported C API on i386 Linux uses (GL, EGL, Vulkan, zlib), and jumps through its slot
//! relative to it: no text relocation, nothing writable and executable. Measured (AMD EPYC,
//! `benches/benches/calls.rs`): +0.17 ns per call over a direct PLT call, where a call to a
//! `mov (%esp), %ecx; ret` thunk cost +1.5 ns (processors treat a call to the next
//! instruction as no call: the return stack stays balanced). A stub passes its index on a 16-byte aligned stack, as the psABI wants at a
//! call. AT&T syntax: LLVM's Intel parser takes no `symbol - label` displacement.

use super::Arch;
use capsule::machine::Machine;

pub(super) const ARCH: Arch = Arch {
    machine: Machine::X86,
    target_arch: "x86",
    options: "options(att_syntax)",
    trampoline_align: ".p2align 4",
    trampoline: &[
        "call 1f",
        "1:",
        "popl %ecx",
        "jmp *({slots} + 4 * .Lcapsule_slot - 1b)(%ecx)",
    ],
    missing_stub: &[
        "andl $-16, %esp",
        "subl $12, %esp",
        "pushl $.Lcapsule_stub",
        "call {missing}",
    ],
};
