//! The shims checked in under `shims/` (this machine's GL stack: Debian 12, libglvnd +
//! Mesa) and `shims/i386/` (the same packages' i386 builds) are exactly what capsule-gen
//! writes from their manifests, and, built, export what the installed libraries export.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use capsule_tests::{files_under, nm_exports, run_ok};

const SHIMS: [&str; 7] = [
    "libGL.so.1",
    "libEGL.so.1",
    "libGLX.so.0",
    "libGLESv2.so.2",
    "libOpenGL.so.0",
    "libGLdispatch.so.0",
    "libvulkan.so.1",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("capsule-gen sits in the workspace")
        .to_path_buf()
}

/// The directories of the checked-in shims: x86_64's (`shims/`, workspace members) and
/// i386's (`shims/i386/`, a workspace of their own built with `--target`), with the
/// target to build them for (`None`: the workspace's own).
const MACHINES: [(&str, Option<&str>); 2] = [
    ("shims", None),
    ("shims/i386", Some("i686-unknown-linux-gnu")),
];

fn shim_dir(machine_dir: &str, soname: &str) -> PathBuf {
    workspace().join(machine_dir).join(soname)
}

/// A manifest's `key = "value"` line.
fn manifest_value(manifest: &str, key: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \""))?.strip_suffix('"'))
        .unwrap_or_else(|| panic!("the manifest has no {key}"))
        .to_string()
}

/// The names the manifest lists as thread-local or untyped: capsule-gen leaves them out.
fn left_out(manifest: &str) -> BTreeSet<String> {
    manifest
        .lines()
        .filter(|l| l.contains("kind = \"tls\"") || l.contains("kind = \"untyped\""))
        .filter_map(|l| {
            let name = l.split("name = \"").nth(1)?.split('"').next()?;
            Some(match l.split("version = \"").nth(1) {
                Some(rest) => {
                    let version = rest.split('"').next()?;
                    let at = if l.contains("default = true") {
                        "@@"
                    } else {
                        "@"
                    };
                    format!("{name}{at}{version}")
                }
                None => name.to_string(),
            })
        })
        .collect()
}

#[test]
fn every_checked_in_shim_is_what_the_generator_writes() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    for (machine_dir, soname) in MACHINES
        .iter()
        .flat_map(|(dir, _)| SHIMS.map(|soname| (*dir, soname)))
    {
        let checked_in = shim_dir(machine_dir, soname);
        let manifest = checked_in.join("capsule-shim.toml");
        assert!(manifest.is_file(), "{} is missing", manifest.display());
        let fresh = tmp.path().join(machine_dir).join(soname);
        std::fs::create_dir_all(&fresh).unwrap();
        std::fs::copy(&manifest, fresh.join("capsule-shim.toml")).unwrap();
        run_ok(
            Command::new(env!("CARGO_BIN_EXE_capsule-gen"))
                .arg("--regenerate")
                .arg(&fresh),
            "regenerate a checked-in shim from its manifest",
        );
        let (expected, actual) = (files_under(&fresh), files_under(&checked_in));
        let names = |m: &std::collections::BTreeMap<PathBuf, Vec<u8>>| -> Vec<PathBuf> {
            m.keys().cloned().collect()
        };
        assert_eq!(
            names(&actual),
            names(&expected),
            "{machine_dir}/{soname}: file lists differ"
        );
        for (path, bytes) in &expected {
            assert!(
                actual[path] == *bytes,
                "{machine_dir}/{soname}/{} differs from what capsule-gen writes from its manifest; \
                 run `capsule-gen --regenerate {machine_dir}/{soname}`",
                path.display()
            );
        }
    }
}

#[test]
fn every_checked_in_shim_exports_what_the_installed_library_exports() {
    // The workspace's own target directory: `cargo build --release` at the root (and, for
    // i386, in shims/i386 with --target) builds the same files.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .to_path_buf();
    for (machine_dir, triple) in MACHINES {
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(workspace().join(machine_dir))
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--release", "--offline", "--quiet"]);
        if let Some(triple) = triple {
            build.args(["--target", triple]);
        }
        for soname in SHIMS {
            build.args([
                "-p",
                &format!("shim-{}", soname.to_ascii_lowercase().replace('.', "-")),
            ]);
        }
        let started = std::time::Instant::now();
        run_ok(
            &mut build,
            &format!(
                "build the checked-in shims of {machine_dir} (i386: rustup target add \
                 i686-unknown-linux-gnu)"
            ),
        );
        eprintln!(
            "built the checked-in shims of {machine_dir} in {:?}",
            started.elapsed()
        );
        let release = match triple {
            Some(triple) => target.join(triple).join("release"),
            None => target.join("release"),
        };

        for soname in SHIMS {
            let manifest =
                std::fs::read_to_string(shim_dir(machine_dir, soname).join("capsule-shim.toml"))
                    .unwrap();
            let source = manifest_value(&manifest, "source");
            assert!(
                Path::new(&source).is_file(),
                "{source} is not installed: install libgl1 libegl1 libgles2 libglx0 libopengl0 \
                 libglvnd0 and their :i386 builds (as .ci/run does)"
            );
            let lib = soname.split(".so").next().unwrap();
            let shim = release.join(format!("{lib}.so"));
            let skipped = left_out(&manifest);
            let expected: BTreeSet<String> = nm_exports(Path::new(&source))
                .into_iter()
                .filter(|line| !skipped.contains(line.split_once(' ').map_or("", |(_, n)| n)))
                .collect();
            let exported = nm_exports(&shim);
            let missing: Vec<_> = expected.difference(&exported).collect();
            let extra: Vec<_> = exported.difference(&expected).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{machine_dir}/{soname}: missing {missing:?}, extra {extra:?}"
            );
            assert!(expected.len() >= 10, "{source} exports only {expected:?}");
        }
    }
}
