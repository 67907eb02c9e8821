//! A forwarder's remembered activation (tags of its dynamic section, see
//! `capsule::forwarder::remembered`), on arbitrary (tag, value) pairs: entries or an
//! error, never a panic. Tags are drawn mostly from the remembered ones, so that inputs
//! reach every branch.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs = data.chunks_exact(9).map(|c| {
        let tag = match c[0] % 4 {
            0 => 0x6c61_7001,
            1 => 0x6c61_7002,
            2 => 0x6c61_7003,
            _ => u64::from(c[0]),
        };
        (tag, u64::from_le_bytes(c[1..9].try_into().unwrap()))
    });
    if let Ok(Some(entries)) = capsule::forwarder::remembered::decode(pairs) {
        for entry in entries {
            assert!(entry.object <= 255 && entry.symbol < 1 << 24);
        }
    }
});
