//! The search's ELF file reader (`capsule::prefix::elffile`), on arbitrary bytes: the facts
//! or a reason, never a panic or an arithmetic overflow (run with `-a`, debug assertions).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(facts) = capsule::prefix::elffile::read_bytes(data) {
        // Every string the reader returned must be printable without trouble.
        let _ = format!("{facts:?}");
    }
});
