//! The `ld.so.conf` reader, on arbitrary text (lossily decoded, as bytes on disk may be
//! anything) and on the glob matcher its `include` lines use.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = capsule::prefix::conf::parse(&text);
    // Split the input into a pattern and a name for the include-glob matcher.
    if let Some(split) = data.iter().position(|&b| b == 0) {
        let _ = capsule::prefix::conf::fnmatch(&data[..split], &data[split + 1..]);
    }
});
