//! A shim's remembered slot table (`slots-*.bin` in the cache directory), on arbitrary
//! bytes: offsets or an error, never a panic. The key and count come from the input too,
//! so that inputs with a right header reach the entries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let word = |at: usize| data.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    let key = word(8).unwrap_or(0);
    let functions = word(16).map_or(0, |n| (n % (1 << 20)) as usize);
    if let Ok(offsets) = capsule::shim::slot_cache::parse(data, key, functions) {
        assert_eq!(offsets.len(), functions);
    }
});
