//! Records the target the tests are built for and the host's, so that the helpers build
//! fixtures (`gcc -m32`) and shims (`cargo build --target`) for the test binary's own
//! architecture: `cargo test --target i686-unknown-linux-gnu` tests the i386 runtime.

fn main() {
    for name in ["TARGET", "HOST"] {
        let value = std::env::var(name).expect("cargo sets TARGET and HOST for build scripts");
        println!("cargo:rustc-env=CAPSULE_TESTS_{name}={value}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
