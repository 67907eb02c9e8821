//! The prefix's `etc/ld.so.cache` reader, on arbitrary bytes: an error, never a panic.
#![no_main]

use capsule::machine::Machine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cache) = capsule::prefix::cache::parse(data) {
        // Lookups walk every entry: they must cope with whatever names the file held, for
        // every machine's flags.
        for machine in Machine::ALL {
            for entry in cache.entries().iter().take(64) {
                let _ = cache.lookup(&entry.name, machine).count();
            }
            let _ = cache.lookup("libc.so.6", machine).count();
        }
    }
});
