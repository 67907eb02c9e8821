//! Real window-system clients through the checked-in shims: mesa-utils (glxinfo, glxgears,
//! es2_info, es2gears, eglinfo), vulkan-tools (vkcube) and an SDL2 OpenGL window
//! (tests/c/sdl_window.c), on a private Xvfb display and on a headless weston. Each client
//! also runs linked directly, on the same server, as a control: when the control passes and
//! the shim run fails, the capsule is at fault, not the machine.
//!
//! Needs (Debian 12; .ci/run installs them): xvfb mesa-utils mesa-utils-bin vulkan-tools
//! mesa-vulkan-drivers libsdl2-dev weston. A missing tool fails the test, saying which.
//!
//! Built for i386 (`--target i686-unknown-linux-gnu`), the clients must be i386 programs:
//! mesa-utils-bin:i386 installs beside the native package (`glxinfo.i386-linux-gnu`, ...);
//! vulkan-tools and libsdl2-dev have no co-installable i386 build, so vkcube and the SDL2
//! window fail there saying so, and test.sh leaves them out of the i686 suite. A GLX
//! client built from source (tests/c/glx_window.c) runs for every machine.

use capsule_tests::{
    build_checked_in_shims, build_program, run_ok, run_until, DisplayServer, Finished, Tree,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The checked-in shims: (package, built file, soname).
const SHIMS: &[(&str, &str, &str)] = capsule_tests::CHECKED_IN_SHIMS;

/// How long an animation must stay up (it is alive if still running then).
const ALIVE_FOR: Duration = Duration::from_secs(3);
/// Generous: two cores shared, llvmpipe compiling shaders, a capsule loading.
const EXIT_WITHIN: Duration = Duration::from_secs(120);

/// How a client reaches the GL/Vulkan libraries.
#[derive(Clone, Copy, PartialEq)]
enum Link {
    /// The real libraries, as installed (the control).
    Direct,
    /// The shims first in LD_LIBRARY_PATH, the real libraries in a capsule behind them.
    Shims,
}

/// A directory with every checked-in shim under its soname.
struct ShimDir {
    tree: Tree,
}

impl ShimDir {
    fn build() -> ShimDir {
        let packages: Vec<&str> = SHIMS.iter().map(|s| s.0).collect();
        let release = build_checked_in_shims(&packages);
        let tree = Tree::new();
        for (_, file, soname) in SHIMS {
            std::os::unix::fs::symlink(release.join(file), tree.path(&format!("lib/{soname}")))
                .expect("link a shim under its soname");
        }
        ShimDir { tree }
    }

    fn dir(&self) -> PathBuf {
        self.tree.root().join("lib")
    }
}

/// `name` built for the tests' machine, or a failure naming the package to install.
/// mesa-utils-bin installs each machine's build as `/usr/bin/NAME.MULTIARCH` (Multi-Arch:
/// same), `NAME` on PATH being the native one; a program of another machine than the
/// tests' cannot load their shims, so it fails the test too, naming the package.
fn tool(name: &str, package: &str) -> PathBuf {
    let machine = capsule_tests::machine();
    let own = Path::new("/usr/bin").join(format!("{name}.{}", machine.multiarch()));
    let path = if own.is_file() {
        own
    } else {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} not found on PATH: apt-get install {package}"))
    };
    let header = std::fs::read(&path).unwrap_or_default();
    // Scripts (sdl2-config) have no ELF header and run anywhere.
    if header.starts_with(b"\x7fELF") && header.get(4) != Some(&machine.elf_class()) {
        let debian = match machine {
            capsule_tests::Machine::X86_64 => "amd64",
            capsule_tests::Machine::X86 => "i386",
            capsule_tests::Machine::Aarch64 => "arm64",
        };
        panic!(
            "{} is not an {} program, and the shims under test are: apt-get install \
             {package}:{debian} (where Debian can install it beside the native one; \
             test.sh lists the tests the {} suite leaves out, and why)",
            path.display(),
            machine.name(),
            machine.name()
        );
    }
    path
}

/// The environment of every client run: the server, llvmpipe, no shader cache, and the
/// library path that selects `link`.
fn client_env(cmd: &mut Command, server: &DisplayServer, link: Link, shims: &ShimDir) {
    server.connect(cmd);
    cmd.env("MESA_SHADER_CACHE_DISABLE", "true")
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .env_remove("CAPSULE_PREFIX")
        .env_remove("LD_PRELOAD");
    match link {
        Link::Direct => cmd.env_remove("LD_LIBRARY_PATH"),
        Link::Shims => cmd.env("LD_LIBRARY_PATH", shims.dir()),
    };
}

/// What ld.so resolves `soname` to for `program` under `link`'s environment.
fn resolved(
    program: &Path,
    soname: &str,
    server: &DisplayServer,
    link: Link,
    shims: &ShimDir,
) -> String {
    let mut cmd = Command::new(program);
    client_env(&mut cmd, server, link, shims);
    let out = run_ok(
        cmd.env("LD_TRACE_LOADED_OBJECTS", "1"),
        "list the program's libraries",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{soname} => ")))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("{} does not load {soname}:\n{stdout}", program.display()))
        .to_string()
}

/// One client, how to run it and what a good run looks like.
struct Client<'a> {
    program: PathBuf,
    args: &'a [&'a str],
    /// Libraries it links that the shims replace (checked to resolve into the shim dir).
    shimmed: &'a [&'a str],
    /// None: it must exit by itself; Some: it must still be running after that long.
    alive_for: Option<Duration>,
    /// What is wrong with a run, if anything.
    check: &'a dyn Fn(Link, &Finished) -> Result<(), String>,
}

impl Client<'_> {
    fn run(&self, server: &DisplayServer, link: Link, shims: &ShimDir) -> Finished {
        let mut cmd = Command::new(&self.program);
        cmd.args(self.args);
        client_env(&mut cmd, server, link, shims);
        // Line-buffered, so an animation killed at the timeout has printed what it said.
        cmd.env("LD_PRELOAD", line_buffered());
        run_until(&mut cmd, self.alive_for.unwrap_or(EXIT_WITHIN))
    }

    fn judge(&self, link: Link, run: &Finished) -> Result<(), String> {
        match self.alive_for {
            Some(_) if !run.alive() => Err("exited before the timeout".into()),
            None if run.alive() => Err(format!("still running after {EXIT_WITHIN:?}")),
            _ => (self.check)(link, run),
        }
    }

    /// The control, then the run through the shims, each judged.
    fn direct_and_through_shims(&self, server: &DisplayServer) {
        let shims = ShimDir::build();
        let name = self.program.display();
        for soname in self.shimmed {
            let path = resolved(&self.program, soname, server, Link::Shims, &shims);
            assert!(
                Path::new(&path).starts_with(shims.dir()),
                "{name} must load the shim for {soname}, got {path}"
            );
        }
        let control = self.run(server, Link::Direct, &shims);
        if let Err(why) = self.judge(Link::Direct, &control) {
            panic!(
                "control: {name} linked directly (no capsule) failed on {}: {why}\n\
                 the machine's setup is broken, not the capsule\n{}\n--- server log:\n{}",
                server.name,
                control.describe(),
                server.log()
            );
        }
        let through = self.run(server, Link::Shims, &shims);
        if let Err(why) = self.judge(Link::Shims, &through) {
            panic!(
                "{name} through the shims failed on {} (linked directly it works): {why}\n{}",
                server.name,
                through.describe()
            );
        }
    }
}

/// A preload that makes stdout line-buffered, built for the tests' machine: what `stdbuf
/// -oL` does, whose libstdbuf.so is x86_64's only.
fn line_buffered() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let machine = capsule_tests::machine().name();
        let path = dir.join(format!("line-buffered-{machine}.so"));
        // Built aside and renamed over: a client of another test process may map it now.
        let fresh = dir.join(format!("line-buffered-{machine}.so.{}", std::process::id()));
        capsule_tests::build_lib(
            &capsule_tests::Lib {
                source: "#include <stdio.h>\n\
                         __attribute__((constructor)) static void line_buffered(void) {\n\
                         setvbuf(stdout, NULL, _IOLBF, 0);\n}\n",
                soname: None,
                args: &[],
            },
            &fresh,
        );
        std::fs::rename(&fresh, &path).expect("rename the line-buffering preload into place");
        path
    })
}

fn xvfb() -> DisplayServer {
    DisplayServer::xvfb(1024, 768)
}

/// Fails when neither stdout nor stderr holds `needle` (vkcube names its GPU on stderr).
fn prints(run: &Finished, needle: &str) -> Result<(), String> {
    if run.stdout.contains(needle) || run.stderr.contains(needle) {
        Ok(())
    } else {
        Err(format!("its output lacks {needle:?}"))
    }
}

/// Fails unless it exited 0 and printed `needle`.
fn exits_printing(run: &Finished, needle: &str) -> Result<(), String> {
    if !run.success() {
        return Err("it failed".into());
    }
    prints(run, needle)
}

/// Fails when it reports an error or a failure (glxgears does so on stdout).
fn no_error(run: &Finished) -> Result<(), String> {
    match run.stdout.lines().chain(run.stderr.lines()).find(|l| {
        // Not a bare "error": extension lists hold GL_KHR_no_error.
        let l = l.to_ascii_lowercase();
        l.starts_with("error") || l.contains("error:") || l.contains("fail")
    }) {
        Some(line) => Err(format!("it reported: {line}")),
        None => Ok(()),
    }
}

/// eglinfo's section for one platform (`X11`, `Wayland`) up to the next platform's.
fn eglinfo_platform_uses_swrast(run: &Finished, platform: &str) -> Result<(), String> {
    let heading = format!("{platform} platform:");
    let section: Vec<&str> = run
        .stdout
        .lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| !l.ends_with(" platform:"))
        .collect();
    // Mesa's software driver (llvmpipe) is "swrast" to EGL; this eglinfo prints no GL
    // renderer string.
    if section.contains(&"EGL driver name: swrast") {
        Ok(())
    } else {
        Err(format!(
            "the {heading} section has no `EGL driver name: swrast`: {section:#?}"
        ))
    }
}

#[test]
fn glxinfo_through_shims_renders_with_llvmpipe() {
    let server = xvfb();
    Client {
        program: tool("glxinfo", "mesa-utils-bin"),
        args: &["-B"],
        shimmed: &["libGL.so.1"],
        alive_for: None,
        check: &|_, run| exits_printing(run, "OpenGL renderer string: llvmpipe"),
    }
    .direct_and_through_shims(&server);
}

/// A GLX client built here for the tests' machine (tests/c/glx_window.c): the i386 suite's
/// GLX check, where no packaged i386 GLX client is installed.
#[test]
fn glx_window_built_for_the_machine_through_shims_reads_back_its_colour() {
    let server = xvfb();
    let work = Tree::new();
    let exe = work.path("bin/glx_window");
    let libs = ["libGL.so.1", "libX11.so.6"].map(capsule_tests::link_arg);
    let libs: Vec<&str> = libs.iter().map(String::as_str).collect();
    build_program(include_str!("../c/glx_window.c"), &exe, &libs);
    Client {
        program: exe,
        args: &[],
        shimmed: &["libGL.so.1"],
        alive_for: None,
        check: &|_, run| {
            prints(run, "renderer: llvmpipe")?;
            prints(run, "glx vendor: Mesa Project and SGI")?;
            exits_printing(run, "pixel: 255,128,0,255\n")
        },
    }
    .direct_and_through_shims(&server);
}

#[test]
fn glxgears_through_shims_keeps_running() {
    let server = xvfb();
    Client {
        program: tool("glxgears", "mesa-utils-bin"),
        args: &["-info"],
        shimmed: &["libGL.so.1"],
        alive_for: Some(ALIVE_FOR),
        check: &|_, run| {
            prints(run, "GL_RENDERER   = llvmpipe")?;
            no_error(run)
        },
    }
    .direct_and_through_shims(&server);
}

#[test]
fn es2_info_through_shims_renders_with_llvmpipe() {
    let server = xvfb();
    Client {
        program: tool("es2_info", "mesa-utils-bin"),
        args: &[],
        shimmed: &["libEGL.so.1", "libGLESv2.so.2"],
        alive_for: None,
        check: &|_, run| exits_printing(run, "GL_RENDERER: llvmpipe"),
    }
    .direct_and_through_shims(&server);
}

/// es2gears_x11 or es2gears_wayland keeps animating.
fn es2gears_keeps_running(program: &str, server: &DisplayServer) {
    Client {
        program: tool(program, "mesa-utils-bin"),
        args: &[],
        shimmed: &["libEGL.so.1", "libGLESv2.so.2"],
        alive_for: Some(ALIVE_FOR),
        // It prints nothing when it works (no FPS): running, without errors, is the result.
        check: &|_, run| no_error(run),
    }
    .direct_and_through_shims(server);
}

#[test]
fn es2gears_x11_through_shims_keeps_running() {
    es2gears_keeps_running("es2gears_x11", &xvfb());
}

#[test]
fn eglinfo_x11_platform_through_shims_uses_llvmpipe() {
    let server = xvfb();
    Client {
        program: tool("eglinfo", "mesa-utils-bin"),
        args: &[],
        shimmed: &["libEGL.so.1"],
        alive_for: None,
        // It also tries GBM and Wayland here, which fail without a GPU or a compositor and
        // still exit 0: only the X11 section counts.
        check: &|_, run| eglinfo_platform_uses_swrast(run, "X11"),
    }
    .direct_and_through_shims(&server);
}

/// vkcube (or vkcube-wayland) draws 30 frames on lavapipe and exits.
fn vkcube_renders(program: &str, server: &DisplayServer) {
    Client {
        program: tool(program, "vulkan-tools mesa-vulkan-drivers"),
        args: &["--c", "30"],
        shimmed: &["libvulkan.so.1"],
        alive_for: None,
        check: &|_, run| exits_printing(run, "Selected GPU 0: llvmpipe"),
    }
    .direct_and_through_shims(server);
}

#[test]
fn vkcube_xcb_through_shims_renders_its_frames() {
    // Debian 12's vkcube is the XCB build (vkcube-wayland is the other), without --wsi.
    vkcube_renders("vkcube", &xvfb());
}

#[test]
fn sdl2_gl_window_through_shims_reads_back_its_colour() {
    let server = xvfb();
    tool("sdl2-config", "libsdl2-dev");
    let machine = capsule_tests::machine();
    assert!(
        machine == capsule_tests::Machine::X86_64
            || capsule_tests::system_lib("libSDL2.so").exists(),
        "no {} for {}: apt-get install libsdl2-dev:{} (test.sh leaves this test out of the {} \
         suite: 125 more packages)",
        capsule_tests::system_lib("libSDL2.so").display(),
        machine.name(),
        machine.name(),
        machine.name()
    );
    let work = Tree::new();
    let exe = work.path("bin/sdl_window");
    let flags = run_ok(
        Command::new("sdl2-config").args(["--cflags", "--libs"]),
        "ask sdl2-config for SDL2's flags (apt-get install libsdl2-dev)",
    );
    let flags = String::from_utf8_lossy(&flags.stdout).into_owned();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    build_program(include_str!("../c/sdl_window.c"), &exe, &flags);
    Client {
        program: exe,
        args: &[],
        // SDL dlopens libGL.so.1 (found through LD_LIBRARY_PATH): the program names the
        // file it got.
        shimmed: &[],
        alive_for: None,
        check: &|link, run| {
            prints(run, "renderer: llvmpipe")?;
            prints(run, "pixel: 255,128,0,255\n")?;
            if !run.success() {
                return Err("it failed".into());
            }
            let libgl = run
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("libgl: "))
                .ok_or("no libgl: line")?;
            // ShimDir's tree (capsule_tests::Tree) names its directories so.
            let shim = libgl.contains("/capsule-tree-");
            match (link, shim) {
                (Link::Direct, false) | (Link::Shims, true) => Ok(()),
                _ => Err(format!("SDL loaded the wrong libGL.so.1: {libgl}")),
            }
        },
    }
    .direct_and_through_shims(&server);
}

#[test]
fn eglinfo_wayland_platform_through_shims_uses_llvmpipe() {
    let server = DisplayServer::weston();
    Client {
        program: tool("eglinfo", "mesa-utils-bin"),
        args: &[],
        shimmed: &["libEGL.so.1"],
        alive_for: None,
        check: &|_, run| eglinfo_platform_uses_swrast(run, "Wayland"),
    }
    .direct_and_through_shims(&server);
}

#[test]
fn es2gears_wayland_through_shims_keeps_running() {
    es2gears_keeps_running("es2gears_wayland", &DisplayServer::weston());
}

#[test]
fn vkcube_wayland_through_shims_renders_its_frames() {
    vkcube_renders("vkcube-wayland", &DisplayServer::weston());
}

/// The system's files of glibc and of the X11 client libraries (by canonical path prefix
/// in the system library directory): the capsule must share the program's copies.
/// ld.so itself is left out: there is only ever one, which LD_DEBUG lists in every
/// namespace.
const SHARED_WITH_THE_PROGRAM: &[&str] = &[
    "libc.so",
    "libm.so",
    "libpthread.so",
    "libdl.so",
    "librt.so",
    "libresolv.so",
    "libX11.so",
    "libX11-xcb.so",
    "libxcb.so",
    "libxcb-",
];

/// `LD_DEBUG=files` lines `file=PATH [N];  generating link map`: (PATH, N) for files ld.so
/// mapped.
fn mapped_files(ld_debug: &str) -> Vec<(String, u64)> {
    ld_debug
        .lines()
        .filter(|l| l.contains("generating link map"))
        .filter_map(|l| {
            let rest = &l[l.find("file=")? + 5..];
            let (path, rest) = rest.split_once(" [")?;
            let (lmid, _) = rest.split_once(']')?;
            Some((path.to_string(), lmid.parse().ok()?))
        })
        .collect()
}

#[test]
fn glxinfo_through_shims_loads_no_second_glibc_or_x11() {
    let server = xvfb();
    let shims = ShimDir::build();
    let glxinfo = tool("glxinfo", "mesa-utils-bin");
    let mut cmd = Command::new(&glxinfo);
    cmd.arg("-B");
    client_env(&mut cmd, &server, Link::Shims, &shims);
    let run = run_until(cmd.env("LD_DEBUG", "files"), EXIT_WITHIN);
    let files = mapped_files(&run.stderr);
    let in_capsule: Vec<&(String, u64)> = files.iter().filter(|(_, lmid)| *lmid >= 1).collect();
    // Not vacuous: the capsule's namespace exists and got as far as Mesa's GLX driver.
    assert!(
        in_capsule.iter().any(|(p, _)| p.contains("libGLX_mesa.so")),
        "no namespace >= 1 loaded libGLX_mesa.so: {files:#?}\n{}",
        run.describe()
    );
    let system = std::fs::canonicalize("/usr/lib/x86_64-linux-gnu").expect("the system lib dir");
    let second_copies: Vec<String> = in_capsule
        .iter()
        .filter_map(|(path, lmid)| {
            let real = std::fs::canonicalize(path).ok()?;
            let name = real.file_name()?.to_str()?;
            (real.parent() == Some(system.as_path())
                && SHARED_WITH_THE_PROGRAM.iter().any(|p| name.starts_with(p)))
            .then(|| format!("{path} [{lmid}]"))
        })
        .collect();
    assert!(
        second_copies.is_empty(),
        "the capsule loaded its own copies of libraries it must share with the program:\n{}",
        second_copies.join("\n")
    );
}
