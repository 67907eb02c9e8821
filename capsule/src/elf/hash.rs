//! Symbol hash tables (DT_GNU_HASH, DT_HASH): how many symbols the table holds, and which
//! indices may carry a given name.

use super::layout::{word_at, WORD};
use super::memory::Memory;
use crate::bytes::u32_at;

/// The hash table an object provides; GNU preferred, as glibc does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum HashTable {
    Gnu(usize),
    Sysv(usize),
}

/// The System V ELF hash.
pub(crate) fn sysv_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0;
    for &c in name {
        h = (h << 4).wrapping_add(c as u32);
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
        }
        h &= !g;
    }
    h
}

/// The GNU hash (Bernstein's djb2 with `h * 33 + c`).
pub(crate) fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, &c| h.wrapping_mul(33).wrapping_add(c as u32))
}

/// A DT_GNU_HASH table as slices, for many quick questions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GnuTable<'a> {
    /// The bloom filter's words (of the class's size: `ElfN_Addr`).
    words: &'a [u8],
    shift: u32,
    buckets: &'a [u8],
    /// The hash (lowest bit: end of chain) of each symbol from `symoffset` on.
    chains: &'a [u8],
    symoffset: u32,
}

impl GnuTable<'_> {
    /// The index of the first hashed symbol (those before it are not in the table).
    pub fn symoffset(&self) -> u32 {
        self.symoffset
    }

    /// Whether a symbol of GNU hash `hash` may be defined (false: certainly not).
    pub fn may_contain(&self, hash: u32) -> bool {
        let count = self.words.len() / WORD;
        if count == 0 {
            return true;
        }
        let bits = (WORD * 8) as u32;
        let at = bloom_word(hash / bits, count) * WORD;
        let word = word_at(self.words, at).unwrap_or_default();
        let mask = 1u64 << (hash % bits) | 1u64 << ((hash >> self.shift) % bits);
        word & mask == mask
    }

    /// Whether a symbol of GNU hash `even` or `even | 1` may be defined: both share their
    /// Bloom word and, with a shift of 1 or more, their second bit; their first bits are
    /// neighbours. One test instead of two for most hashes, which the filter rejects.
    #[inline]
    fn may_contain_either(&self, even: u32) -> bool {
        let count = self.words.len() / WORD;
        if count == 0 || self.shift == 0 {
            return true;
        }
        let bits = (WORD * 8) as u32;
        let word = word_at(self.words, bloom_word(even / bits, count) * WORD).unwrap_or_default();
        (word & (0b11 << (even % bits))) != 0
            && (word & (1u64 << ((even >> self.shift) % bits))) != 0
    }

    /// How many symbols the table hashes.
    pub fn len(&self) -> usize {
        self.chains.len() / 4
    }

    /// The share of other names that [`GnuTable::has_hash`]'s Bloom test lets through to
    /// the buckets and chains, from how full the filter is: the test asks for one of two
    /// neighbouring bits, then a third.
    pub fn pass_rate(&self) -> f64 {
        if self.words.is_empty() || self.shift == 0 {
            return 1.0;
        }
        // Eight bytes a count (libc's filter is 2 KB; a count per byte cost 16 k
        // instructions without a popcount instruction).
        let chunks = self.words.chunks_exact(8);
        let rest: u32 = chunks
            .remainder()
            .iter()
            .map(|byte| byte.count_ones())
            .sum();
        let set: u32 = rest
            + chunks
                .map(|c| {
                    u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        .count_ones()
                })
                .sum::<u32>();
        let full = f64::from(set) / (self.words.len() * 8) as f64;
        (1.0 - (1.0 - full) * (1.0 - full)) * full
    }

    /// Each hashed symbol's index with its GNU hash, the lowest bit cleared (the table
    /// keeps only the other 31).
    pub fn hashes(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        // Indices symoffset..: `chains` holds at most count - symoffset entries (see
        // `HashTable::gnu_table`), so none overflows.
        self.chains
            .chunks_exact(4)
            .zip(self.symoffset..)
            .map(|(c, index)| (index, u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & !1))
    }

    /// The indices of the symbols whose GNU hash is `hash` (the caller compares names);
    /// `None` if a bucket points outside the table.
    pub fn candidates(&self, hash: u32) -> Option<Vec<u32>> {
        let mut found = Vec::new();
        if !self.may_contain(hash) {
            return Some(found);
        }
        let nbuckets = self.buckets.len() / 4;
        if nbuckets == 0 {
            return Some(found);
        }
        let start = u32_at(self.buckets, hash as usize % nbuckets * 4)?;
        if start == 0 {
            return Some(found);
        }
        let mut i = start.checked_sub(self.symoffset)? as usize;
        loop {
            let v = u32_at(self.chains, i.checked_mul(4)?)?;
            if v | 1 == hash | 1 {
                found.push(self.symoffset.checked_add(u32::try_from(i).ok()?)?);
            }
            if v & 1 != 0 {
                return Some(found);
            }
            i += 1;
        }
    }

    /// Whether a symbol whose GNU hash is `hash` but for its lowest bit (as other tables
    /// keep it) is in the table. Reads no names. The Bloom filter, which rejects most
    /// hashes, is tested inline (callers ask thousands of times in a row).
    #[inline]
    pub fn has_hash(&self, hash: u32) -> bool {
        self.may_contain_either(hash & !1) && self.chains_hold(hash)
    }

    /// The part of [`GnuTable::has_hash`] past the Bloom filter: the buckets and chains.
    #[inline(never)]
    fn chains_hold(&self, hash: u32) -> bool {
        let nbuckets = self.buckets.len() / 4;
        if nbuckets == 0 {
            return false;
        }
        [hash & !1, hash | 1].into_iter().any(|h| {
            if !self.may_contain(h) {
                return false;
            }
            let Some(start) = u32_at(self.buckets, h as usize % nbuckets * 4) else {
                return false;
            };
            let Some(mut i) = start.checked_sub(self.symoffset).map(|i| i as usize) else {
                return false;
            };
            while let Some(v) = i.checked_mul(4).and_then(|at| u32_at(self.chains, at)) {
                if v | 1 == h | 1 {
                    return true;
                }
                if v & 1 != 0 {
                    break;
                }
                i += 1;
            }
            false
        })
    }
}

/// The Bloom word for `index` (the hash divided by the word's bits) in a filter of `count`
/// words, chosen as ld.so chooses it: with a mask, the ELF format making `count` a power
/// of two (for any other count, still one of the filter's words).
fn bloom_word(index: u32, count: usize) -> usize {
    index as usize & (count - 1)
}

/// The fixed part of a DT_GNU_HASH table.
struct GnuHeader {
    nbuckets: u32,
    symoffset: u32,
    buckets: usize,
    chains: usize,
}

fn gnu_header(memory: &Memory<'_>, address: usize) -> Option<GnuHeader> {
    let nbuckets = memory.u32(address)?;
    let symoffset = memory.u32_at(address, 4)?;
    let bloom_size = memory.u32(address.checked_add(8)?)? as usize;
    let buckets = address
        .checked_add(16)?
        .checked_add(bloom_size.checked_mul(WORD)?)?;
    let chains = buckets.checked_add((nbuckets as usize).checked_mul(4)?)?;
    Some(GnuHeader {
        nbuckets,
        symoffset,
        buckets,
        chains,
    })
}

impl HashTable {
    /// Number of entries in the dynamic symbol table. DT_HASH states it (nchain); DT_GNU_HASH
    /// does not, so find the highest bucket start and follow its chain to its end marker.
    pub fn symbol_count(&self, memory: &Memory<'_>) -> Option<u32> {
        match *self {
            HashTable::Sysv(address) => memory.u32(address.checked_add(4)?),
            HashTable::Gnu(address) => {
                let h = gnu_header(memory, address)?;
                // One bounds check for the whole bucket array, then plain slice reads.
                let buckets = memory.bytes(h.buckets, (h.nbuckets as usize).checked_mul(4)?)?;
                let last = buckets
                    .chunks_exact(4)
                    .filter_map(|c| u32_at(c, 0))
                    .max()
                    .unwrap_or(0);
                if last < h.symoffset {
                    return Some(h.symoffset);
                }
                let first = h
                    .chains
                    .checked_add(((last - h.symoffset) as usize).checked_mul(4)?)?;
                let mut index = last;
                let mut at = first;
                loop {
                    if memory.u32(at)? & 1 != 0 {
                        return index.checked_add(1);
                    }
                    index = index.checked_add(1)?;
                    at = at.checked_add(4)?;
                }
            }
        }
    }

    /// The GNU table as slices (None for DT_HASH, or a table outside the object).
    pub fn gnu_table<'a>(&self, memory: &Memory<'a>, count: u32) -> Option<GnuTable<'a>> {
        let HashTable::Gnu(address) = *self else {
            return None;
        };
        let h = gnu_header(memory, address)?;
        let bloom_size = memory.u32(address.checked_add(8)?)? as usize;
        let shift = memory.u32(address.checked_add(12)?)? % 32;
        Some(GnuTable {
            words: memory.bytes(address.checked_add(16)?, bloom_size.checked_mul(WORD)?)?,
            shift,
            buckets: memory.bytes(h.buckets, (h.nbuckets as usize).checked_mul(4)?)?,
            chains: memory.bytes(
                h.chains,
                (count.checked_sub(h.symoffset)? as usize).checked_mul(4)?,
            )?,
            symoffset: h.symoffset,
        })
    }

    /// Where the table starts.
    pub fn address(&self) -> usize {
        match *self {
            HashTable::Gnu(a) | HashTable::Sysv(a) => a,
        }
    }

    /// The table's length in bytes, for an object of `count` symbols.
    pub fn extent(&self, memory: &Memory<'_>, count: u32) -> Option<usize> {
        match *self {
            HashTable::Sysv(address) => {
                let nbucket = memory.u32(address)? as usize;
                let nchain = memory.u32(address.checked_add(4)?)? as usize;
                8usize.checked_add(nbucket.checked_add(nchain)?.checked_mul(4)?)
            }
            HashTable::Gnu(address) => {
                let h = gnu_header(memory, address)?;
                let chains = (count.checked_sub(h.symoffset)? as usize).checked_mul(4)?;
                h.chains.checked_sub(address)?.checked_add(chains)
            }
        }
    }

    /// The symbol indices whose hash matches `name`'s; the caller compares names. `None` if
    /// the table points outside the object. `count` bounds every walk.
    pub fn candidates(&self, memory: &Memory<'_>, name: &[u8], count: u32) -> Option<Vec<u32>> {
        let mut found = Vec::new();
        match *self {
            HashTable::Sysv(address) => {
                let nbucket = memory.u32(address)?;
                let nchain = memory.u32(address.checked_add(4)?)?;
                if nbucket == 0 {
                    return Some(found);
                }
                let buckets = address.checked_add(8)?;
                let chains = buckets.checked_add((nbucket as usize).checked_mul(4)?)?;
                // The whole chain array must be there: a chain that loops is then cut
                // after as many steps as the table really has entries, not after the
                // 2^32 a forged nchain may claim.
                memory.bytes(chains, (nchain as usize).checked_mul(4)?)?;
                let bucket = sysv_hash(name) % nbucket;
                let mut index = memory.u32(buckets.checked_add(bucket as usize * 4)?)?;
                let mut steps = 0;
                while index != 0 {
                    if index >= nchain || steps > nchain {
                        return None;
                    }
                    found.push(index);
                    index = memory.u32(chains.checked_add((index as usize).checked_mul(4)?)?)?;
                    steps += 1;
                }
            }
            HashTable::Gnu(address) => {
                let h = gnu_header(memory, address)?;
                if h.nbuckets == 0 {
                    return Some(found);
                }
                let hash = gnu_hash(name);
                let mut index =
                    memory.u32(h.buckets.checked_add((hash % h.nbuckets) as usize * 4)?)?;
                if index == 0 {
                    return Some(found);
                }
                if index < h.symoffset {
                    return None;
                }
                loop {
                    if index >= count {
                        return None;
                    }
                    let chain = h
                        .chains
                        .checked_add(((index - h.symoffset) as usize).checked_mul(4)?)?;
                    let value = memory.u32(chain)?;
                    if value | 1 == hash | 1 {
                        found.push(index);
                    }
                    if value & 1 != 0 {
                        break;
                    }
                    index += 1;
                }
            }
        }
        Some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_abi_reference_values() {
        assert_eq!(gnu_hash(b""), 0x0000_1505);
        assert_eq!(gnu_hash(b"printf"), 0x156b_2bb8);
        assert_eq!(sysv_hash(b"printf"), 0x0779_05a6);
    }

    fn words(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn gnu_bucket_pointing_outside_is_an_error_not_a_panic() {
        // nbuckets 1, symoffset 1, bloom 0 words, shift 0, bucket[0] = 1000, chain[0].
        let bytes = words(&[1, 1, 0, 0, 1000, 0]);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        let table = HashTable::Gnu(0);
        assert_eq!(table.symbol_count(&memory), None);
        assert_eq!(table.candidates(&memory, b"x", 2), None);
    }

    #[test]
    fn gnu_count_follows_the_last_chain() {
        // Two buckets starting at 1 and 2; chain 2 runs on to 3 (end bit on index 3).
        let bytes = words(&[2, 1, 0, 0, 1, 2, 0x11, 0x20, 0x31]);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        assert_eq!(HashTable::Gnu(0).symbol_count(&memory), Some(4));
    }

    /// `answer` of a GNU table of one bucket, symoffset 1, a one-word Bloom filter `filter`
    /// with `shift`, and symbols of `hashes` (the last given the end bit).
    fn one_bucket_table<T>(
        filter: u64,
        shift: u32,
        hashes: &[u32],
        answer: impl FnOnce(&GnuTable<'_>) -> T,
    ) -> T {
        let mut w = vec![1, 1, 1, shift];
        w.extend((0..WORD / 4).map(|i| (filter >> (32 * i)) as u32));
        w.push(1);
        w.extend(hashes.iter().enumerate().map(
            |(i, &h)| {
                if i + 1 == hashes.len() {
                    h | 1
                } else {
                    h & !1
                }
            },
        ));
        let bytes = words(&w);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        let table = HashTable::Gnu(0)
            .gnu_table(&memory, 1 + hashes.len() as u32)
            .expect("a GNU table");
        answer(&table)
    }

    /// has_hash for `probes` of a table (shift 6) of two symbols whose hashes are `h1` and
    /// `h2`.
    fn has_hashes(filter: u64, h1: u32, h2: u32, probes: &[u32]) -> Vec<bool> {
        one_bucket_table(filter, 6, &[h1, h2], |table| {
            probes.iter().map(|&h| table.has_hash(h)).collect()
        })
    }

    #[test]
    fn the_pass_rate_grows_with_the_bits_a_filter_has_set() {
        // One symbol, one Bloom word (shift `shift`) with `bits` bits set.
        let rate = |bits: u32, shift: u32| {
            let filter = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            one_bucket_table(filter, shift, &[0], |table| {
                assert_eq!(table.len(), 1);
                table.pass_rate()
            })
        };
        let width = (WORD * 8) as u32;
        let (few, many, all) = (rate(2, 6), rate(width / 2, 6), rate(width, 6));
        assert!(0.0 < few && few < many && many < all, "{few} {many} {all}");
        assert_eq!(all, 1.0);
        assert_eq!(rate(2, 0), 1.0, "a shift of 0 filters nothing");
    }

    #[test]
    fn gnu_table_answers_from_hashes_without_the_lowest_bit() {
        let (h1, h2) = (gnu_hash(b"first"), gnu_hash(b"second"));
        let probes = [h1 & !1, h1 | 1, h2 & !1, h2 | 1, gnu_hash(b"third")];
        // A filter letting every hash through: the chain answers.
        let all = has_hashes(u64::MAX, h1, h2, &probes);
        assert_eq!(all, [true, true, true, true, false]);
        // A filter with only each symbol's two bits set still lets both through, whatever
        // their lowest bit; with h1's bits missing, not h1.
        let bits = (WORD * 8) as u32;
        let bloom = |hashes: &[u32]| {
            hashes
                .iter()
                .fold(0u64, |w, h| w | 1 << (h % bits) | 1 << ((h >> 6) % bits))
        };
        let exact = has_hashes(bloom(&[h1, h2]), h1, h2, &probes[..4]);
        assert_eq!(exact, [true; 4]);
        let without_h1 = has_hashes(bloom(&[h2]), h1, h2, &probes[..2]);
        assert_eq!(without_h1, [false; 2]);
    }

    #[test]
    fn sysv_chain_loop_is_an_error() {
        // nbucket 1, nchain 3, bucket[0] = 1, chain: [0, 2, 1] (1 -> 2 -> 1 ...).
        let bytes = words(&[1, 3, 1, 0, 2, 1]);
        let mut memory = Memory::image(&bytes);
        memory.add_file_segment(0, 0, bytes.len() as u64);
        assert_eq!(HashTable::Sysv(0).candidates(&memory, b"", 3), None);
        assert_eq!(HashTable::Sysv(0).symbol_count(&memory), Some(3));
    }
}
