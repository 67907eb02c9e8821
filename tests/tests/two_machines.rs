//! A 64-bit (x86_64) and a 32-bit (i386) build of the demo game, each linked to its own
//! machine's checked-in shims (`shims/` and `shims/i386/`), run side by side with the
//! host prefix `/`: each loads its machine's Mesa (`/usr/lib/x86_64-linux-gnu`,
//! `/usr/lib/i386-linux-gnu`) into a capsule, and both render the same image.
//!
//! Needs Debian's i386 GL stack and gcc-multilib (`.ci/run` installs them) and the Rust
//! target `i686-unknown-linux-gnu`; without them it fails saying so.

use capsule_tests::{build_checked_in_shims_for, cc, cc_args_for, install_shim, run_ok, Machine};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SHIMS: [(&str, &str); 2] = [
    ("libEGL.so.1", "shim-libegl-so-1"),
    ("libGL.so.1", "shim-libgl-so-1"),
];

/// The game built for `machine`, linked to that machine's shims (installed in `lib_dir`).
fn build_game(machine: Machine, dir: &Path) -> PathBuf {
    let packages: Vec<&str> = SHIMS.iter().map(|(_, package)| *package).collect();
    let built = build_checked_in_shims_for(machine, &packages);
    let lib_dir = dir.join("lib");
    for (soname, _) in SHIMS {
        let name = soname.trim_end_matches(".1");
        install_shim(&built.join(name), soname, &lib_dir);
    }
    let game = dir.join("game");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/game/game.c");
    // Debian's :i386 packages install no link names: libX11 by soname.
    let x11 = if machine == Machine::X86 {
        "-l:libX11.so.6"
    } else {
        "-lX11"
    };
    run_ok(
        Command::new(cc())
            .args(cc_args_for(machine))
            .args(["-O2", "-o"])
            .arg(&game)
            .arg(&source)
            .arg(format!("-L{}", lib_dir.display()))
            .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
            .args(["-lEGL", "-lGL", x11, "-lz", "-lm", "-lpthread"]),
        &format!(
            "build the {} game (needs gcc-multilib and Debian's :i386 libx11-6, zlib1g-dev)",
            machine.name()
        ),
    );
    game
}

/// `key: value` of a game's stdout.
fn value<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("the game printed no {key}:\n{stdout}"))
}

#[test]
fn a_32_bit_and_a_64_bit_game_render_the_same_image_through_their_own_shims() {
    let work = tempfile::tempdir().expect("temporary directory");
    let machines = [Machine::X86_64, Machine::X86];
    let games: Vec<(Machine, PathBuf, PathBuf)> = machines
        .into_iter()
        .map(|machine| {
            let dir = work.path().join(machine.name());
            let game = build_game(machine, &dir);
            let out = dir.join("out");
            std::fs::create_dir_all(&out).expect("create the output directory");
            (machine, game, out)
        })
        .collect();
    // Side by side: both started before either is waited for.
    let running: Vec<_> = games
        .iter()
        .map(|(machine, game, out)| {
            let child = Command::new(game)
                .arg(out)
                .env("CAPSULE_PREFIX", "/")
                .env("CAPSULE_DEBUG", "libs")
                .env("MESA_SHADER_CACHE_DISABLE", "true")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("start the {} game: {e}", machine.name()));
            (*machine, child)
        })
        .collect();
    let mut hashes = Vec::new();
    for (machine, child) in running {
        let output = child.wait_with_output().expect("wait for the game");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(
            output.status.success(),
            "the {} game failed with {}:\n{stdout}\n{stderr}",
            machine.name(),
            output.status
        );
        assert!(
            value(&stdout, "renderer").contains("llvmpipe"),
            "{}: {stdout}",
            machine.name()
        );
        // Through the shim, into a capsule holding this machine's Mesa.
        let libegl = format!("/{}/libEGL.so.1", machine.multiarch());
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("shim libEGL.so.1: forwarding to ") && l.contains(&libegl)),
            "the {} game did not load its machine's libEGL through the shim ({libegl:?}):\n{stderr}",
            machine.name()
        );
        let png = std::fs::read(value(&stdout, "png")).expect("read the game's PNG");
        hashes.push((machine, value(&stdout, "image_hash").to_string(), png));
    }
    let (_, hash64, png64) = &hashes[0];
    let (_, hash32, png32) = &hashes[1];
    assert_eq!(hash64, hash32, "the 32-bit and 64-bit games' pixel hashes");
    assert!(
        png64 == png32,
        "the PNGs differ though the pixel hashes agree"
    );
}
