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
    // Names the closures `prefix::memo` remembers, so that no build reads another's answers
    // (the search, its ELF reader and the machines' facts decide them).
    source_id(
        &["src/prefix", "src/elffile.rs", "src/machine.rs"],
        "CAPSULE_RESOLVER_ID",
    );
    // Names the forwarder files kept in the cache directory, for the same reason (the
    // writer, and the architecture's stub code and ELF records it writes).
    source_id(
        &["src/forwarder", "src/arch", "src/elf/layout.rs"],
        "CAPSULE_FORWARDER_ID",
    );
    // Tells copies of the runtime (one per shim) that may wire each other's shims up:
    // those built from the same shim code, whose shim descriptions agree.
    source_id(&["src/shim.rs", "src/shim"], "CAPSULE_SHIM_ABI");
}

/// `variable`: a hash of the sources in `paths` (directories and files), set for the
/// crate's build.
fn source_id(paths: &[&str], variable: &str) {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths.iter().map(Path::new) {
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(path)
                    .expect("read a source directory")
                    .map(|entry| entry.expect("read a source directory").path()),
            );
        } else {
            files.push(path.to_path_buf());
        }
    }
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
    // The target's machine flags (`-m32` for i686), not cc's debug and optimisation ones.
    let machine = compiler
        .args()
        .iter()
        .filter(|a| a.to_str().is_some_and(|a| a.starts_with("-m")));
    let status = Command::new(compiler.path())
        .args(machine)
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
            // Nothing to import: a call the compiler made up (memcpy) fails the build.
            "-Wl,-z,defs",
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
