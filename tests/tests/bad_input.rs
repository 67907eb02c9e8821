//! The bad-input catalogue (docs/errors.md) for the cases that tests/tests/resolve.rs,
//! namespaces.rs, shim_calls.rs and capsule-gen's tests do not already cover: each asserts
//! the message the user sees, and that the process is still standing afterwards.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use capsule::{Capsule, Error};
use capsule_tests::{build_lib, capsule_gen, patch_bytes, Lib, Tree};

/// The machine's library directory in a fixture tree (`usr/lib/x86_64-linux-gnu`).
fn lib_dir() -> String {
    capsule_tests::for_machine("usr/lib/x86_64-linux-gnu")
}

fn good_lib(tree: &Tree, soname: &str) -> std::path::PathBuf {
    let path = tree.path(&format!("{}/{soname}", lib_dir()));
    build_lib(
        &Lib {
            source: "int answer(void) { return 42; }\n",
            soname: Some(soname),
            args: &[],
        },
        &path,
    );
    path
}

fn load_err(library: &str, prefix: &Path) -> Error {
    match Capsule::load(library, prefix) {
        Ok(_) => panic!("loading {library} from {} succeeded", prefix.display()),
        Err(e) => e,
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

/// The only candidate is damaged: the library is reported missing, with every place looked
/// at, instead of the damaged file being handed to dlmopen.
#[test]
fn damaged_only_candidate_is_not_found() {
    for (case, damage) in [
        ("truncated", Damage::Truncate),
        ("not ELF", Damage::Text),
        ("the other ELF class", Damage::OtherClass),
        ("another machine", Damage::OtherMachine),
    ] {
        let tree = Tree::new();
        let path = good_lib(&tree, "libdamaged.so.1");
        damage.apply(&path);
        let message = load_err("libdamaged.so.1", tree.root()).to_string();
        assert_mentions(
            &message,
            &[
                "libdamaged.so.1 not found in prefix",
                &lib_dir(),
                "install it in the host tree or fix the prefix",
            ],
        );
        assert!(message.contains("searched"), "{case}: {message}");
    }
}

enum Damage {
    Truncate,
    Text,
    OtherClass,
    OtherMachine,
}

impl Damage {
    fn apply(&self, path: &Path) {
        match self {
            Damage::Truncate => {
                let bytes = std::fs::read(path).unwrap();
                std::fs::write(path, &bytes[..200]).unwrap();
            }
            Damage::Text => std::fs::write(path, "INPUT(-ldamaged)\n").unwrap(),
            // ELFCLASS32 (1) <-> ELFCLASS64 (2).
            Damage::OtherClass => patch_bytes(path, 4, &[3 - capsule_tests::machine().elf_class()]),
            // e_machine: aarch64's (183), or x86_64's (62) where the tests are aarch64's.
            Damage::OtherMachine => {
                let other: u16 = if capsule_tests::machine() == capsule_tests::Machine::Aarch64 {
                    62
                } else {
                    183
                };
                patch_bytes(path, 18, &other.to_le_bytes())
            }
        }
    }
}

/// A dynamic section that points outside the file: a clear error, no crash in the reader.
#[test]
fn malformed_dynamic_section_is_an_error_naming_the_file() {
    let tree = Tree::new();
    let path = good_lib(&tree, "libbaddyn.so.1");
    let bytes = std::fs::read(&path).unwrap();
    let object = dynamic_phdr_offset(&bytes);
    // p_offset and p_vaddr of PT_DYNAMIC far beyond the end of the file (Elf64_Phdr:
    // offsets 8 and 16, 8 bytes each; Elf32_Phdr: 4 and 8, 4 bytes each).
    let word = capsule_tests::machine().word_size();
    let far = &0x7fff_0000u64.to_le_bytes()[..word];
    patch_bytes(&path, object + word, far);
    patch_bytes(&path, object + 2 * word, far);
    // The damaged file is skipped like any unusable candidate (CAPSULE_DEBUG=libs says why).
    let message = load_err("libbaddyn.so.1", tree.root()).to_string();
    assert_mentions(
        &message,
        &["libbaddyn.so.1 not found in prefix", "libbaddyn.so.1, "],
    );
}

/// The file offset of the PT_DYNAMIC program header of a little-endian ELF of this
/// machine's class.
fn dynamic_phdr_offset(bytes: &[u8]) -> usize {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let u16_at = |at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = if capsule_tests::machine().word_size() == 8 {
        (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    } else {
        (u32_at(0x1c), u16_at(0x2a), u16_at(0x2c))
    };
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&at| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == 2)
        .expect("the fixture has a PT_DYNAMIC")
}

/// A real ld.so.cache cut short (as a full disk or an interrupted ldconfig leaves it).
#[test]
fn truncated_real_cache_is_a_config_error() {
    let tree = Tree::new();
    good_lib(&tree, "libcached.so.1");
    let cache = std::fs::read("/etc/ld.so.cache")
        .expect("this test truncates the machine's /etc/ld.so.cache: run ldconfig to make one");
    // Cuts in the header, the entries and the strings. A cut in glibc's extension area
    // (hwcaps data after the strings) goes unnoticed: this reader does not use it.
    for cut in [30, 200, cache.len() / 4, cache.len() / 2] {
        std::fs::write(tree.path("etc/ld.so.cache"), &cache[..cut]).unwrap();
        let message = load_err("libcached.so.1", tree.root()).to_string();
        // Past the header, the entries or the strings the header announces end past the cut.
        let reason = if cut < 48 {
            format!("{cut} bytes, shorter than the 48-byte header")
        } else {
            format!("the {cut} bytes of the file hold")
        };
        assert_mentions(
            &message,
            &[
                "etc/ld.so.cache: corrupt ld.so.cache: truncated: ",
                &format!("{reason}; regenerate it with `ldconfig -r PREFIX` or remove it"),
            ],
        );
    }
}

#[test]
fn prefix_that_is_a_file_or_missing_says_what_to_set() {
    let tree = Tree::new();
    let file = tree.write("plain-file", "x");
    for (prefix, reason) in [
        (file.as_path(), "not a directory"),
        (
            &tree.root().join("missing"),
            "cannot access it: No such file or directory (os error 2)",
        ),
    ] {
        assert_eq!(
            load_err("libz.so.1", prefix).to_string(),
            format!(
                "capsule: host prefix {}: {reason}; point CAPSULE_PREFIX (or CAPSULE_<SONAME>_PREFIX) at the host's root directory",
                prefix.display()
            )
        );
    }
}

#[test]
fn missing_symbol_lookup_names_symbol_library_and_namespace() {
    let tree = Tree::new();
    good_lib(&tree, "libsym.so.1");
    let capsule = Capsule::load("libsym.so.1", tree.root()).expect("load libsym.so.1");
    let message = capsule.symbol("not_there").unwrap_err().to_string();
    assert_mentions(
        &message,
        &["symbol not_there not found in libsym.so.1", "namespace"],
    );
    let message = capsule
        .symbol_versioned("not_there", "NOPE_1")
        .unwrap_err()
        .to_string();
    assert_mentions(&message, &["not_there@NOPE_1 not found"]);
    let message = capsule.symbol("nul\0inside").unwrap_err().to_string();
    assert_mentions(&message, &["not found"]);
}

fn gen(args: &[&str]) -> Output {
    Command::new(capsule_gen())
        .args(args)
        .output()
        .expect("run capsule-gen")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn capsule_gen_on_stripped_and_empty_symbol_tables() {
    let tree = Tree::new();
    let out = tree.path("out/.keep").parent().unwrap().to_path_buf();
    let stripped = good_lib(&tree, "libstripped.so.1");
    capsule_tests::run_ok(
        Command::new(capsule_tests::binutil("strip"))
            .arg("--strip-all")
            .arg(&stripped),
        "strip the fixture",
    );
    let done = gen(&["--out", out.to_str().unwrap(), stripped.to_str().unwrap()]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    let manifest = std::fs::read_to_string(out.join("libstripped.so.1/capsule-shim.toml"))
        .expect("the stripped library's shim has a manifest");
    assert!(manifest.contains("answer"), "{manifest}");

    let empty = tree.path(&format!("{}/libempty.so.1", lib_dir()));
    let map = tree.write("empty.map", "{ local: *; };\n");
    build_lib(
        &Lib {
            source: "int hidden(void) { return 1; }\n",
            soname: Some("libempty.so.1"),
            args: &[&format!("-Wl,--version-script={}", map.display())],
        },
        &empty,
    );
    // Nothing exported: the shim is still made (it loads the library and forwards nothing).
    let done = gen(&["--out", out.to_str().unwrap(), empty.to_str().unwrap()]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_mentions(&text(&done.stderr), &["libempty.so.1", "(0 symbols)"]);
}

#[test]
fn capsule_gen_on_a_huge_symbol_table() {
    const COUNT: usize = 100_000;
    let tree = Tree::new();
    let out = tree.path("out/.keep").parent().unwrap().to_path_buf();
    let mut source = String::with_capacity(COUNT * 40);
    for i in 0..COUNT {
        source.push_str(&format!("int f{i}(void) {{ return {i}; }}\n"));
    }
    let lib = tree.path(&format!("{}/libhuge.so.1", lib_dir()));
    build_lib(
        &Lib {
            source: &source,
            soname: Some("libhuge.so.1"),
            args: &["-O0"],
        },
        &lib,
    );
    let started = Instant::now();
    let done = gen(&["--out", out.to_str().unwrap(), lib.to_str().unwrap()]);
    let took = started.elapsed();
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert!(
        took < Duration::from_secs(30),
        "capsule-gen took {took:?} for {COUNT} symbols"
    );
    let manifest = std::fs::read_to_string(out.join("libhuge.so.1/capsule-shim.toml"))
        .expect("the huge library's shim has a manifest");
    assert!(manifest.contains("f99999"), "the last symbol is missing");
}
