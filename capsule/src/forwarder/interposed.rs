//! Which symbols of a shared library's program copy the program's global scope takes
//! from an object before the copy (the executable's copy-relocated data, its own `malloc`,
//! an `LD_PRELOAD`): the forwarder makes those absolute, with that object's address.

use crate::elf::{GnuTable, Object, SymbolKind};
use crate::error::Result;
use crate::sharing::Scope;

/// A symbol of the program's copy that an earlier object of the program's global scope
/// defines, as ld.so's lookup there finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interposition {
    /// The copy's symbol index (the forwarder's too).
    pub target: u32,
    /// The earlier object's place in the scope, and its symbol's index there: what a
    /// remembered activation keeps (see `forwarder::remembered`).
    pub object: usize,
    pub symbol: u32,
    /// The address the forwarder's symbol takes: the definition's, or for an IFUNC the
    /// implementation its resolver picks.
    pub address: usize,
    /// Whether the definition is an IFUNC (the forwarder's symbol becomes a function).
    pub ifunc: bool,
}

/// The symbols of the program's copy that an earlier object of the program's global scope
/// defines, as ld.so's lookup there would find them.
///
/// Per earlier object, whichever walk costs less ([`walk_theirs`]): its hashes (a GNU hash
/// table keeps them: no name is read) tested against the copy's Bloom filter, or the
/// copy's against the object's; a filter rejects most names in a few instructions. Only a
/// hash both tables hold is compared by name.
pub(super) fn interposed(program: &Object<'_>, scope: &Scope<'_>) -> Result<Vec<Interposition>> {
    let own_table = program.gnu_table();
    let own_len = program.symbol_count() as usize;
    let own_rate = std::cell::OnceCell::new();
    // The copy's list, made only for a walk of it (an object much bigger than the copy,
    // or one of DT_HASH alone).
    let own = std::cell::OnceCell::new();
    // A copy with a GNU table answers from its Bloom filter (tested inline) and chains;
    // for one of DT_HASH alone, a bitmap of its names' hashes stands in.
    let filter = own_table.is_none().then(|| {
        let own = own.get_or_init(|| hashed_or_named(program));
        HashBitmap::of(own.iter().map(|&(_, hash)| hash))
    });
    let own_may_define =
        |hash: u32| program.may_define(hash) && filter.as_ref().is_none_or(|b| b.may_contain(hash));
    let mut found: Vec<Interposition> = Vec::new();
    let known = |found: &[Interposition], target: u32| found.iter().any(|f| f.target == target);
    let soname_is =
        |object: &Object<'_>, soname: &str| object.soname().ok().flatten() == Some(soname);
    let copy_is_libc = soname_is(program, "libc.so.6");
    for i in 0..scope.len() {
        let Some(object) = scope.object(i) else {
            continue;
        };
        // libm defines some of libc's functions again (frexp, ldexp, copysign...: the same
        // sources, built into both): where libm comes before libc, either is the function
        // the program calls. Rewriting them would cost libc's forwarder a copy-on-write
        // page of its symbol table each (75 us for 24).
        if copy_is_libc && soname_is(object, "libm.so.6") {
            continue;
        }
        let theirs = object.gnu_table().filter(|theirs| {
            theirs.len() == 0 || walk_theirs(theirs, own_table.as_ref(), &own_rate, own_len)
        });
        let Some(theirs) = theirs else {
            // The copy's names looked up in the object, as its own lookup finds them.
            for &(target, hash) in own.get_or_init(|| hashed_or_named(program)) {
                if !object.may_define(hash) || known(&found, target) {
                    continue;
                }
                let name = program.symbol_name_bytes(target)?;
                let mut winner = None;
                for index in object.symbols_named(name)? {
                    if let Some(definition) = object.symbol_at(index)? {
                        winner = winner.or(interposes(program, target, i, &definition)?);
                    }
                }
                found.extend(winner);
            }
            continue;
        };
        for (index, hash) in theirs.hashes() {
            if !own_may_define(hash) {
                continue;
            }
            let targets = program.symbols_named(object.symbol_name_bytes(index)?)?;
            if targets.is_empty() {
                continue;
            }
            let Some(definition) = object.symbol_at(index)? else {
                continue;
            };
            for target in targets {
                if known(&found, target) {
                    continue;
                }
                if let Some(value) = interposes(program, target, i, &definition)? {
                    found.push(value);
                }
            }
        }
    }
    Ok(found)
}

/// Whether walking the object's hashes against the copy's filter costs less than walking
/// the copy's against the object's: per name, a step of the walk, then for each the other
/// side's Bloom filter lets through, a look into its buckets and chains (about eight steps).
/// libc's filter lets a sixth of other names through, a GL shim's a fiftieth: libc's
/// forwarder walks its own names against the shim, whose are more.
/// `own_rate` keeps the copy's pass rate from one object to the next.
fn walk_theirs(
    theirs: &GnuTable<'_>,
    ours: Option<&GnuTable<'_>>,
    own_rate: &std::cell::OnceCell<f64>,
    own_len: usize,
) -> bool {
    const CHAINS: f64 = 8.0;
    let Some(ours) = ours else {
        // The copy's names are hashed from their strings: walk its list only if short.
        return theirs.len() < own_len.saturating_mul(3);
    };
    let own_rate = *own_rate.get_or_init(|| ours.pass_rate());
    let theirs_walk = theirs.len() as f64 * (1.0 + own_rate * CHAINS);
    let ours_walk = ours.len() as f64 * (1.0 + theirs.pass_rate() * CHAINS);
    theirs_walk <= ours_walk
}

/// `object`'s hashed symbols (index, GNU hash without its lowest bit); for a table of
/// DT_HASH alone, which keeps no GNU hashes, its symbols with hashes made from their names.
fn hashed_or_named(object: &Object<'_>) -> Vec<(u32, u32)> {
    if let Some(table) = object.gnu_table() {
        return table.hashes().collect();
    }
    (1..object.symbol_count())
        .filter_map(|index| {
            let name = object.symbol_name_bytes(index).ok()?;
            Some((index, crate::elf::gnu_hash(name) & !1))
        })
        .collect()
}

/// A set of hashes as one bit each of 2^16, chosen by bits 1 to 16 of the hash (bit 0 is
/// not kept by every table): a test is a shift, a mask and a load. With ~3,000 names,
/// about one hash in twenty of other names passes.
struct HashBitmap {
    words: Box<[u64; HashBitmap::WORDS]>,
}

impl HashBitmap {
    const BITS: u32 = 16;
    const WORDS: usize = (1 << Self::BITS) / 64;

    fn of(hashes: impl Iterator<Item = u32>) -> HashBitmap {
        let mut words = Box::new([0u64; Self::WORDS]);
        for hash in hashes {
            let (word, bit) = Self::place(hash);
            words[word] |= bit;
        }
        HashBitmap { words }
    }

    /// The word (below WORDS, so that no index is checked) and the bit for `hash`.
    #[inline]
    fn place(hash: u32) -> (usize, u64) {
        let bit = (hash >> 1) as usize;
        ((bit / 64) % Self::WORDS, 1 << (bit % 64))
    }

    #[inline]
    fn may_contain(&self, hash: u32) -> bool {
        let (word, bit) = Self::place(hash);
        self.words[word] & bit != 0
    }
}

/// Symbols the linker defines in every shared object for the object's own layout (the end
/// of its data, the start of its bss): no object binds to another's, so the copy keeps its
/// own. Each earlier definition would otherwise be one more write into the forwarder's
/// symbol table (a copy-on-write page) in every forwarder.
const LAYOUT_MARKERS: [&str; 3] = ["_end", "_edata", "__bss_start"];

/// Whether `definition` (of the earlier object at `object` in the scope) wins over the
/// copy's symbol `target` of the same name, and with which address.
fn interposes(
    program: &Object<'_>,
    target: u32,
    object: usize,
    definition: &crate::elf::Symbol<'_>,
) -> Result<Option<Interposition>> {
    if definition.absolute
        || definition.kind == SymbolKind::Tls
        || LAYOUT_MARKERS.contains(&definition.name)
    {
        return Ok(None);
    }
    let Some(own) = program.symbol_at(target)? else {
        return Ok(None);
    };
    // An unversioned definition takes every version of the name; a versioned one only its
    // own. Thread-local symbols are left out of the forwarder.
    if definition.version.is_some() && definition.version != own.version
        || own.kind == SymbolKind::Tls
    {
        return Ok(None);
    }
    Ok(Some(as_defined(target, object, definition)))
}

/// The interposition of `definition` (of the earlier object at `object` in the scope) on
/// the copy's symbol `target`, its address resolved.
pub(super) fn as_defined(
    target: u32,
    object: usize,
    definition: &crate::elf::Symbol<'_>,
) -> Interposition {
    let ifunc = definition.kind == SymbolKind::Ifunc;
    let address = if ifunc {
        resolve_ifunc(definition.address)
    } else {
        definition.address
    };
    Interposition {
        target,
        object,
        symbol: definition.index,
        address,
        ifunc,
    }
}

/// An IFUNC's implementation, asked of its resolver as ld.so asks it.
fn resolve_ifunc(resolver: usize) -> usize {
    // SAFETY: `resolver` is the address of an STT_GNU_IFUNC symbol of a loaded, relocated
    // object (the program's global scope).
    unsafe { crate::arch::native::resolve_ifunc(resolver) }
}

#[cfg(test)]
mod tests {
    use super::HashBitmap;

    #[test]
    fn a_bitmap_holds_its_hashes_whatever_their_lowest_bit() {
        let hashes = [0x1234_5678 & !1, 0xdead_beef & !1, 2];
        let bitmap = HashBitmap::of(hashes.into_iter());
        for hash in hashes {
            assert!(
                bitmap.may_contain(hash) && bitmap.may_contain(hash | 1),
                "{hash:#x}"
            );
        }
        // Bits 1 to 16 pick the bit: these share none with the hashes above.
        assert!(!bitmap.may_contain(0x0000_0100));
        assert!(!bitmap.may_contain(0xffff_0000));
    }
}
