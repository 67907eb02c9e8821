//! Builds the namespace interposer (`interpose/interpose.c`) as a dependency-free shared
//! object that the runtime embeds and loads first into every capsule namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

include!("src/fnv.rs");

fn main() {
    let source = "interpose/interpose.c";
    println!("cargo:rerun-if-changed={source}");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // One image per kind of prefix: `/` has no data files to map (see interpose.c).
    build(source, &out_dir.join("interpose.so"), &[]);
    build(
        source,
        &out_dir.join("interpose-root.so"),
        &["-DCAPSULE_ROOT_PREFIX"],
    );
    // Names the closures `prefix::memo` remembers, so that no build reads another's answers.
    source_id("src/prefix", "CAPSULE_RESOLVER_ID");
    // Names the forwarder files kept in the cache directory, for the same reason.
    source_id("src/forwarder", "CAPSULE_FORWARDER_ID");
}

/// `variable`: a hash of the sources in `dir`, set for the crate's build.
fn source_id(dir: &str, variable: &str) {
    let dir = Path::new(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read a source directory")
        .map(|entry| entry.expect("read a source directory").path())
        .collect();
    files.sort();
    // Each file's name and bytes, one after the other.
    let mut all = Vec::new();
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        all.extend_from_slice(file.file_name().unwrap_or_default().as_encoded_bytes());
        all.extend(std::fs::read(&file).expect("read a source"));
    }
    println!("cargo:rustc-env={variable}={:016x}", fnv1a(&all));
}

fn build(source: &str, out: &Path, defines: &[&str]) {
    let compiler = cc::Build::new().get_compiler();
    let status = Command::new(compiler.path())
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-nostdlib",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-fvisibility=hidden",
            "-Wall",
            "-Werror",
            "-Wl,-z,now",
            // No RELRO: it would put the GOT on a page of its own, protected after
            // relocation (an mprotect and a second copy-on-write page per namespace), to
            // guard a handful of slots beside a table of function pointers that stays
            // writable anyway.
            "-Wl,-z,norelro",
            // Headers and code share one read+execute segment: two mappings fewer to make
            // for every namespace.
            "-Wl,-z,noseparate-code",
            "-Wl,-soname,capsule-interpose.so",
        ])
        .args(defines)
        .arg("-o")
        .arg(out)
        .arg(source)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler {:?}: {e}; install gcc",
                compiler.path()
            )
        });
    assert!(status.success(), "building {source} failed");
}
