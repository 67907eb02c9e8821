//! `capsule-gen install`: shims built and placed under their sonames with the development
//! link beside them, so that a C program links them with `-l` and runs through them. The
//! libraries: libjson-c.so.5, whose `-` cargo cannot put in a file name (it builds
//! libjson_c.so), and libz.so.1; and an i686 json-c shim linked into a 32-bit program. Needs
//! libjson-c5, libjson-c-dev, libjson-c5:i386, gcc-multilib (.ci/run installs them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capsule_tests::{build_program, run_ok};

const GEN: &str = env!("CARGO_BIN_EXE_capsule-gen");

/// The real library and header the tests need, or a failure that says what to install.
fn require_json_c() {
    for (file, package) in [
        ("/usr/lib/x86_64-linux-gnu/libjson-c.so.5", "libjson-c5"),
        ("/usr/include/json-c/json.h", "libjson-c-dev"),
    ] {
        assert!(
            Path::new(file).exists(),
            "{file} is missing: apt-get install {package} (.ci/run installs libjson-c5 \
             libjson-c-dev)"
        );
    }
}

/// The i386 json-c, gcc's 32-bit support and Rust's i686 target, or a failure that says
/// what to install.
fn require_i386_json_c() {
    for (file, package) in [
        ("/usr/lib/i386-linux-gnu/libjson-c.so.5", "libjson-c5:i386"),
        (
            "/usr/lib/gcc/x86_64-linux-gnu/12/32/crtbegin.o",
            "gcc-multilib",
        ),
    ] {
        assert!(
            Path::new(file).exists(),
            "{file} is missing: dpkg --add-architecture i386 && apt-get update && apt-get \
             install {package} (.ci/run installs it)"
        );
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .expect("run rustup");
    assert!(
        String::from_utf8_lossy(&targets.stdout).contains("i686-unknown-linux-gnu"),
        "Rust's i686 target is missing: rustup target add i686-unknown-linux-gnu (.ci/run adds it)"
    );
}

/// Shared with generate.rs, so the runtime crate is compiled once for all shim builds.
fn shim_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("shim-target")
}

/// Generate a standalone shim crate for `soname` in `out`, with the workspace's lock file
/// so that it builds offline with the versions the workspace was tested with.
fn generate(soname: &str, out: &Path) -> PathBuf {
    generate_for(soname, out, &[])
}

/// [`generate`] with more arguments (`--target TRIPLE`).
fn generate_for(soname: &str, out: &Path, args: &[&str]) -> PathBuf {
    run_ok(
        Command::new(GEN)
            .args(args)
            .arg("--out")
            .arg(out)
            .arg(soname),
        "generate a shim",
    );
    let dir = out.join(soname);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("copy the workspace's Cargo.lock");
    dir
}

fn install(args: &[&Path], into: &Path, target: Option<&str>) -> Output {
    let mut cmd = Command::new(GEN);
    cmd.arg("install")
        .args(args)
        .arg("--into")
        .arg(into)
        .env("CARGO_TARGET_DIR", shim_target_dir())
        .env("CARGO_NET_OFFLINE", "true");
    if let Some(target) = target {
        cmd.args(["--target", target]);
    }
    run_ok(&mut cmd, "capsule-gen install")
}

const PROGRAM: &str = r#"
#include <json-c/json.h>
#include <stdio.h>
#include <zlib.h>
int main(void) {
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "shim", json_object_new_string("json-c"));
    json_object_object_add(o, "n", json_object_new_int(42));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    struct json_object *a = json_tokener_parse("[1, 2, 3]");
    printf("length %zu\n", json_object_array_length(a));
    json_object_put(o);
    json_object_put(a);
#ifdef WITH_ZLIB
    printf("zlib %s\n", zlibVersion());
#endif
    return 0;
}
"#;

/// Build PROGRAM with `-L lib -Wl,-rpath,lib` and `libs`, run it with CAPSULE_DEBUG=libs,
/// and return what it printed and its stderr.
fn build_and_run(dir: &Path, lib: &Path, libs: &[&str]) -> (String, String) {
    let program = dir.join("program");
    let mut args = vec![
        format!("-L{}", lib.display()),
        format!("-Wl,-rpath,{}", lib.display()),
    ];
    if libs.contains(&"-lz") {
        args.push("-DWITH_ZLIB".into());
    }
    args.extend(libs.iter().map(|l| l.to_string()));
    run_built(&program, &args)
}

/// Build PROGRAM with `args` into `program`, run it with CAPSULE_DEBUG=libs; its stdout
/// and stderr.
fn run_built(program: &Path, args: &[String]) -> (String, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build_program(PROGRAM, program, &args);
    let out = run_ok(
        Command::new(program).env("CAPSULE_DEBUG", "libs"),
        "run the program linked to the installed shims",
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The program really went through the shim in `lib`: the dynamic linker loaded the shim
/// under its soname from `lib`, and the shim loaded the host's library into a capsule.
fn assert_through_shim(stderr: &str, soname: &str, lib: &Path) {
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("capsule: {soname} => /"))),
        "the shim did not load {soname} into a capsule:\n{stderr}"
    );
    let installed = lib.join(soname);
    assert!(
        std::fs::metadata(&installed).is_ok_and(|m| m.is_file()),
        "{} is not a file",
        installed.display()
    );
}

fn assert_dev_link(lib: &Path, link: &str, soname: &str) {
    let target = std::fs::read_link(lib.join(link))
        .unwrap_or_else(|e| panic!("{link} in {} is not a symlink: {e}", lib.display()));
    assert_eq!(target, Path::new(soname), "{link} points elsewhere");
}

#[test]
fn installed_shims_link_with_dash_l_and_run_through_the_capsule() {
    require_json_c();
    let tmp = tempfile::tempdir().unwrap();
    let json_c = generate("libjson-c.so.5", &tmp.path().join("src"));
    let zlib = generate("libz.so.1", &tmp.path().join("src"));
    let lib = tmp.path().join("lib");

    // Several crates at once; a second run finds them built and replaces the files.
    for _ in 0..2 {
        let out = install(&[&json_c, &zlib], &lib, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("libjson-c.so.5 -> ")
                && stderr.contains("libjson-c.so -> libjson-c.so.5"),
            "{stderr}"
        );
    }
    assert_dev_link(&lib, "libjson-c.so", "libjson-c.so.5");
    assert_dev_link(&lib, "libz.so", "libz.so.1");
    let mut names: Vec<_> = std::fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["libjson-c.so", "libjson-c.so.5", "libz.so", "libz.so.1"],
        "install left other files behind"
    );

    let (stdout, stderr) = build_and_run(tmp.path(), &lib, &["-ljson-c", "-lz"]);
    assert!(
        stdout.starts_with("{\"shim\":\"json-c\",\"n\":42}\nlength 3\nzlib 1."),
        "{stdout}\n{stderr}"
    );
    assert_through_shim(&stderr, "libjson-c.so.5", &lib);
    assert_through_shim(&stderr, "libz.so.1", &lib);
}

#[test]
fn install_for_a_target_takes_the_shim_from_target_triple_release() {
    require_json_c();
    // The host's own triple: --target moves cargo's output to target/TRIPLE/release, the
    // path install must follow (the i686 case is the test below).
    let triple = "x86_64-unknown-linux-gnu";
    let tmp = tempfile::tempdir().unwrap();
    let json_c = generate("libjson-c.so.5", &tmp.path().join("src"));
    let lib = tmp.path().join("lib");
    install(&[&json_c], &lib, Some(triple));

    let built = shim_target_dir().join(triple).join("release/libjson_c.so");
    assert!(
        std::fs::read(&built).expect("cargo built the shim for the target")
            == std::fs::read(lib.join("libjson-c.so.5")).unwrap(),
        "the installed shim is not {}",
        built.display()
    );
    assert_dev_link(&lib, "libjson-c.so", "libjson-c.so.5");
    let (stdout, stderr) = build_and_run(tmp.path(), &lib, &["-ljson-c"]);
    assert!(
        stdout.starts_with("{\"shim\":\"json-c\",\"n\":42}\nlength 3\n"),
        "{stdout}\n{stderr}"
    );
    assert_through_shim(&stderr, "libjson-c.so.5", &lib);
}

#[test]
fn install_of_a_directory_without_a_shim_crate_names_it_and_builds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(GEN)
        .arg("install")
        .arg(tmp.path())
        .arg("--into")
        .arg(tmp.path().join("lib"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("capsule-shim.toml") && stderr.contains("a shim crate made by capsule-gen"),
        "{stderr}"
    );
    assert!(!tmp.path().join("lib").exists(), "install created --into");
}

#[test]
fn an_i686_shim_installs_and_links_a_32_bit_program() {
    require_json_c();
    require_i386_json_c();
    let triple = "i686-unknown-linux-gnu";
    let tmp = tempfile::tempdir().unwrap();
    let json_c = generate_for(
        "libjson-c.so.5",
        &tmp.path().join("src"),
        &["--target", triple],
    );
    let manifest = std::fs::read_to_string(json_c.join("capsule-shim.toml")).unwrap();
    assert!(
        manifest.contains("/usr/lib/i386-linux-gnu/libjson-c.so.5")
            || manifest.contains("/lib/i386-linux-gnu/libjson-c.so.5"),
        "{manifest}"
    );
    let lib = tmp.path().join("lib");
    let out = install(&[&json_c], &lib, Some(triple));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("libjson-c.so.5 -> "), "{stderr}");
    assert_dev_link(&lib, "libjson-c.so", "libjson-c.so.5");
    let installed = std::fs::read(lib.join("libjson-c.so.5")).unwrap();
    assert_eq!(installed[4], 1, "the installed shim is not ELFCLASS32");

    let args = [
        "-m32".to_string(),
        format!("-L{}", lib.display()),
        format!("-Wl,-rpath,{}", lib.display()),
        "-ljson-c".to_string(),
    ];
    let (stdout, stderr) = run_built(&tmp.path().join("program32"), &args);
    assert!(
        stdout.starts_with("{\"shim\":\"json-c\",\"n\":42}\nlength 3\n"),
        "{stdout}\n{stderr}"
    );
    assert_through_shim(&stderr, "libjson-c.so.5", &lib);
    assert!(
        stderr.contains("libjson-c.so.5 => /lib/i386-linux-gnu/")
            || stderr.contains("libjson-c.so.5 => /usr/lib/i386-linux-gnu/"),
        "the capsule did not load the i386 json-c:\n{stderr}"
    );
}
