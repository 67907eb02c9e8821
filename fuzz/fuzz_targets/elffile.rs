//! The ELF file reader (`capsule::elffile`), on arbitrary bytes: for each machine the
//! resolver's facts (the class check included), the symbols capsule-gen reads, and what
//! the skew check and the forwarder's stubs read of a host's library (imports with their
//! versions' files, exports with versions and hidden flags, lookups by name and version);
//! a result or a reason, never a panic or an arithmetic overflow (run with `-a`, debug
//! assertions). The seeds hold 64-bit and 32-bit libraries.
#![no_main]

use capsule::elffile::{read_bytes, Reader};
use capsule::machine::Machine;
use libfuzzer_sys::fuzz_target;

/// Lookups per input: enough to reach every kind of entry, few enough to keep the
/// executions fast on a large seed.
const LOOKUPS: usize = 64;

fuzz_target!(|data: &[u8]| {
    for machine in Machine::ALL {
        if let Ok(facts) = read_bytes(data, machine) {
            // Every string the reader returned must be printable without trouble.
            let _ = format!("{facts:?}");
        }
    }
    let Ok(reader) = Reader::from_bytes(data) else {
        return;
    };
    let _ = reader.machine();
    let Ok(symbols) = reader.symbols() else {
        return;
    };
    let _ = format!("{symbols:?}");
    if let Ok(imports) = symbols.imports() {
        let _ = format!("{imports:?}");
    }
    let Ok(exports) = symbols.exports() else {
        return;
    };
    for export in exports.iter().take(LOOKUPS) {
        let name = export.symbol.name.as_str();
        let _ = (export.is_function(), export.is_absolute());
        for version in [None, export.version, Some("")] {
            if let Some(found) = exports.lookup(name, version) {
                assert_eq!(found.symbol.name, name);
            }
        }
    }
    for symbol in symbols.symbols.iter().take(LOOKUPS) {
        let _ = exports.lookup(&symbol.name, None);
    }
});
