//! A real pinned runtime (examples/runtime/runtime.sh): a Debian 11 userland, made with
//! debootstrap and cached under ~/.cache/capsule-runtime, run with bubblewrap on the host's
//! glibc, the host at /run/host. Through the checked-in shims the runtime's SDL2 game
//! (examples/runtime/sdl_game.c) renders in an Xvfb window with the host's llvmpipe, by GLX
//! and by EGL, the pixels those of the same game on the host; so do the Vulkan program and
//! glxinfo. Without capsule (the host's library directory after the runtime's), the host's
//! driver meets the runtime's libstdc++ and fails.
//!
//! Needs root, network on the first run (Debian's archive) and: debootstrap bubblewrap xvfb
//! mesa-utils vulkan-tools libsdl2-dev libgles-dev libvulkan-dev (.ci/run installs them). A
//! missing one fails the test, saying which.

use capsule_tests::{build_checked_in_shims, run_ok, run_until, DisplayServer, Finished, Tree};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SHIMS: &[(&str, &str, &str)] = capsule_tests::CHECKED_IN_SHIMS;
/// Where a run's work directory is mounted inside the runtime (runtime.sh --bind ... work).
const WORK: &str = "/run/capsule/work";
const EXIT_WITHIN: Duration = Duration::from_secs(180);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script() -> PathBuf {
    workspace().join("examples/runtime/runtime.sh")
}

/// The runtime's directory, built by the script once per test process (or taken from its
/// cache); debootstrap runs at most once even with tests in parallel.
fn runtime() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let out = run_ok(
            Command::new("bash").arg(script()).arg("path"),
            "build the bullseye runtime (needs root, debootstrap and Debian's archive)",
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
    .clone()
}

/// A work directory: the shims (copies: the sandbox cannot follow links into target/),
/// the programs built on this machine, and out/ for pictures.
struct Work {
    tree: Tree,
}

impl Work {
    fn new() -> Work {
        let tree = Tree::new();
        let packages: Vec<&str> = SHIMS.iter().map(|s| s.0).collect();
        let release = build_checked_in_shims(&packages);
        for (_, file, soname) in SHIMS {
            std::fs::copy(release.join(file), tree.path(&format!("lib/{soname}")))
                .expect("copy a shim under its soname");
        }
        std::fs::create_dir_all(tree.path("out")).expect("create out/");
        Work { tree }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.tree.path(relative)
    }

    /// `cc` SOURCE into the work directory as NAME.
    fn build(&self, name: &str, source: &str, args: &[&str]) {
        run_ok(
            Command::new(capsule_tests::cc())
                .args(["-O2", "-o"])
                .arg(self.path(name))
                .arg(workspace().join(source))
                .args(args),
            "build a program for the runtime (needs libsdl2-dev libgles-dev libvulkan-dev)",
        );
    }

    fn sdl_game(&self) {
        self.build(
            "sdl_game",
            "examples/runtime/sdl_game.c",
            &[
                "-I/usr/include/SDL2",
                "-lSDL2",
                "-lGLESv2",
                "-lz",
                "-lm",
                "-Wl,--no-as-needed",
                "-lstdc++",
            ],
        );
    }

    /// A copy of this machine's `tool` (its own libraries left out: the runtime's serve).
    fn copy_tool(&self, tool: &str, package: &str) {
        let found = std::fs::canonicalize(tool)
            .unwrap_or_else(|e| panic!("{tool} not found ({e}): apt-get install {package}"));
        let name = Path::new(tool).file_name().expect("a file name");
        std::fs::copy(found, self.path(&name.to_string_lossy())).expect("copy the tool");
    }

    /// Run `program` (a file of the work directory) with ARGS in the runtime through the
    /// shims (or, `naive`, without them), on `server`, with `envs`.
    fn run(
        &self,
        server: &DisplayServer,
        naive: bool,
        envs: &[(&str, &str)],
        program: &str,
        args: &[&str],
    ) -> Finished {
        runtime();
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("run");
        if naive {
            cmd.arg("--naive");
        } else {
            cmd.arg("--shims").arg(self.path("lib"));
        }
        cmd.arg("--bind")
            .arg(self.tree.root())
            .arg("work")
            .arg("--");
        cmd.arg(format!("{WORK}/{program}")).args(args);
        cmd.env_remove("WAYLAND_DISPLAY")
            .env("MESA_SHADER_CACHE_DISABLE", "true");
        server.connect(&mut cmd);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        run_until(&mut cmd, EXIT_WITHIN)
    }
}

fn value<'a>(run: &'a Finished, key: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key:?} line:\n{}", run.describe()))
}

/// The namespaces (`[N]` of LD_DEBUG=files) in which ld.so mapped a file whose path
/// contains `needle`, as (file, namespace).
fn mapped(stderr: &str, needle: &str) -> Vec<(String, u32)> {
    stderr
        .lines()
        .filter(|l| l.contains("generating link map"))
        .filter_map(|l| {
            let file = l.split("file=").nth(1)?;
            let (name, rest) = file.split_once(" [")?;
            let ns = rest.split(']').next()?.parse().ok()?;
            name.contains(needle).then(|| (name.to_string(), ns))
        })
        .collect()
}

#[test]
fn the_runtimes_sdl2_game_renders_through_the_shims_by_glx_and_egl_as_on_the_host() {
    let work = Work::new();
    work.sdl_game();
    let server = DisplayServer::xvfb(1024, 768);

    // The control: the same game on the host, its own SDL2 and Mesa, no capsule.
    let mut host = Command::new(work.path("sdl_game"));
    host.arg(work.path("out"))
        .env("MESA_SHADER_CACHE_DISABLE", "true")
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("WAYLAND_DISPLAY");
    server.connect(&mut host);
    let host = run_until(&mut host, EXIT_WITHIN);
    assert!(
        host.success(),
        "control: the game on the host failed:\n{}",
        host.describe()
    );
    let host_hash = value(&host, "image_hash").to_string();

    // Each with the version skew the capsule meets (CAPSULE_DEBUG=libs): the runtime's
    // libX11 (1.7) lacks a function of the host's, whose forwarder stubs it; the runtime's
    // libwayland-client (1.18) lacks one that the host's libEGL_mesa calls.
    let x11_stub = "libX11.so.6: 1 function(s) of the host's copy that the program's lacks \
                    are stubs that abort if called: XFreeThreads";
    let wayland_call = "calls 1 function(s) of libwayland-client.so.0 that the program's copy \
                        (/lib/x86_64-linux-gnu/libwayland-client.so.0) lacks: \
                        wl_proxy_marshal_flags; each aborts with a message if called";
    for (api, envs, library, skew) in [
        ("GLX", &[][..], "libgl", x11_stub),
        (
            "EGL",
            &[("SDL_VIDEO_X11_FORCE_EGL", "1")][..],
            "libegl",
            wayland_call,
        ),
    ] {
        let mut envs = envs.to_vec();
        envs.extend([("LD_DEBUG", "files"), ("CAPSULE_DEBUG", "libs")]);
        let out = format!("{WORK}/out");
        let run = work.run(&server, false, &envs, "sdl_game", &[&out]);
        assert!(
            run.success(),
            "{api}: the game in the runtime failed:\n{}",
            run.describe()
        );
        let what = format!("{api}:\n{}", run.stdout);
        assert!(
            value(&run, "sdl").starts_with("2.0.14"),
            "not the runtime's SDL2: {what}"
        );
        assert!(value(&run, "renderer").starts_with("llvmpipe"), "{what}");
        assert_eq!(
            value(&run, library),
            "/run/capsule/lib/".to_string()
                + match library {
                    "libgl" => "libGL.so.1",
                    _ => "libEGL.so.1",
                },
            "SDL did not load the shim: {what}"
        );
        assert_eq!(
            value(&run, "image_hash"),
            host_hash,
            "pixels differ from the host's: {what}"
        );

        // The host's driver, LLVM and libstdc++ in the capsule's namespace; the runtime's
        // window-system libraries, libstdc++ and SDL2 in the program's.
        for needle in [
            "/run/host/usr/lib/x86_64-linux-gnu/dri/swrast_dri.so",
            "/run/host/usr/lib/x86_64-linux-gnu/libLLVM-",
            "/run/host/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        ] {
            let maps = mapped(&run.stderr, needle);
            assert!(
                !maps.is_empty() && maps.iter().all(|(_, ns)| *ns >= 1),
                "{api}: {needle} not mapped, or not in a capsule namespace: {maps:?}"
            );
        }
        for soname in [
            "libX11.so.6",
            "libxcb.so.1",
            "libstdc++.so.6",
            "libSDL2-2.0.so.0",
        ] {
            let maps = mapped(&run.stderr, soname);
            // The capsule's forwarders (files of the cache directory) bind to these copies.
            let base: Vec<_> = maps
                .iter()
                .filter(|(f, _)| !f.starts_with("/run/host") && !f.contains("/forward-"))
                .collect();
            assert!(
                base.len() == 1 && base[0].1 == 0,
                "{api}: the runtime's {soname} must be mapped once, in namespace 0: {maps:?}"
            );
        }
        for soname in ["libX11.so.6", "libxcb.so.1"] {
            let maps = mapped(&run.stderr, soname);
            assert!(
                maps.iter().any(|(f, ns)| f.contains("/forward-") && *ns >= 1)
                    && !maps.iter().any(|(f, _)| f.starts_with("/run/host")),
                "{api}: the capsule must share the runtime's {soname}, not load the host's: {maps:?}"
            );
        }
        assert!(
            run.stderr.contains(skew),
            "{api}: no line {skew:?} in:\n{}",
            run.stderr
                .lines()
                .filter(|l| l.starts_with("capsule:"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn vulkan_glxinfo_and_vkcube_in_the_runtime_use_the_hosts_llvmpipe() {
    let work = Work::new();
    work.build(
        "vulkan_copy",
        "examples/deploy/vulkan_copy.c",
        &["-lvulkan"],
    );
    work.copy_tool("/usr/bin/glxinfo", "mesa-utils mesa-utils-bin");
    work.copy_tool("/usr/bin/vkcube", "vulkan-tools");
    let server = DisplayServer::xvfb(1024, 768);

    let vulkan = work.run(&server, false, &[], "vulkan_copy", &[]);
    assert!(
        vulkan.success() && vulkan.stdout.contains("copied=4096/4096"),
        "vulkan_copy:\n{}",
        vulkan.describe()
    );
    assert!(
        vulkan.stdout.contains("llvmpipe"),
        "vulkan_copy:\n{}",
        vulkan.describe()
    );

    let glxinfo = work.run(&server, false, &[], "glxinfo", &["-B"]);
    assert!(glxinfo.success(), "glxinfo -B:\n{}", glxinfo.describe());
    assert!(
        glxinfo.stdout.contains("OpenGL renderer string: llvmpipe"),
        "glxinfo -B:\n{}",
        glxinfo.describe()
    );

    let vkcube = work.run(&server, false, &[], "vkcube", &["--c", "20"]);
    assert!(vkcube.success(), "vkcube --c 20:\n{}", vkcube.describe());
    assert!(
        vkcube.stderr.contains("llvmpipe") || vkcube.stdout.contains("llvmpipe"),
        "vkcube:\n{}",
        vkcube.describe()
    );
}

#[test]
fn without_capsule_the_hosts_driver_fails_on_the_runtimes_libstdcxx() {
    let work = Work::new();
    work.copy_tool("/usr/bin/glxinfo", "mesa-utils mesa-utils-bin");
    let server = DisplayServer::xvfb(1024, 768);
    let run = work.run(&server, true, &[], "glxinfo", &["-B"]);
    assert!(
        run.stderr
            .contains("/usr/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.")
            && run
                .stderr
                .contains("not found (required by /run/host/usr/lib/x86_64-linux-gnu/"),
        "the naive setup did not fail on the runtime's libstdc++:\n{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("OpenGL renderer string: llvmpipe"),
        "it rendered:\n{}",
        run.describe()
    );
}
