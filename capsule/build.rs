//! Builds the namespace interposer (`interpose/interpose.c`) as a dependency-free shared
//! object that the runtime embeds and loads first into every capsule namespace.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "interpose/interpose.c";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("interpose.so");
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
            "-Wl,-z,relro",
            "-Wl,-soname,capsule-interpose.so",
            "-o",
        ])
        .arg(&out)
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
