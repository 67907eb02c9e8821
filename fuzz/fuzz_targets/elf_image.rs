//! The dynamic-section views (`capsule::elf::Object`) over an ELF file image: construction,
//! then every query the runtime makes of a loaded object. Errors are fine; panics and
//! out-of-bounds reads are not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(object) = capsule::elf::Object::from_file_image("fuzz.so", data) else {
        return;
    };
    let _ = object.soname();
    let _ = object.relro();
    let _ = object.tls();
    let _ = object.has_text_relocations();
    for symbol in object.symbols().take(4096) {
        let Ok(symbol) = symbol else { continue };
        std::hint::black_box(&symbol);
    }
    for index in 0..object.symbol_count().min(4096) {
        let _ = object.symbol_name(index);
        let _ = object.symbol_version(index);
    }
    for name in ["malloc", "free", "dlopen", "foo"] {
        let _ = object.lookup(name, None);
        let _ = object.lookup(name, Some("GLIBC_2.2.5"));
        let _ = object.slots(name, None);
    }
    let _ = object.relative_relocations();
});
