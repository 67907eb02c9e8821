//! Helpers for the integration tests: fixture C libraries and programs built at test time
//! with the system C compiler, laid out in temporary trees shaped like a host filesystem.
//!
//! Everything is built for the test binary's own architecture: with `cargo test --target
//! i686-unknown-linux-gnu` the fixtures are compiled with `-m32` and the shims with
//! `--target i686-unknown-linux-gnu` (see [`machine`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use capsule::machine::Machine;

/// The machine the tests run on: the test binary's (`cargo test --target ...`).
pub fn machine() -> Machine {
    Machine::NATIVE
}

/// The Rust target the tests were built for, when it is not cargo's host: shims and other
/// cargo builds of the tests then pass `--target` with it.
pub fn cross_target() -> Option<&'static str> {
    let (target, host) = (env!("CAPSULE_TESTS_TARGET"), env!("CAPSULE_TESTS_HOST"));
    (target != host).then_some(target)
}

/// The emulator the test binary runs under (`qemu-aarch64`), as the cargo runner of
/// `.cargo/config.toml` names it: programs built for the tests' machine must be started
/// through it too (see [`program`]), as this machine has no binfmt handler for them.
pub fn emulator() -> Option<String> {
    std::env::var("CAPSULE_TESTS_EMULATOR")
        .ok()
        .filter(|e| !e.is_empty())
}

/// A command that runs `path`, a program built for the tests' machine: under the
/// [`emulator`] when there is one.
pub fn program(path: impl AsRef<std::ffi::OsStr>) -> Command {
    program_with(path, &[])
}

/// [`program`] with variables that steer the dynamic linker (`LD_PRELOAD`,
/// `GLIBC_TUNABLES`): under the emulator they are set for the emulated program alone
/// (`qemu-aarch64 -E NAME=VALUE`), since the emulator is a dynamically linked program of
/// this machine.
pub fn program_with(path: impl AsRef<std::ffi::OsStr>, loader_env: &[(&str, &str)]) -> Command {
    match emulator() {
        Some(emulator) => {
            let mut cmd = Command::new(emulator);
            for (name, value) in loader_env {
                cmd.arg("-E").arg(format!("{name}={value}"));
            }
            cmd.arg(path);
            cmd
        }
        None => {
            let mut cmd = Command::new(path);
            cmd.envs(loader_env.iter().copied());
            cmd
        }
    }
}

/// The C compiler driver of this checkout for aarch64 on another machine
/// (`.cargo/aarch64-linux-gnu-cc`: the cross gcc, else clang), when the tests are
/// cross-built for aarch64; `CC_aarch64_unknown_linux_gnu` overrides it, as for the cc
/// crate.
fn aarch64_cross_cc() -> Option<std::ffi::OsString> {
    if cross_target() != Some(Machine::Aarch64.rust_target()) {
        return None;
    }
    Some(
        std::env::var_os("CC_aarch64_unknown_linux_gnu").unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../.cargo/aarch64-linux-gnu-cc")
                .into()
        }),
    )
}

/// What a cargo build for the tests' target run outside this workspace's directory (a
/// shim crate) needs besides `--target`: the linker and C compiler that
/// `.cargo/config.toml` gives builds inside it.
pub fn cross_build_env(cmd: &mut Command) {
    if let Some(cc) = aarch64_cross_cc() {
        cmd.env("CC_aarch64_unknown_linux_gnu", &cc);
        if std::env::var_os("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER").is_none() {
            cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", &cc);
        }
    }
}

/// cargo's output directory for a `--release` build of the tests' target under
/// `target_dir`: `release`, or `TRIPLE/release` when cross-building.
pub fn release_dir(target_dir: &Path) -> PathBuf {
    match cross_target() {
        Some(triple) => target_dir.join(triple).join("release"),
        None => target_dir.join("release"),
    }
}

/// What the C compiler needs to build for [`machine`] (`-m32` for i386).
pub fn cc_machine_args() -> &'static [&'static str] {
    cc_args_for(machine())
}

/// What the C compiler (Debian's x86_64 gcc, with gcc-multilib) needs to build for
/// `machine`.
pub fn cc_args_for(machine: Machine) -> &'static [&'static str] {
    match machine {
        Machine::X86 => &["-m32"],
        Machine::X86_64 => &["-m64"],
        Machine::Aarch64 => &[],
    }
}

/// The machine's library directory under `/usr/lib` and `/lib`: `x86_64-linux-gnu`,
/// `i386-linux-gnu`.
pub fn multiarch() -> &'static str {
    machine().multiarch()
}

/// The symbol version of glibc's oldest ABI on [`machine`] (`malloc@GLIBC_2.2.5` on
/// x86_64, `malloc@GLIBC_2.0` on i386).
pub fn glibc_base_version() -> &'static str {
    match machine() {
        Machine::X86_64 => "GLIBC_2.2.5",
        Machine::X86 => "GLIBC_2.0",
        Machine::Aarch64 => "GLIBC_2.17",
    }
}

/// The vDSO's soname on [`machine`].
pub fn vdso_soname() -> &'static str {
    match machine() {
        Machine::X86 => "linux-gate.so.1",
        _ => "linux-vdso.so.1",
    }
}

/// `path` for [`machine`]: x86_64's multiarch directory (`x86_64-linux-gnu`) in it
/// replaced by the machine's (`i386-linux-gnu`), so that one fixture layout serves both.
pub fn for_machine(path: &str) -> String {
    path.replace("x86_64-linux-gnu", multiarch())
}

/// This machine's `/usr/lib/MULTIARCH/NAME` (the system's copy of a library).
pub fn system_lib(name: &str) -> PathBuf {
    Path::new("/usr/lib").join(multiarch()).join(name)
}

/// A temporary directory tree laid out like a filesystem root (`usr/lib/...`, `etc/...`).
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// A new, empty tree.
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::Builder::new()
                .prefix("capsule-tree-")
                .tempdir()
                .expect("create a temporary directory"),
        }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/relative`, with its parent directories created.
    pub fn path(&self, relative: &str) -> PathBuf {
        let path = self.root().join(relative.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        path
    }

    /// Write a text file at `root/relative`.
    /// The tree's `etc/ld.so.cache`, made by `ldconfig -r` from its `etc/ld.so.conf`.
    pub fn make_ld_so_cache(&self) {
        run_ok(
            Command::new("ldconfig")
                .arg("-r")
                .arg(self.root())
                .arg("-X"),
            "ldconfig -r TREE -X (needs root) to make the fixture's ld.so.cache",
        );
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path(relative);
        std::fs::write(&path, contents).expect("write fixture file");
        path
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

/// How to build one fixture shared library.
pub struct Lib<'a> {
    /// C source of the library.
    pub source: &'a str,
    /// DT_SONAME, if any.
    pub soname: Option<&'a str>,
    /// Extra arguments for the compiler/linker (`-L`, `-l`, `-Wl,-rpath,...`, `-m32`, ...).
    pub args: &'a [&'a str],
}

/// Compile `lib` into a shared object at `out`. Panics with the compiler's output on failure.
pub fn build_lib(lib: &Lib<'_>, out: &Path) {
    let dir = tempfile::tempdir().expect("temporary build directory");
    let src = dir.path().join("lib.c");
    std::fs::write(&src, lib.source).expect("write C source");
    let mut cmd = Command::new(cc());
    cmd.args(cc_machine_args());
    cmd.args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(out)
        .arg(&src);
    if let Some(soname) = lib.soname {
        cmd.arg(format!("-Wl,-soname,{soname}"));
    }
    cmd.args(lib.args);
    run_ok(&mut cmd, "build fixture library");
}

/// Compile a C program from `source` into `out`, with extra compiler/linker arguments.
pub fn build_program(source: &str, out: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().expect("temporary build directory");
    let src = dir.path().join("main.c");
    std::fs::write(&src, source).expect("write C source");
    let mut cmd = Command::new(cc());
    cmd.args(cc_machine_args());
    cmd.args(["-O1", "-o"]).arg(out).arg(&src).args(args);
    run_ok(&mut cmd, "build fixture program");
}

/// A binutils program (`nm`, `strip`) that reads the tests' machine's files: Debian's
/// cross one (`aarch64-linux-gnu-nm`, binutils-aarch64-linux-gnu) for aarch64 tests built
/// on another machine; this machine's reads x86_64's and i386's.
pub fn binutil(name: &str) -> String {
    match aarch64_cross_cc() {
        Some(_) => format!("aarch64-linux-gnu-{name}"),
        None => name.to_string(),
    }
}

/// The C compiler: for aarch64 tests built on another machine the cross driver, else
/// `$CC`, else `cc`.
pub fn cc() -> std::ffi::OsString {
    aarch64_cross_cc()
        .or_else(|| std::env::var_os("CC"))
        .unwrap_or_else(|| "cc".into())
}

/// Run a command, panic with its output unless it exits 0, and return the output.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert_succeeded(&out, &format!("{what}: {cmd:?}"));
    out
}

/// Panic with `out`'s status and output unless it exited 0.
pub fn assert_succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `capsule-gen` binary of this workspace, built (once per test process) with cargo.
pub fn capsule_gen() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        run_ok(
            Command::new(env!("CARGO"))
                .current_dir(&workspace)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "capsule-gen",
                    "--message-format=short",
                ])
                .args(["--bin", "capsule-gen"]),
            "build capsule-gen",
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let bin = target.join("debug/capsule-gen");
        assert!(
            bin.is_file(),
            "capsule-gen was built but {} is missing",
            bin.display()
        );
        bin
    })
    .clone()
}

/// Build the generated shim crate in `crate_dir` with `cargo build --release` (and
/// `--target` when the tests are cross-built, see [`cross_target`]), sharing `target_dir`
/// between shims so the runtime is compiled once, and return the built library
/// (`target_dir/release/lib<NAME>.so`, or `target_dir/TRIPLE/release/...`). Uses this workspace's Cargo.lock, offline,
/// so the shim gets the dependency versions the workspace was tested with.
pub fn build_shim(crate_dir: &Path, target_dir: &Path) -> PathBuf {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    // A standalone crate (with its own [workspace] table) gets the workspace's lock file;
    // a workspace member (the checked-in shims) already uses it, and must stay as the
    // generator wrote it.
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap_or_default();
    let standalone = manifest.lines().any(|l| l.trim() == "[workspace]");
    if standalone && !crate_dir.join("Cargo.lock").exists() {
        std::fs::copy(&lock, crate_dir.join("Cargo.lock"))
            .expect("copy the workspace's Cargo.lock");
    }
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .args(["build", "--release", "--offline", "--quiet"]);
    if let Some(triple) = cross_target() {
        build.args(["--target", triple]);
    }
    cross_build_env(&mut build);
    let out = run_ok(&mut build, "build generated shim crate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("warning"),
        "the generated crate in {} builds with warnings:\n{stderr}",
        crate_dir.display()
    );
    let manifest =
        std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("read shim Cargo.toml");
    let lib = manifest
        .lines()
        .skip_while(|l| l.trim() != "[lib]")
        .find_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"'))
        .expect("the shim's Cargo.toml has a [lib] name");
    release_dir(target_dir).join(format!("lib{lib}.so"))
}

/// The defined dynamic symbols of `lib` as `nm -D --defined-only --with-symbol-versions`
/// lists them, reduced to `CLASS name[@[@]VERSION]` with CLASS `code`, `data`, `tls` or
/// `abs`: addresses and the exact type letter (T vs i, D vs B) may differ between a shim
/// and the real library, the kind of thing may not.
pub fn nm_exports(lib: &Path) -> std::collections::BTreeSet<String> {
    let out = run_ok(
        Command::new(binutil("nm"))
            .args(["-D", "--defined-only", "--with-symbol-versions"])
            .arg(lib),
        "list dynamic symbols (needs binutils' nm)",
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_addr, letter, name) = (fields.next()?, fields.next()?, fields.next()?);
            let class = match letter {
                "T" | "t" | "i" | "W" | "w" => "code",
                "A" => "abs",
                _ => "data",
            };
            Some(format!("{class} {name}"))
        })
        .collect()
}

/// Re-run the current test binary with only test `name`, with `envs` set, and return its
/// output: for tests that need a fresh process (tunables, preloads, namespace limits).
pub fn rerun_self(name: &str, envs: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("current test binary");
    let (loader_env, others): (Vec<_>, Vec<_>) = envs
        .iter()
        .copied()
        .partition(|(k, _)| k.starts_with("LD_") || *k == "GLIBC_TUNABLES");
    let mut cmd = program_with(exe, &loader_env);
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("CAPSULE_TEST_CHILD", name)
        .envs(others);
    cmd.output().expect("re-run the test binary")
}

/// Whether this process is the child that `rerun_self(name, ..)` started.
pub fn is_child(name: &str) -> bool {
    std::env::var("CAPSULE_TEST_CHILD").as_deref() == Ok(name)
}

/// Look up `name` in `capsule` as a function pointer of type `F`.
///
/// # Safety
/// `F` must be an `extern "C" fn` type matching the symbol's real C signature.
pub unsafe fn func<F: Copy>(capsule: &capsule::Capsule, name: &str) -> F {
    // SAFETY: the caller promises F is the right function-pointer type.
    *unsafe { capsule.get::<F>(name) }.unwrap_or_else(|e| panic!("look up {name}: {e}"))
}

/// Overwrite bytes of a built file at `offset` (to make a fixture ELF of another class or
/// machine, or otherwise damaged).
pub fn patch_bytes(path: &Path, offset: usize, bytes: &[u8]) {
    let mut contents = std::fs::read(path).expect("read file to patch");
    assert!(
        offset + bytes.len() <= contents.len(),
        "patch past the end of {}",
        path.display()
    );
    contents[offset..offset + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, contents).expect("write patched file");
}

impl Tree {
    /// A symlink at `root/link` pointing at `target` (written as given, not joined).
    pub fn symlink(&self, link: &str, target: &str) -> PathBuf {
        let path = self.path(link);
        std::os::unix::fs::symlink(target, &path).expect("create fixture symlink");
        path
    }
}

/// Generate a shim for `library` (a soname looked up in `prefix`) with the built
/// `capsule-gen` into `out`, build it in `target_dir`, and return the built `.so`.
pub fn generate_and_build_shim(
    library: &str,
    prefix: &Path,
    out: &Path,
    target_dir: &Path,
) -> PathBuf {
    run_ok(
        Command::new(capsule_gen())
            .arg("--prefix")
            .arg(prefix)
            .arg("--out")
            .arg(out)
            .args(["--target", machine().rust_target()])
            .arg(library),
        "generate shim",
    );
    build_shim(&out.join(library), target_dir)
}

/// Copy a built shim into `lib_dir` under its link name (for `-l`) and its soname (for
/// the dynamic linker).
pub fn install_shim(shim: &Path, soname: &str, lib_dir: &Path) {
    std::fs::create_dir_all(lib_dir).expect("create the shim directory");
    std::fs::copy(
        shim,
        lib_dir.join(shim.file_name().expect("shim file name")),
    )
    .expect("install the shim under its link name");
    std::fs::copy(shim, lib_dir.join(soname)).expect("install the shim under its soname");
}

/// Every file under `dir` (but `target/`), relative to it, with its bytes.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("cannot list {}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("read a directory entry").path();
            if path.is_dir() {
                if path.file_name() != Some("target".as_ref()) {
                    stack.push(path);
                }
            } else {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

/// The directory of the checked-in shims for `machine`: `shims/` for x86_64 (members of
/// the workspace), `shims/i386/` (a workspace of its own, built with `--target`).
pub fn checked_in_shims_dir(machine: Machine) -> PathBuf {
    let shims = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shims");
    match machine {
        Machine::X86_64 => shims,
        other => shims.join(other.name()),
    }
}

/// Build the shims checked in for [`machine`] (see [`checked_in_shims_dir`]) in release,
/// in the workspace's target directory, and return the directory holding the built `.so`
/// files.
pub fn build_checked_in_shims(packages: &[&str]) -> PathBuf {
    build_checked_in_shims_for(machine(), packages)
}

/// [`build_checked_in_shims`] for `machine`, whatever the tests' own.
pub fn build_checked_in_shims_for(machine: Machine, packages: &[&str]) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace.join("target"), PathBuf::from);
    let mut build = Command::new(env!("CARGO"));
    build
        .current_dir(checked_in_shims_dir(machine))
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--release", "--offline", "--quiet"]);
    // x86_64's are built as the workspace builds them (no --target: the same files).
    if machine != Machine::X86_64 {
        build.args(["--target", machine.rust_target()]);
    }
    cross_build_env(&mut build);
    for package in packages {
        build.args(["-p", package]);
    }
    run_ok(&mut build, "build the checked-in shims");
    if machine == Machine::X86_64 {
        target.join("release")
    } else {
        target.join(machine.rust_target()).join("release")
    }
}

/// How many distinct libc files are mapped into this process (`/proc/self/maps`): 1
/// when every capsule shares the program's libc, as it must.
pub fn libc_images_mapped() -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let files: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| {
            let name = path.rsplit('/').next().unwrap_or(path);
            name == "libc.so.6" || (name.starts_with("libc-") && name.ends_with(".so"))
        })
        .collect();
    files.len()
}

/// Where the sandboxes of [`sandbox_without_host_driver`] mount the machine's real root.
pub const SANDBOX_HOST: &str = "/run/host";

/// The machine's graphics driver files that a container runtime would not have: the
/// directories are hidden under empty tmpfs mounts, the libraries bound over by an empty
/// file (their sonames stay, so a program that finds them fails to load them).
const HOST_DRIVER_DIRS: &[&str] = &[
    "/usr/share/glvnd",
    "/usr/share/vulkan",
    "/etc/glvnd",
    "/etc/vulkan",
    "/usr/lib/x86_64-linux-gnu/dri",
    "/usr/lib/i386-linux-gnu/dri",
];
const HOST_DRIVER_LIBS: &[&str] = &[
    "libEGL_mesa.so",
    "libGLX_mesa.so",
    "libvulkan_",
    "libVkLayer_",
    "libgbm.so",
];

/// A `bwrap` command (append the program and its arguments) for a sandbox shaped like
/// pressure-vessel's: its root is this machine's root, read-only, with the host's graphics
/// driver hidden (see `HOST_DRIVER_DIRS`), and the real root mounted read-only at
/// [`SANDBOX_HOST`]. `binds` are extra `(source, destination)` read-only bind mounts,
/// applied last (to put a runtime's own copy of a library in place). Needs bubblewrap
/// (`apt-get install bubblewrap`) and the privileges to create mount namespaces (root, or
/// unprivileged user namespaces).
pub fn sandbox_without_host_driver(work: &Tree, binds: &[(&Path, &Path)]) -> Command {
    let found = Command::new("bwrap").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "bubblewrap is needed for the sandbox tests: apt-get install bubblewrap ({found:?})"
    );
    let empty = work.write("sandbox/empty-driver", "");
    let mut cmd = Command::new("bwrap");
    cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--tmpfs", "/run", "--ro-bind", "/", SANDBOX_HOST]);
    for dir in HOST_DRIVER_DIRS.iter().filter(|d| Path::new(d).is_dir()) {
        cmd.args(["--tmpfs", dir]);
    }
    for lib in host_driver_libraries() {
        cmd.arg("--ro-bind").arg(&empty).arg(lib);
    }
    for (source, destination) in binds {
        cmd.arg("--ro-bind").arg(source).arg(destination);
    }
    cmd.args(["--die-with-parent", "--"]);
    cmd
}

/// The files (symlinks resolved) of this machine's driver libraries in its library
/// directory, each once.
fn host_driver_libraries() -> std::collections::BTreeSet<PathBuf> {
    let dir = system_lib("");
    let dir = dir.as_path();
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            HOST_DRIVER_LIBS.iter().any(|p| name.starts_with(p))
        })
        .filter_map(|e| std::fs::canonicalize(e.path()).ok())
        .collect()
}

/// A display server started for one test (a private Xvfb display or a headless weston),
/// killed with its whole process group when dropped, so also when the test panics.
pub struct DisplayServer {
    child: std::process::Child,
    /// `DISPLAY` (`:N`) or `WAYLAND_DISPLAY` (the socket's name).
    pub name: String,
    /// weston's private `XDG_RUNTIME_DIR` (mode 0700); removed after the server.
    pub runtime_dir: Option<tempfile::TempDir>,
    log: PathBuf,
}

impl DisplayServer {
    /// `Xvfb :N -screen 0 WIDTHxHEIGHTx24 -nolisten tcp` on a display number no other server
    /// holds, ready once its socket `/tmp/.X11-unix/XN` exists.
    pub fn xvfb(width: u32, height: u32) -> DisplayServer {
        use std::sync::atomic::{AtomicU32, Ordering};
        // Tests of one binary run in parallel, and other test binaries (and people) start
        // servers too: numbers start per process and move on past any that is taken.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = 100 + std::process::id() % 400 * 10;
        for _ in 0..40 {
            let n = base + NEXT.fetch_add(1, Ordering::Relaxed);
            let socket = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if socket.exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
                continue;
            }
            let mut cmd = Command::new("Xvfb");
            cmd.arg(format!(":{n}"))
                .args(["-screen", "0", &format!("{width}x{height}x24")])
                .args(["-nolisten", "tcp"]);
            // Another server may have taken the number since: then Xvfb exits, try the next.
            // Its socket may appear before ours exits: the lock file names the owner.
            // (Dropping the loser stops it.)
            if let Some(server) = DisplayServer::start(cmd, format!(":{n}"), None, &socket) {
                let owner = std::fs::read_to_string(format!("/tmp/.X{n}-lock"))
                    .ok()
                    .and_then(|pid| pid.trim().parse::<u32>().ok());
                if owner == Some(server.child.id()) {
                    return server;
                }
            }
        }
        panic!("could not start Xvfb on any of 40 display numbers from :{base}");
    }

    /// `weston --backend=headless-backend.so --socket=NAME --use-pixman` with a private 0700
    /// `XDG_RUNTIME_DIR`, ready once the socket exists there.
    pub fn weston() -> DisplayServer {
        let runtime_dir = tempfile::Builder::new()
            .prefix("capsule-xdg-")
            .tempdir()
            .expect("create XDG_RUNTIME_DIR");
        // tempfile makes it 0700 already; the Wayland libraries insist on it.
        std::fs::set_permissions(
            runtime_dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod 0700 XDG_RUNTIME_DIR");
        let name = "capsule-test".to_string();
        let socket = runtime_dir.path().join(&name);
        let mut cmd = Command::new("weston");
        cmd.args(["--backend=headless-backend.so", "--use-pixman"])
            .arg(format!("--socket={name}"))
            .env("XDG_RUNTIME_DIR", runtime_dir.path())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        DisplayServer::start(cmd, name, Some(runtime_dir), &socket)
            .expect("weston exited before its socket appeared")
    }

    /// Start `cmd` in its own process group and wait (up to 20 s) for `socket`; None when the
    /// server exits first.
    fn start(
        mut cmd: Command,
        name: String,
        runtime_dir: Option<tempfile::TempDir>,
        socket: &Path,
    ) -> Option<DisplayServer> {
        use std::os::unix::process::CommandExt;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let log = std::env::temp_dir().join(format!(
            "capsule-{program}-{}-{}.log",
            std::process::id(),
            name.trim_start_matches(':')
        ));
        let file = std::fs::File::create(&log).expect("create the server's log file");
        cmd.stdin(std::process::Stdio::null())
            .stdout(file.try_clone().expect("dup the log file"))
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {program} ({e}): apt-get install xvfb weston (.ci/run installs them)"
            )
        });
        let mut server = DisplayServer {
            child,
            name,
            runtime_dir,
            log,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !socket.exists() {
            if let Ok(Some(status)) = server.child.try_wait() {
                eprintln!(
                    "{program} {} exited with {status}:\n{}",
                    server.name,
                    server.log()
                );
                return None;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{program} {}: no socket {} after 20 s:\n{}",
                server.name,
                socket.display(),
                server.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(server)
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Point `cmd` at this server alone: an X display, or a Wayland socket and its runtime
    /// directory (and no X display, so a client cannot fall back to one).
    pub fn connect(&self, cmd: &mut Command) {
        match &self.runtime_dir {
            None => cmd.env("DISPLAY", &self.name).env_remove("WAYLAND_DISPLAY"),
            Some(dir) => cmd
                .env("WAYLAND_DISPLAY", &self.name)
                .env("XDG_RUNTIME_DIR", dir.path())
                .env_remove("DISPLAY"),
        };
    }
}

impl Drop for DisplayServer {
    fn drop(&mut self) {
        // The whole group (weston starts helper clients of its own), politely first: a
        // server killed outright leaves its lock file and socket behind.
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) on the process group this server leads.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // SAFETY: as above; whatever of the group is left.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// How a program run by [`run_until`] ended.
pub struct Finished {
    /// The exit status, or None when it was still running at the timeout (and was killed).
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Still running at the timeout: what success looks like for an animation that never
    /// ends by itself (glxgears, es2gears).
    pub fn alive(&self) -> bool {
        self.status.is_none()
    }

    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The status and both outputs, for assertion messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "still running at the timeout (killed)".into(),
        };
        format!(
            "{status}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Run `cmd` in its own process group, killing the group after `timeout`; its output goes
/// to files (a pipe nobody reads could block it).
pub fn run_until(cmd: &mut Command, timeout: std::time::Duration) -> Finished {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().expect("temporary output directory");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("create stderr file"))
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kill(2) on the process group this child leads.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            child.wait().expect("reap the killed program");
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Finished {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// The checked-in shims of this machine's GL and Vulkan stack: (package, built file,
/// soname).
pub const CHECKED_IN_SHIMS: &[(&str, &str, &str)] = &[
    ("shim-libegl-so-1", "libEGL.so", "libEGL.so.1"),
    ("shim-libgl-so-1", "libGL.so", "libGL.so.1"),
    ("shim-libglesv2-so-2", "libGLESv2.so", "libGLESv2.so.2"),
    ("shim-libglx-so-0", "libGLX.so", "libGLX.so.0"),
    (
        "shim-libgldispatch-so-0",
        "libGLdispatch.so",
        "libGLdispatch.so.0",
    ),
    ("shim-libopengl-so-0", "libOpenGL.so", "libOpenGL.so.0"),
    ("shim-libvulkan-so-1", "libvulkan.so", "libvulkan.so.1"),
];

/// What the demo game (`examples/game/game.c`) is built with, its source being copied
/// elsewhere: the directory of its scene header, and the libraries it links.
pub fn game_build_args() -> Vec<String> {
    let game_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/game");
    let mut args = vec![format!("-I{}", game_dir.display())];
    args.extend(
        ["libEGL.so.1", "libGL.so.1", "libX11.so.6"]
            .iter()
            .map(|soname| link_arg(soname)),
    );
    args.extend(["-lz", "-lm", "-lpthread"].iter().map(|s| s.to_string()));
    args
}

/// The linker argument for a system library by its soname: `-lEGL` where the development
/// package installs the link name (x86_64 here), `-l:libEGL.so.1` for [`machine`]s whose
/// Debian packages here are runtime packages only (i386).
pub fn link_arg(soname: &str) -> String {
    match machine() {
        Machine::X86_64 => {
            let stem = soname.strip_prefix("lib").unwrap_or(soname);
            format!("-l{}", stem.split(".so").next().unwrap_or(stem))
        }
        _ => format!("-l:{soname}"),
    }
}
