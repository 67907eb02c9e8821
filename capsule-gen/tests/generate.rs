//! capsule-gen end to end: generate shim crates, build them, and compare their exports with
//! the real libraries'; determinism, regeneration, --check, and errors on bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capsule_tests::{build_lib, build_shim, files_under, nm_exports, Lib, Tree};

const GEN: &str = env!("CARGO_BIN_EXE_capsule-gen");

/// Shared by every test (and every run) so the runtime crate is compiled once.
fn shim_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target")
}

fn capsule_gen(args: &[&str]) -> Output {
    Command::new(GEN)
        .args(args)
        .output()
        .expect("run capsule-gen")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "capsule-gen failed: {}\n{}",
        out.status,
        stderr(out)
    );
}

/// A library with every kind of export a shim must reproduce: one name in two versions
/// (`foo@FOO_1`, `foo@@FOO_2`), a name only in an old non-default version, default-version
/// functions, variables (writable and read-only) and a thread-local variable.
const VERSIONED_SOURCE: &str = r#"
int foo_v1(int x) { return x + 1; }
int foo_v2(int x) { return x + 2; }
int old_v1(void) { return 1; }
__asm__(".symver foo_v1, foo@FOO_1");
__asm__(".symver foo_v2, foo@@FOO_2");
__asm__(".symver old_v1, old@FOO_1");
int bar(int x) { return x * 2; }
int baz(void) { return 42; }
int counter = 7;
const char greeting[24] = "hello from the host";
__thread int tls_value = 3;
"#;

const VERSIONED_SCRIPT: &str = "FOO_1 { global: bar; counter; foo; old; local: *; };\n\
                                FOO_2 { global: baz; greeting; tls_value; foo; } FOO_1;\n";

/// Build the versioned fixture as `soname` into `tree`'s usr/lib, with `extra` C appended.
fn versioned_fixture(tree: &Tree, soname: &str, extra: &str, script: &str) -> PathBuf {
    let map = tree.write("src/foo.map", script);
    let out = tree.path(&format!("usr/lib/x86_64-linux-gnu/{soname}"));
    let source = format!("{VERSIONED_SOURCE}{extra}");
    let map_arg = format!("-Wl,--version-script={}", map.display());
    build_lib(
        &Lib {
            source: &source,
            soname: Some(soname),
            args: &[&map_arg],
        },
        &out,
    );
    out
}

fn soname_of(lib: &Path) -> Option<String> {
    let bytes = std::fs::read(lib).expect("read built library");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse built library");
    elf.soname.map(str::to_string)
}

#[test]
fn fixture_shim_exports_what_the_library_exports() {
    let tree = Tree::new();
    let real = versioned_fixture(&tree, "libgenfix.so.1", "", VERSIONED_SCRIPT);
    let out_dir = tree.path("shims");
    let out = capsule_gen(&[
        "--prefix",
        tree.root().to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "libgenfix.so.1",
    ]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("tls_value@@FOO_2 left out of the shim") && err.contains("thread-local"),
        "no warning about the TLS symbol:\n{err}"
    );
    assert!(
        err.contains("capsule-gen: libgenfix.so.1 -> "),
        "no progress line:\n{err}"
    );

    let started = std::time::Instant::now();
    let shim = build_shim(&out_dir.join("libgenfix.so.1"), &shim_target_dir());
    eprintln!("built the fixture shim in {:?}", started.elapsed());
    assert_eq!(shim.file_name().unwrap(), "libgenfix.so");
    assert_eq!(soname_of(&shim).as_deref(), Some("libgenfix.so.1"));

    let mut expected = nm_exports(&real);
    assert!(
        expected.remove("data tls_value@@FOO_2"),
        "fixture lacks its TLS symbol: {expected:?}"
    );
    for line in [
        "code foo@FOO_1",
        "code foo@@FOO_2",
        "code old@FOO_1",
        "code bar@@FOO_1",
        "data counter@@FOO_1",
        "data greeting@@FOO_2",
        "abs FOO_1",
        "abs FOO_2",
    ] {
        assert!(
            expected.contains(line),
            "fixture lacks {line}: {expected:?}"
        );
    }
    assert_eq!(nm_exports(&shim), expected);
    assert_eq!(object_sizes(&shim), object_sizes(&real));
}

/// Name -> st_size of every defined dynamic object other than TLS.
fn object_sizes(lib: &Path) -> BTreeMap<String, u64> {
    let bytes = std::fs::read(lib).expect("read library");
    let elf = goblin::elf::Elf::parse(&bytes).expect("parse library");
    elf.dynsyms
        .iter()
        .filter(|s| s.st_type() == goblin::elf::sym::STT_OBJECT && s.st_shndx != 0 && s.st_size > 0)
        .map(|s| {
            (
                elf.dynstrtab.get_at(s.st_name).unwrap().to_string(),
                s.st_size,
            )
        })
        .collect()
}

#[test]
fn system_zlib_and_libxml2_shims_export_the_same_symbols() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capsule_gen(&[
        "--out",
        tmp.path().to_str().unwrap(),
        "libz.so.1",
        "libxml2.so.2",
    ]);
    assert_ok(&out);
    let err = stderr(&out);
    for soname in ["libz.so.1", "libxml2.so.2"] {
        assert!(
            err.contains(&format!("capsule-gen: {soname} -> ")),
            "no progress line for {soname}:\n{err}"
        );
        let manifest =
            std::fs::read_to_string(tmp.path().join(soname).join("capsule-shim.toml")).unwrap();
        let source = manifest
            .lines()
            .find_map(|l| l.strip_prefix("source = \"")?.strip_suffix('"'))
            .expect("manifest names its source");
        let started = std::time::Instant::now();
        let shim = build_shim(&tmp.path().join(soname), &shim_target_dir());
        eprintln!("built the {soname} shim in {:?}", started.elapsed());
        assert_eq!(soname_of(&shim).as_deref(), Some(soname));
        let expected = nm_exports(Path::new(source));
        assert!(expected.len() > 80, "{source} exports only {expected:?}");
        let shim_exports = nm_exports(&shim);
        let missing: Vec<_> = expected.difference(&shim_exports).collect();
        let extra: Vec<_> = shim_exports.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{soname}: missing {missing:?}, extra {extra:?}"
        );
    }
}

#[test]
fn generation_is_deterministic_and_regenerates_from_the_manifest() {
    let tree = Tree::new();
    versioned_fixture(&tree, "libgendet.so.1", "", VERSIONED_SCRIPT);
    let prefix = tree.root().to_str().unwrap();
    let (a, b) = (tree.path("a"), tree.path("b"));
    for out in [&a, &b] {
        assert_ok(&capsule_gen(&[
            "--prefix",
            prefix,
            "--out",
            out.to_str().unwrap(),
            "libgendet.so.1",
        ]));
    }
    let first = files_under(&a.join("libgendet.so.1"));
    assert!(
        first.contains_key(Path::new("src/lib.rs"))
            && first.contains_key(Path::new("capsule-shim.toml"))
    );
    assert_eq!(
        first,
        files_under(&b.join("libgendet.so.1")),
        "two generations differ"
    );

    // Regenerating needs nothing but the manifest: not even the library.
    let crate_dir = a.join("libgendet.so.1");
    std::fs::remove_dir_all(tree.root().join("usr")).unwrap();
    for file in ["src/lib.rs", "build.rs", "Cargo.toml", "versions.map"] {
        std::fs::remove_file(crate_dir.join(file)).unwrap();
    }
    std::fs::write(crate_dir.join("unversioned.map"), "stale").unwrap();
    let out = capsule_gen(&["--regenerate", crate_dir.to_str().unwrap()]);
    assert_ok(&out);
    let mut regenerated = files_under(&crate_dir);
    // The fixture has no unversioned symbols, so no generator writes that file.
    regenerated.remove(Path::new("unversioned.map"));
    assert_eq!(regenerated, first, "regenerated crate differs");
}

#[test]
fn workspace_members_have_no_workspace_table_and_a_relative_runtime() {
    let tmp = tempfile::tempdir().unwrap();
    let out = capsule_gen(&[
        "--out",
        tmp.path().to_str().unwrap(),
        "--workspace-member",
        "libz.so.1",
    ]);
    assert_ok(&out);
    let cargo = std::fs::read_to_string(tmp.path().join("libz.so.1/Cargo.toml")).unwrap();
    assert!(!cargo.contains("[workspace]"), "{cargo}");
    let dep = cargo
        .lines()
        .find(|l| l.starts_with("capsule = "))
        .expect("capsule dependency");
    assert!(
        dep.contains("path = \"../"),
        "runtime path is not relative: {dep}"
    );
    let runtime = tmp.path().join("libz.so.1").join(
        dep.trim_start_matches("capsule = { path = \"")
            .trim_end_matches("\" }"),
    );
    assert!(
        runtime.join("src/shim.rs").is_file(),
        "{} is not the runtime",
        runtime.display()
    );
}

#[test]
fn check_reports_added_and_removed_symbols() {
    let tree = Tree::new();
    versioned_fixture(&tree, "libgenchk.so.1", "", VERSIONED_SCRIPT);
    let prefix = tree.root().to_str().unwrap();
    let shims = tree.path("shims");
    assert_ok(&capsule_gen(&[
        "--prefix",
        prefix,
        "--out",
        shims.to_str().unwrap(),
        "libgenchk.so.1",
    ]));
    let crate_dir = shims.join("libgenchk.so.1");
    let crate_dir = crate_dir.to_str().unwrap();

    let same = capsule_gen(&["--prefix", prefix, "--check", crate_dir]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));

    // A variable's size is its ABI; a function's size is not recorded (format 1 manifests
    // had one, which is ignored).
    let manifest_path = shims.join("libgenchk.so.1/capsule-shim.toml");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let edited = manifest
        .replace(
            "kind = \"object\", weak = false, size = 4 }",
            "kind = \"object\", weak = false, size = 8 }",
        )
        .replace(
            "kind = \"function\", weak = false }",
            "kind = \"function\", weak = false, size = 999 }",
        );
    assert_ne!(edited, manifest, "{manifest}");
    std::fs::write(&manifest_path, &edited).unwrap();
    let resized = capsule_gen(&["--prefix", prefix, "--check", crate_dir]);
    assert_eq!(resized.status.code(), Some(1), "{}", stderr(&resized));
    assert_eq!(
        String::from_utf8_lossy(&resized.stdout),
        "+ counter@@FOO_1 (object, 4 bytes)\n- counter@@FOO_1 (object, 8 bytes)\n"
    );
    std::fs::write(&manifest_path, &manifest).unwrap();

    // The host upgrades: a new version with a new function, and `baz` is gone.
    versioned_fixture(
        &tree,
        "libgenchk.so.1",
        "int qux(void) { return 5; }\n",
        "FOO_1 { global: bar; counter; foo; old; local: *; };\n\
         FOO_2 { global: greeting; tls_value; foo; } FOO_1;\n\
         FOO_3 { global: qux; } FOO_2;\n",
    );
    let differs = capsule_gen(&["--prefix", prefix, "--check", crate_dir]);
    assert_eq!(differs.status.code(), Some(1), "{}", stderr(&differs));
    let report: BTreeSet<String> = String::from_utf8_lossy(&differs.stdout)
        .lines()
        .map(String::from)
        .collect();
    for line in [
        "+ version FOO_3",
        "+ qux@@FOO_3 (function)",
        "- baz@@FOO_2 (function)",
    ] {
        assert!(
            report.contains(line),
            "check output lacks {line:?}: {report:?}"
        );
    }
    assert_eq!(report.len(), 3, "unexpected differences: {report:?}");
}

#[test]
fn bad_input_gives_clear_errors_and_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().to_str().unwrap();

    let missing = capsule_gen(&["--out", out_dir, "libdoesnotexist.so.7"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("libdoesnotexist.so.7 not found"),
        "{}",
        stderr(&missing)
    );

    let text = tmp.path().join("libtext.so.1");
    std::fs::write(&text, "not a library").unwrap();
    let not_elf = capsule_gen(&["--out", out_dir, text.to_str().unwrap()]);
    assert_eq!(not_elf.status.code(), Some(2));
    let err = stderr(&not_elf);
    assert!(
        err.contains("libtext.so.1") && err.contains("not a readable ELF"),
        "{err}"
    );

    // A library of a machine capsule does not know (an x86_64 libz whose e_machine says
    // riscv64): refused, naming the machines it knows (each has an emitter).
    let riscv = tmp.path().join("libz-riscv64.so.1");
    let mut bytes = std::fs::read("/usr/lib/x86_64-linux-gnu/libz.so.1").unwrap();
    bytes[18..20].copy_from_slice(&243u16.to_le_bytes());
    std::fs::write(&riscv, bytes).unwrap();
    let unsupported = capsule_gen(&["--out", out_dir, riscv.to_str().unwrap()]);
    assert_eq!(unsupported.status.code(), Some(2));
    assert_eq!(
        stderr(&unsupported).trim_end(),
        format!(
            "capsule-gen: {}: not a readable ELF file (unknown machine (e_machine 243, 64-bit; capsule knows x86_64, i386, aarch64))",
            riscv.display()
        )
    );

    // --target must agree with a library given as a path.
    let mismatch = capsule_gen(&[
        "--out",
        out_dir,
        "--target",
        "i686-unknown-linux-gnu",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
    ]);
    assert_eq!(mismatch.status.code(), Some(2));
    assert_eq!(
        stderr(&mismatch).trim_end(),
        "capsule-gen: /usr/lib/x86_64-linux-gnu/libz.so.1: is built for x86_64, not for --target i686-unknown-linux-gnu's i386"
    );
    let unknown = capsule_gen(&[
        "--out",
        out_dir,
        "--target",
        "mips-unknown-linux-gnu",
        "libz.so.1",
    ]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("--target mips-unknown-linux-gnu: not a target capsule knows"),
        "{}",
        stderr(&unknown)
    );

    let no_manifest = capsule_gen(&["--regenerate", out_dir]);
    assert_eq!(no_manifest.status.code(), Some(2));
    assert!(
        stderr(&no_manifest).contains("capsule-shim.toml"),
        "{}",
        stderr(&no_manifest)
    );

    let broken = tmp.path().join("capsule-shim.toml");
    std::fs::write(&broken, "format = 1\nsoname = libz.so.1\n").unwrap();
    let bad_manifest = capsule_gen(&["--regenerate", out_dir]);
    assert_eq!(bad_manifest.status.code(), Some(2));
    assert!(
        stderr(&bad_manifest).starts_with(&format!("capsule-gen: {}:2:10: ", broken.display())),
        "{}",
        stderr(&bad_manifest)
    );

    let usage = capsule_gen(&[]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(stderr(&usage).contains("LIBRARY"), "{}", stderr(&usage));

    let help = capsule_gen(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--regenerate"));
}
