//! A forwarder's activation remembered in its own file.
//!
//! Activating a forwarder walks every object before the program's copy in the program's
//! scope (`interposed`), which needs a view of each, of the copy and of the forwarder:
//! most of a small library's load into a capsule beyond its `dlmopen` calls. What the
//! walk finds depends only on those objects, so a forwarder whose name holds their GNU
//! build IDs (`sharing::scope_key`) carries the answer in its dynamic section, in tags of
//! the OS-specific range that ld.so passes over: one saying that it remembers, then one
//! pair per symbol (the forwarder's index; the earlier object's place in the scope and
//! its symbol's index). Activation reads them where ld.so mapped the section and only
//! looks up the symbols they name (none, for most programs and libc). A file that
//! remembers nothing (a scope object without a build ID) is walked at each activation.

use crate::dynamic_tags::{DT_NULL, DT_SONAME, DT_STRTAB};
use crate::elf::LinkMap;

use super::interposed::Interposition;

/// The forwarder remembers its activation; the value is the number of pairs that follow.
pub(crate) const DT_CAPSULE_REMEMBERED: u64 = 0x6c61_7001;
/// One remembered symbol: the forwarder's (and the copy's) symbol index.
pub(crate) const DT_CAPSULE_TARGET: u64 = 0x6c61_7002;
/// Right after its target: the earlier object's place in the scope (high 8 bits of 32)
/// and its symbol's index there (low 24).
pub(crate) const DT_CAPSULE_DEFINED_BY: u64 = 0x6c61_7003;

/// The most objects a remembered scope may hold (a place takes 8 bits).
pub(crate) const MAX_SCOPE: usize = 255;
const SYMBOL_BITS: u32 = 24;

/// Where a remembered symbol's definition is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub target: u32,
    pub object: usize,
    pub symbol: u32,
}

/// The dynamic entries that remember `found`; None if one cannot be written (an object
/// past [`MAX_SCOPE`], a symbol index past 24 bits).
pub(crate) fn encode(found: &[Interposition]) -> Option<Vec<(u64, u64)>> {
    let mut entries = vec![(DT_CAPSULE_REMEMBERED, found.len() as u64)];
    for f in found {
        if f.object > MAX_SCOPE || f.symbol >> SYMBOL_BITS != 0 {
            return None;
        }
        entries.push((DT_CAPSULE_TARGET, u64::from(f.target)));
        let by = (f.object as u64) << SYMBOL_BITS | u64::from(f.symbol);
        entries.push((DT_CAPSULE_DEFINED_BY, by));
    }
    Some(entries)
}

/// The remembered entries among a dynamic section's (tag, value) pairs: None if it
/// remembers nothing; Err if the tags are out of order or their count is not the one
/// announced. Public for the fuzz target.
pub fn decode(
    dynamic: impl IntoIterator<Item = (u64, u64)>,
) -> std::result::Result<Option<Vec<Entry>>, String> {
    let mut announced = None;
    let mut entries = Vec::new();
    let mut target = None;
    for (tag, value) in dynamic {
        match tag {
            DT_CAPSULE_REMEMBERED if announced.is_none() => announced = Some(value),
            DT_CAPSULE_REMEMBERED => return Err("announced twice".into()),
            DT_CAPSULE_TARGET if target.is_none() => {
                target = Some(u32::try_from(value).map_err(|_| "a symbol index past 32 bits")?)
            }
            DT_CAPSULE_DEFINED_BY => {
                let target = target.take().ok_or("a definition without its symbol")?;
                let by = u32::try_from(value).map_err(|_| "a definition past 32 bits")?;
                entries.push(Entry {
                    target,
                    object: (by >> SYMBOL_BITS) as usize,
                    symbol: by & ((1 << SYMBOL_BITS) - 1),
                });
            }
            DT_CAPSULE_TARGET => return Err("a symbol without its definition".into()),
            _ => {}
        }
    }
    if target.is_some() {
        return Err("a symbol without its definition".into());
    }
    match announced {
        None if entries.is_empty() => Ok(None),
        Some(n) if n == entries.len() as u64 => Ok(Some(entries)),
        _ => Err(format!(
            "{} remembered symbols where {announced:?} were announced",
            entries.len()
        )),
    }
}

/// The (tag, value) pairs of the dynamic section of the object `map` describes, up to
/// DT_NULL.
///
/// # Safety
/// `map` is a live link map whose object's dynamic section ends with DT_NULL (ld.so read
/// it to load the object).
pub(crate) unsafe fn dynamic_of(map: *const LinkMap) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    // SAFETY: l_ld points to the mapped dynamic section (contract): ElfN_Dyn, two words
    // each, ended by DT_NULL.
    unsafe {
        let mut entry = (*map).l_ld as *const usize;
        while *entry as u64 != DT_NULL {
            out.push((*entry as u64, *entry.add(1) as u64));
            entry = entry.add(2);
        }
    }
    out
}

/// The DT_SONAME of a forwarder's dynamic section `dynamic`, read through its DT_STRTAB,
/// which ld.so relocated in place (a forwarder's dynamic section is writable).
///
/// # Safety
/// `dynamic` is [`dynamic_of`] a live forwarder.
pub(crate) unsafe fn soname_of<'a>(dynamic: &[(u64, u64)]) -> Option<&'a std::ffi::CStr> {
    let value = |tag| dynamic.iter().find(|(t, _)| *t == tag).map(|(_, v)| *v);
    let at = usize::try_from(value(DT_STRTAB)?.checked_add(value(DT_SONAME)?)?).ok()?;
    // SAFETY: a string of the forwarder's string table (contract), NUL-terminated.
    Some(unsafe { std::ffi::CStr::from_ptr(at as *const std::ffi::c_char) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(target: u32, object: usize, symbol: u32) -> Interposition {
        Interposition {
            target,
            object,
            symbol,
            address: 0x1000,
            ifunc: false,
        }
    }

    #[test]
    fn what_is_encoded_decodes_among_other_tags() {
        let list = [found(7, 0, 12), found(3000, 255, (1 << 24) - 1)];
        let mut dynamic = vec![(DT_SONAME, 1), (DT_STRTAB, 0x400)];
        dynamic.extend(encode(&list).expect("encodable"));
        dynamic.push((DT_STRTAB, 0x400));
        let entries = decode(dynamic).expect("well formed").expect("remembered");
        let back: Vec<_> = entries
            .iter()
            .map(|e| (e.target, e.object, e.symbol))
            .collect();
        assert_eq!(back, [(7, 0, 12), (3000, 255, (1 << 24) - 1)]);
        assert_eq!(
            decode(encode(&[]).expect("encodable")),
            Ok(Some(Vec::new()))
        );
        assert_eq!(decode([(DT_SONAME, 1)]), Ok(None), "nothing remembered");
    }

    #[test]
    fn what_cannot_be_encoded_is_not_remembered() {
        assert_eq!(encode(&[found(1, 256, 1)]), None, "a place past 8 bits");
        assert_eq!(
            encode(&[found(1, 0, 1 << 24)]),
            None,
            "an index past 24 bits"
        );
    }

    #[test]
    fn damaged_tags_are_refused() {
        let pair = [(DT_CAPSULE_TARGET, 1), (DT_CAPSULE_DEFINED_BY, 2)];
        let announce = |n| (DT_CAPSULE_REMEMBERED, n);
        let cases: [Vec<(u64, u64)>; 5] = [
            vec![announce(2), pair[0], pair[1]],
            vec![announce(1), pair[1], pair[0]],
            vec![announce(1), pair[0]],
            vec![announce(1), announce(1), pair[0], pair[1]],
            vec![announce(1), (DT_CAPSULE_TARGET, 1 << 40), pair[1]],
        ];
        for case in cases {
            assert!(decode(case.clone()).is_err(), "{case:x?}");
        }
    }
}
