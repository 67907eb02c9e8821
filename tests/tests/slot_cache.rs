//! A shim's slot table, remembered in the cache directory: written by the first run,
//! used by the next, and looked up again (then rewritten) when the file is damaged, made
//! for other files, or points outside the library's code.

use std::path::{Path, PathBuf};
use std::process::Output;

use capsule_tests::{
    assert_succeeded, build_program, generate_and_build_shim, install_shim, run_ok, Tree,
};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <zlib.h>
int main(void) {
    printf("version=%s crc=%lu\n", zlibVersion(), crc32(0, (const unsigned char *)"capsule", 7));
    return 0;
}
"#;

fn run(program: &Path, cache: &Path) -> Output {
    let out = capsule_tests::program(program)
        .env("CAPSULE_CACHE_DIR", cache)
        .env("CAPSULE_DEBUG", "libs")
        .env_remove("CAPSULE_PREFIX")
        .output()
        .expect("run the program");
    assert_succeeded(&out, "the shim-linked program");
    out
}

/// The one slot-table file in `cache`.
fn slot_file(cache: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(cache)
        .expect("read the cache directory")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("slots-libz.so.1-") && name.ends_with(".bin")
        })
        .collect();
    assert_eq!(
        files.len(),
        1,
        "slot tables in {}: {files:?}",
        cache.display()
    );
    files.into_iter().next().unwrap()
}

#[test]
fn the_slot_table_is_remembered_and_checked() {
    let work = Tree::new();
    let shim = generate_and_build_shim(
        "libz.so.1",
        Path::new("/"),
        &work.path("shims"),
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target"),
    );
    let lib_dir = work.path("lib");
    install_shim(&shim, "libz.so.1", &lib_dir);
    let (shimmed, direct) = (work.path("bin/shimmed"), work.path("bin/direct"));
    let (l_arg, rpath) = (
        format!("-L{}", lib_dir.display()),
        format!("-Wl,-rpath,{}", lib_dir.display()),
    );
    build_program(PROGRAM, &shimmed, &[&l_arg, &rpath, "-lz"]);
    // By soname: Debian's foreign-architecture zlib1g installs no `libz.so` link name.
    build_program(PROGRAM, &direct, &["-l:libz.so.1"]);
    let expected = run_ok(
        &mut capsule_tests::program(&direct),
        "the directly linked program",
    )
    .stdout;
    let cache = work.path("cache");
    let stdout = |out: &Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let first = run(&shimmed, &cache);
    assert_eq!(first.stdout, expected, "{}", stderr(&first));
    let file = slot_file(&cache);
    let written = std::fs::read(&file).unwrap();
    // Header (magic, key, count) and one 8-byte offset per function of the shim.
    assert_eq!(&written[..8], b"CPSLOTS1");
    let count = u64::from_le_bytes(written[16..24].try_into().unwrap());
    assert!(count > 50, "libz exports dozens of functions: {count}");
    assert_eq!(written.len() as u64, 24 + 8 * count);

    let second = run(&shimmed, &cache);
    assert_eq!(second.stdout, expected);
    assert!(!stderr(&second).contains("not used"), "{}", stderr(&second));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        written,
        "a sound file is not rewritten"
    );

    // Each damage is noticed, named, survived (the slots are looked up) and repaired.
    let first_entry = written[24..]
        .chunks_exact(8)
        .position(|c| c != [0xff; 8])
        .expect("some function is libz's own");
    let mut outside_code = written.clone();
    // 1 TiB: past any library. (Offset 0, the ELF header, is code where the first
    // segment is R+X from the file's start, as in aarch64's libz.)
    outside_code[24 + 8 * first_entry..32 + 8 * first_entry]
        .copy_from_slice(&(1u64 << 40).to_le_bytes());
    let mut other_key = written.clone();
    other_key[8] ^= 1;
    let damages: [(&str, Vec<u8>, &str); 4] = [
        (
            "an offset outside the code",
            outside_code,
            "is not in the library's code",
        ),
        ("another key", other_key, "made for key"),
        (
            "a truncated header",
            written[..20].to_vec(),
            "truncated header",
        ),
        (
            "a lost entry",
            written[..written.len() - 8].to_vec(),
            "bytes, not the",
        ),
    ];
    for (what, bytes, reason) in damages {
        std::fs::write(&file, &bytes).unwrap();
        let out = run(&shimmed, &cache);
        assert_eq!(stdout(&out), String::from_utf8_lossy(&expected), "{what}");
        assert!(
            stderr(&out).contains(reason) && stderr(&out).contains("not used"),
            "{what}: no '{reason}' in:\n{}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            written,
            "{what}: not repaired"
        );
    }
}
