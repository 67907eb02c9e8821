//! capsule-gen's library scanner on arbitrary bytes. capsule-gen is a binary crate, so its
//! scanner and the two modules it uses are compiled in here from their sources.
#![no_main]

#[path = "../../capsule-gen/src/error.rs"]
#[allow(dead_code)]
mod error;
#[path = "../../capsule-gen/src/manifest.rs"]
#[allow(dead_code)]
mod manifest;
#[path = "../../capsule-gen/src/scan.rs"]
#[allow(dead_code)]
mod scan;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan::scan_bytes(data, std::path::Path::new("fuzz.so"));
});
