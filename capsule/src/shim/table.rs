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

    /// The indices of the functions named `name` (one per version). The shim's own hash
    /// table answers first for a name it does not export (most names a program imports
    /// are another library's), which its Bloom filter rejects without a string compared.
    pub fn indices(&self, name: &[u8]) -> Range<usize> {
        if let Some(exported) = self.own.gnu_table() {
            if !exported.has_hash(crate::elf::gnu_hash(name) & !1) {
                return 0..0;
            }
        }
        let count = self.lib.function_count();
        let start = partition_point(count, |i| self.lib.compare_function_name(i, name).is_lt());
        let mut end = start;
        while end < count && self.lib.compare_function_name(end, name).is_eq() {
            end += 1;
        }
        start..end
    }

    /// Function `index`'s trampoline and real target; a trampoline that cannot be found in
    /// the shim's own table is 0 (and has no target: nothing can have bound to it).
    pub fn target(&self, index: usize) -> Target {
        let trampoline = match self.lib.function(index).and_then(|f| f.texts()) {
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

/// The first index of `0..count` for which `before` is false (`before` holds for a prefix
/// of the range, as for slices' `partition_point`).
fn partition_point(count: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    #[test]
    fn partition_point_finds_the_end_of_the_prefix() {
        let names = ["a", "b", "b", "c"];
        for (name, start) in [("", 0), ("a", 0), ("b", 1), ("bb", 3), ("c", 3), ("d", 4)] {
            assert_eq!(
                super::partition_point(names.len(), |i| names[i] < name),
                start,
                "{name}"
            );
        }
        assert_eq!(super::partition_point(0, |_| true), 0);
    }
}
