//! Rewriting relocation slots (JUMP_SLOT, GLOB_DAT and the word-sized absolute
//! `R_X86_64_64`/`R_386_32`) of loaded objects, with page protections restored exactly.
//!
//! Protections come from the object's own program headers: a page in PT_GNU_RELRO is
//! read-only after relocation, any other page has its PT_LOAD's flags. Only pages that are
//! not already writable are unprotected, each range once per batch, to read+write (never
//! executable), and put back before the batch returns. A slot in an executable segment
//! (text relocations) is refused rather than making code writable.
//!
//! Each slot is written with one aligned word-sized atomic compare-and-exchange, so a thread
//! calling through it sees the old or the new target, never a torn one, and a value that
//! changed between the check and the write is noticed.
//!
//! Lazily bound JUMP_SLOTs: until its first call, a JUMP_SLOT holds an address inside the
//! object's own PLT (an executable segment of the same object). [`Expect::Target`] treats
//! such a slot as expected and rewrites it, which binds it for good. glibc's lazy resolver
//! writes the slot unconditionally, so a thread that is inside the resolver for that very
//! slot while it is rewritten may put the real target back: rewrite before other threads
//! call through the slot, or load the object with `RTLD_NOW`.
//!
//! On i386 (REL relocations) an absolute slot's addend was the slot's own content, which
//! ld.so replaced by S + A: with [`Expect::Target`] the addend is what the slot holds
//! beyond the expected target, accepted when it lies within the symbol or a page past its
//! start (see [`Slot::addend_given`]); with [`Expect::Any`] it is taken as 0.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Bytes in a slot: a pointer.
const WORD: usize = std::mem::size_of::<usize>();

/// The largest addend a REL absolute slot is taken to carry beyond a symbol of unknown (or
/// smaller) size: a page.
const REL_ADDEND_SLACK: usize = 4096;

use crate::elf::{Object, Slot, SlotKind};
use crate::error::{Error, Result};

/// Serialises every unprotect/write/protect window, so two patchers never restore a page's
/// protection while the other still writes to it.
static PATCH_LOCK: Mutex<()> = parking_lot::const_mutex(());

/// Which current slot values may be overwritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Whatever the slot holds.
    Any,
    /// The slot must resolve to this address (for an absolute slot: hold it plus the
    /// addend), or be a JUMP_SLOT not yet lazily bound (pointing into the object's own
    /// executable code).
    Target(usize),
}

/// A slot left alone because it held something unexpected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkippedSlot {
    pub address: usize,
    /// What it held.
    pub value: usize,
}

/// What a rewrite did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatchReport {
    /// Slots that now hold the new value (those that already held it included).
    pub rewritten: usize,
    /// Slots left alone because their value did not match the expectation.
    pub skipped: Vec<SkippedSlot>,
}

/// One slot write of a batch.
struct Write {
    address: usize,
    /// The value to store over the slot's current one, or `None` where the current value
    /// may not be overwritten. A value the slot holds already counts as written.
    value_for: Box<dyn Fn(usize) -> Option<usize>>,
}

/// Rewrite every JUMP_SLOT, GLOB_DAT and absolute slot of `object` that refers to
/// `symbol` (in `version`, matched as [`Object::slots`] describes) to `replacement` (plus
/// the addend for an absolute slot), leaving alone and reporting slots whose current value
/// `expect` rejects.
///
/// # Safety
/// `object` must be live, and `replacement` must be a valid target for every caller of the
/// symbol: a function with the same ABI, or an object of compatible type and size, that
/// outlives every use through the slots.
pub unsafe fn rewrite_symbol(
    object: &Object<'_>,
    symbol: &str,
    version: Option<&str>,
    replacement: usize,
    expect: Expect,
) -> Result<PatchReport> {
    let rewrite = SymbolRewrite {
        symbol,
        version,
        replacement,
        expect,
    };
    // SAFETY: forwarded from this function's contract.
    unsafe { rewrite_symbols(object, std::slice::from_ref(&rewrite)) }
}

/// One symbol of [`rewrite_symbols`]: its slots get `replacement` where `expect` allows.
#[derive(Clone, Copy, Debug)]
pub struct SymbolRewrite<'s> {
    pub symbol: &'s str,
    pub version: Option<&'s str>,
    pub replacement: usize,
    pub expect: Expect,
}

/// [`rewrite_symbol`] for several symbols of one object: one pass over its relocations and
/// one unprotect/write/restore window for all of them.
///
/// # Safety
/// As for [`rewrite_symbol`], for every rewrite.
pub unsafe fn rewrite_symbols(
    object: &Object<'_>,
    rewrites: &[SymbolRewrite<'_>],
) -> Result<PatchReport> {
    let wanted: Vec<_> = rewrites.iter().map(|r| (r.symbol, r.version)).collect();
    let found = object.slots_matching(&wanted)?;
    // SAFETY: forwarded from this function's contract.
    unsafe { rewrite_found(object, &found, rewrites) }
}

/// [`rewrite_symbols`] for slots the caller found already: `(i, slot)` gets
/// `rewrites[i]`, as [`Object::slots_matching`] pairs them.
///
/// # Safety
/// As for [`rewrite_symbol`], for every rewrite; each slot is one of `object`'s, found
/// for the symbol of its rewrite.
pub unsafe fn rewrite_found(
    object: &Object<'_>,
    found: &[(usize, crate::elf::Slot)],
    rewrites: &[SymbolRewrite<'_>],
) -> Result<PatchReport> {
    let label = match rewrites {
        [one] => match one.version {
            Some(v) => format!("{}@{v}", one.symbol),
            None => one.symbol.to_string(),
        },
        _ => format!("{} symbols", rewrites.len()),
    };
    let writes = found
        .iter()
        .filter_map(|(i, slot)| Some((slot, rewrites.get(*i)?)))
        .map(|(slot, r)| slot_write(object, slot, r.replacement, r.expect))
        .collect::<Vec<_>>();
    // SAFETY: forwarded from this function's contract.
    let report = unsafe { write_batch(object, &label, &writes) }?;
    if report.rewritten > 0 || !report.skipped.is_empty() {
        crate::debug!(
            Reloc,
            "{}: {label} -> {} slot(s){}",
            object.name(),
            report.rewritten,
            skipped_note(&report)
        );
    }
    Ok(report)
}

/// Write `value` into the single slot at `address` of `object` if it currently holds
/// `expected` (or anything, for `None`). Returns whether the slot now holds `value`.
/// Protections are handled as for [`rewrite_symbol`].
///
/// # Safety
/// `object` must be live, `address` must be a slot that the object's code reads as a
/// pointer, and `value` a valid target for every use of that slot.
pub unsafe fn rewrite_slot(
    object: &Object<'_>,
    address: usize,
    value: usize,
    expected: Option<usize>,
) -> Result<bool> {
    let write = Write {
        address,
        value_for: Box::new(move |current| {
            (current == value || expected.is_none_or(|e| current == e)).then_some(value)
        }),
    };
    let label = format!("slot {address:#x}");
    // SAFETY: forwarded from this function's contract.
    let report = unsafe { write_batch(object, &label, std::slice::from_ref(&write)) }?;
    crate::debug!(
        Reloc,
        "{}: {label} -> {value:#x}: {}",
        object.name(),
        report.rewritten
    );
    Ok(report.rewritten == 1)
}

/// The current value of the word-sized slot at `address` of the live `object`.
pub fn read_slot(object: &Object<'_>, address: usize) -> Result<usize> {
    check_slot_address(object, address, "read")?;
    // SAFETY: the address is word-aligned and lies inside a readable PT_LOAD of a live
    // object, which stays mapped while `object` borrows it; slots are only ever written
    // atomically, so an atomic load is the right way to read one.
    Ok(unsafe { &*(address as *const AtomicUsize) }.load(Ordering::Acquire))
}

fn slot_write(object: &Object<'_>, slot: &Slot, replacement: usize, expect: Expect) -> Write {
    let slot = *slot;
    let value_for: Box<dyn Fn(usize) -> Option<usize>> = match expect {
        Expect::Any => {
            let value = slot.value_for(replacement);
            Box::new(move |_| Some(value))
        }
        Expect::Target(target) if slot.kind == SlotKind::Absolute && slot.addend.is_none() => {
            // REL: the addend is in the slot. C's `&var`, `&var.field` and `(char *)f + 16`
            // point into the symbol or just past it: within its size, where this object
            // knows it, or a page. Another definition's address is farther away.
            let size = object
                .raw_symbol(slot.symbol)
                .map_or(0, |s| s.size)
                .max(REL_ADDEND_SLACK as u64) as usize;
            Box::new(move |current| {
                let addend = slot.addend_given(current, target) as usize;
                let done = slot.addend_given(current, replacement) as usize;
                if addend < size {
                    Some(replacement.wrapping_add(addend))
                } else {
                    (done < size).then_some(current)
                }
            })
        }
        Expect::Target(target) => {
            let (wanted, value) = (slot.value_for(target), slot.value_for(replacement));
            let lazy = slot.kind == SlotKind::JumpSlot;
            let plt = executable_ranges(object);
            Box::new(move |current| {
                let accepted = current == wanted
                    || current == value
                    || (lazy && plt.iter().any(|r| r.contains(&current)));
                accepted.then_some(value)
            })
        }
    };
    Write {
        address: slot.address,
        value_for,
    }
}

/// The object's executable PT_LOAD ranges, where an unbound JUMP_SLOT points.
fn executable_ranges(object: &Object<'_>) -> Vec<Range<usize>> {
    object
        .load_segments()
        .filter(|s| s.flags.execute)
        .map(|s| s.range())
        .collect()
}

fn skipped_note(report: &PatchReport) -> String {
    if report.skipped.is_empty() {
        String::new()
    } else {
        format!(
            ", {} skipped (unexpected value, e.g. {:#x} at {:#x})",
            report.skipped.len(),
            report.skipped[0].value,
            report.skipped[0].address
        )
    }
}

fn patch_error(object: &Object<'_>, symbol: &str, reason: String) -> Error {
    Error::Patch {
        object: object.name().to_string(),
        symbol: symbol.to_string(),
        reason,
    }
}

/// Check that `address` is an aligned word-sized slot in a non-executable segment of a live
/// object, and return its segment's protection after relocation.
fn check_slot_address(object: &Object<'_>, address: usize, symbol: &str) -> Result<libc::c_int> {
    if !object.is_live() {
        return Err(patch_error(
            object,
            symbol,
            "the object is a file image, not loaded in this process".into(),
        ));
    }
    if address & (WORD - 1) != 0 {
        return Err(patch_error(
            object,
            symbol,
            format!("slot {address:#x} is not {WORD}-byte aligned"),
        ));
    }
    let segment = object
        .load_segment_at(address)
        .filter(|s| {
            address
                .checked_add(WORD)
                .is_some_and(|end| end <= s.range().end)
        })
        .ok_or_else(|| {
            patch_error(
                object,
                symbol,
                format!("slot {address:#x} lies outside the object's PT_LOAD segments"),
            )
        })?;
    if segment.flags.execute {
        return Err(patch_error(
            object,
            symbol,
            format!("slot {address:#x} lies in an executable segment (text relocations); capsule never makes code writable"),
        ));
    }
    if !segment.flags.write {
        return Err(patch_error(
            object,
            symbol,
            format!("slot {address:#x} lies in a read-only segment that is not RELRO"),
        ));
    }
    if object.in_relro(address) {
        Ok(libc::PROT_READ)
    } else {
        Ok(segment.flags.to_prot())
    }
}

/// Page ranges to unprotect for a batch: the pages of `addresses` (read-only pages,
/// restored to read-only), merged where adjacent, and joined with the pages between them
/// where those lie inside one of `areas` (each read-only throughout: RELRO, a read-only
/// segment). Every range costs two `mprotect` calls, each of which splits or merges the
/// kernel's mapping: a forwarder's 25 absolute symbols on as many pages cost 120 us.
fn pages_to_unprotect(
    addresses: &[usize],
    page: usize,
    areas: &[Range<usize>],
) -> Vec<Range<usize>> {
    let mut pages: Vec<usize> = addresses.iter().map(|a| a & !(page - 1)).collect();
    pages.sort_unstable();
    pages.dedup();
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for start in pages {
        match ranges.last_mut() {
            Some(last)
                if last.end == start
                    || areas.iter().any(|a| a.start <= last.end && start <= a.end) =>
            {
                last.end = start + page
            }
            _ => ranges.push(start..start + page),
        }
    }
    ranges
}

fn mprotect(range: &Range<usize>, prot: libc::c_int) -> std::io::Result<()> {
    // SAFETY: `range` is page-aligned and covers pages of a live object's RELRO, which the
    // object keeps mapped; changing their protection affects no Rust-visible invariant
    // because only atomic slot writes happen while they are writable.
    let rc = unsafe {
        libc::mprotect(
            range.start as *mut libc::c_void,
            range.end - range.start,
            prot,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Under the patch lock, make `ranges` (read-only pages of `object`) read+write, run
/// `write`, and make them read-only again: the one unprotect/write/restore window.
fn with_unprotected<T>(
    object: &Object<'_>,
    what: &str,
    ranges: &[Range<usize>],
    write: impl FnOnce() -> T,
) -> Result<T> {
    let _guard = PATCH_LOCK.lock();
    let mut opened = Vec::new();
    for range in ranges {
        if let Err(e) = mprotect(range, libc::PROT_READ | libc::PROT_WRITE) {
            // The mprotect failure is what the caller needs to hear about; a failed restore
            // of pages opened so far would only repeat the same cause.
            let _ = restore(&opened);
            return Err(patch_error(
                object,
                what,
                format!("mprotect({:#x}, read+write): {e}", range.start),
            ));
        }
        opened.push(range.clone());
    }
    let written = write();
    restore(&opened)
        .map_err(|e| patch_error(object, what, format!("restoring read-only protection: {e}")))?;
    Ok(written)
}

/// Check every write, unprotect the read-only pages once, write, and restore.
///
/// # Safety
/// As for [`rewrite_symbol`]: every value written must be valid for the slot's users.
unsafe fn write_batch(object: &Object<'_>, symbol: &str, writes: &[Write]) -> Result<PatchReport> {
    let mut read_only = Vec::new();
    for write in writes {
        if check_slot_address(object, write.address, symbol)? & libc::PROT_WRITE == 0 {
            read_only.push(write.address);
        }
    }
    let relro: Vec<Range<usize>> = object.relro().into_iter().collect();
    let ranges = pages_to_unprotect(&read_only, crate::elf::page_size(), &relro);
    with_unprotected(object, symbol, &ranges, || {
        let mut report = PatchReport::default();
        for write in writes {
            // SAFETY: checked above: aligned, inside a live object's writable (or now
            // unprotected RELRO) segment; the slot is a pointer-sized word the object's code
            // reads, so an atomic access is the right way to change it.
            let slot = unsafe { &*(write.address as *const AtomicUsize) };
            match swap_if_accepted(slot, write) {
                Ok(()) => report.rewritten += 1,
                Err(value) => report.skipped.push(SkippedSlot {
                    address: write.address,
                    value,
                }),
            }
        }
        report
    })
}

/// Write each `(address, bytes)` into a live object's read-only, non-executable memory
/// (a forwarder's symbol table), under the patch lock, and restore read-only protection.
///
/// # Safety
/// Nothing may read the bytes being replaced while they are written, and each write must
/// leave the object valid for its users.
pub(crate) unsafe fn write_read_only(
    object: &Object<'_>,
    what: &str,
    writes: &[(usize, Vec<u8>)],
) -> Result<()> {
    for (address, bytes) in writes {
        let end = address.checked_add(bytes.len()).unwrap_or(usize::MAX);
        let segment = object
            .load_segments()
            .find(|s| s.range().contains(address) && end <= s.range().end);
        match segment {
            Some(s) if !s.flags.execute && !s.flags.write => {}
            _ => {
                return Err(patch_error(
                    object,
                    what,
                    format!("{address:#x} is not in a read-only, non-executable segment"),
                ))
            }
        }
    }
    let page = crate::elf::page_size();
    let starts: Vec<usize> = writes
        .iter()
        .flat_map(|(a, b)| [*a, a + b.len() - 1])
        .collect();
    let read_only: Vec<Range<usize>> = object
        .load_segments()
        .filter(|s| !s.flags.execute && !s.flags.write)
        .map(|s| s.range())
        .collect();
    let ranges = pages_to_unprotect(&starts, page, &read_only);
    with_unprotected(object, what, &ranges, || {
        for (address, bytes) in writes {
            // SAFETY: checked above to lie in the object's mapping, now writable; the
            // caller guarantees nobody reads it meanwhile.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), *address as *mut u8, bytes.len())
            };
        }
    })
}

/// Copy `bytes` to `address` in a live object's data, under the patch lock: pages in its
/// RELRO (read-only after relocation, as a copy-relocated `const` variable is) are made
/// writable for the copy and read-only again after; other pages of a writable segment are
/// written as they are, their protection untouched.
///
/// # Safety
/// Nothing may read the bytes being replaced while they are written, and the copy must
/// leave the object valid for its users.
pub(crate) unsafe fn write_data(
    object: &Object<'_>,
    what: &str,
    address: usize,
    bytes: &[u8],
) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    if !object.is_live() {
        return Err(patch_error(
            object,
            what,
            "the object is a file image, not loaded in this process".into(),
        ));
    }
    let last = address.saturating_add(bytes.len() - 1);
    match object.load_segment_at(address) {
        Some(s) if s.range().contains(&last) && s.flags.write && !s.flags.execute => {}
        _ => {
            return Err(patch_error(
                object,
                what,
                format!(
                    "{address:#x}..{:#x} is not in one writable, non-executable segment",
                    last + 1
                ),
            ))
        }
    }
    let page = crate::elf::page_size();
    let relro_pages: Vec<usize> = (address & !(page - 1)..=last)
        .step_by(page)
        .filter(|&p| object.in_relro(p))
        .collect();
    let ranges = pages_to_unprotect(&relro_pages, page, &[]);
    with_unprotected(object, what, &ranges, || {
        // SAFETY: checked above to lie in one writable segment of the live object, its
        // RELRO pages now writable; the caller guarantees nobody reads it meanwhile.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len()) };
    })
}

/// Store the new value if the current one is accepted, retrying if another thread (a lazy
/// resolver) changed it between the check and the write. `Err` holds the rejected value.
fn swap_if_accepted(slot: &AtomicUsize, write: &Write) -> std::result::Result<(), usize> {
    let mut current = slot.load(Ordering::Acquire);
    loop {
        let Some(value) = (write.value_for)(current) else {
            return Err(current);
        };
        if current == value {
            return Ok(());
        }
        match slot.compare_exchange(current, value, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => current = now,
        }
    }
}

fn restore(ranges: &[Range<usize>]) -> std::io::Result<()> {
    let mut result = Ok(());
    for range in ranges {
        if let Err(e) = mprotect(range, libc::PROT_READ) {
            result = Err(e);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_pages_merge_and_duplicates_vanish() {
        let ranges = pages_to_unprotect(&[0x3008, 0x1010, 0x1ff8, 0x2000, 0x5000], 0x1000, &[]);
        assert_eq!(ranges, vec![0x1000..0x4000, 0x5000..0x6000]);
    }

    #[test]
    fn pages_inside_one_read_only_area_join_with_those_between() {
        let addresses = [0x1010, 0x5000, 0x9ff0, 0xc000];
        // 0x1000..0xa000 is read-only throughout: one range; 0xc000 lies past it.
        let area = 0x800..0xa100;
        let ranges = pages_to_unprotect(&addresses, 0x1000, std::slice::from_ref(&area));
        assert_eq!(ranges, vec![0x1000..0xa000, 0xc000..0xd000]);
        // The pages between must lie inside the area, not just the written ones.
        let ranges =
            pages_to_unprotect(&[0x1010, 0x5000], 0x1000, &[0x800..0x1800, 0x4800..0x6000]);
        assert_eq!(ranges, vec![0x1000..0x2000, 0x5000..0x6000]);
    }

    #[test]
    fn file_images_cannot_be_patched() {
        let err = read_slot_error();
        assert!(err.contains("file image"), "{err}");
    }

    #[test]
    fn rel_absolute_slots_keep_the_addend_they_hold() {
        let image = std::fs::read("/proc/self/exe").expect("read the test binary");
        let object = Object::from_file_image("self", &image).expect("parse the test binary");
        // Symbol 0, the null symbol: no size, so a page of slack.
        let slot = Slot {
            address: 0x1000,
            kind: SlotKind::Absolute,
            addend: None,
            symbol: 0,
        };
        let write = slot_write(&object, &slot, 0x9000, Expect::Target(0x5000));
        assert_eq!(
            (write.value_for)(0x5010),
            Some(0x9010),
            "the addend 16 is kept"
        );
        assert_eq!((write.value_for)(0x9010), Some(0x9010), "already rewritten");
        assert_eq!(
            (write.value_for)(0x7000_0000),
            None,
            "another definition's address"
        );
        assert_eq!((write.value_for)(0x4ff0), None, "below the expected target");
        let any = slot_write(&object, &slot, 0x9000, Expect::Any);
        assert_eq!(
            (any.value_for)(0x1234),
            Some(0x9000),
            "Expect::Any: addend 0"
        );
    }

    fn read_slot_error() -> String {
        let image = std::fs::read("/proc/self/exe").expect("read the test binary");
        let object = Object::from_file_image("self", &image).expect("parse the test binary");
        read_slot(&object, 0x1000).unwrap_err().to_string()
    }
}
