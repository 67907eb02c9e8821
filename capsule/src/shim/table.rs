//! The shim's function table once its slots are filled: for function `i`, the trampoline
//! the shim exports and the real function its slot holds.
//!
//! Looked up per name when a caller or a `dlsym` answer needs it, not for every function
//! at load: a program imports a few dozen of libGL's 3,470 names. The generated symbol
//! list is sorted by name (checked when the shim is built, see [`Library::new`]), so a
//! name's functions are found by binary search.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Library, MISSING_STUB_STRIDE};
use crate::elf::Object;

/// Where one of the shim's functions leads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Target {
    /// The shim's exported address for this (name, version): its trampoline.
    pub trampoline: usize,
    /// The host library's function, or `None` when the host's library lacks it.
    pub real: Option<usize>,
}

pub(super) struct Table<'a> {
    pub lib: &'static Library,
    /// The shim itself, whose dynamic symbols are the trampolines.
    own: Object<'a>,
    slots: *const usize,
}

impl<'a> Table<'a> {
    /// # Safety
    /// `slots` is `lib`'s filled slot table (one aligned `usize` per function), alive as
    /// long as the table.
    pub unsafe fn new(lib: &'static Library, own: Object<'a>, slots: *const usize) -> Table<'a> {
        Table { lib, own, slots }
    }

    /// The indices of the functions named `name` (one per version).
    pub fn indices(&self, name: &[u8]) -> Range<usize> {
        let functions = self.lib.functions();
        let start = functions.partition_point(|f| f.name.to_bytes() < name);
        let len = functions[start..].partition_point(|f| f.name.to_bytes() == name);
        start..start + len
    }

    /// Function `index`'s trampoline and real target; a trampoline that cannot be found in
    /// the shim's own table is 0 (and has no target: nothing can have bound to it).
    pub fn target(&self, index: usize) -> Target {
        let trampoline = match self.lib.functions()[index].texts() {
            Some((name, version)) => match self.own.lookup(name, version) {
                Ok(Some(found)) => found.address,
                _ => 0,
            },
            None => 0,
        };
        Target {
            trampoline,
            real: self.real(index).filter(|_| trampoline != 0),
        }
    }

    /// The function among those named `name` whose trampoline is `address`.
    pub fn trampoline_at(&self, name: &[u8], address: usize) -> Option<Target> {
        self.indices(name)
            .map(|i| self.target(i))
            .find(|t| t.trampoline == address && address != 0)
    }

    /// Slot `index`'s value as a real function, or `None` when it holds the missing stub.
    fn real(&self, index: usize) -> Option<usize> {
        // SAFETY: `new`'s contract: one filled usize per function.
        let slot = unsafe { AtomicUsize::from_ptr(self.slots.add(index).cast_mut()) }
            .load(Ordering::Acquire);
        let stub = self.lib.missing_stubs.get().copied()? + index * MISSING_STUB_STRIDE;
        (slot != stub && slot != 0).then_some(slot)
    }
}
