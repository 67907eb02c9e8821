//! Helpers for the integration tests: fixture C libraries and programs built at test time
//! with the system C compiler, laid out in temporary trees shaped like a host filesystem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    cmd.args(["-O1", "-o"]).arg(out).arg(&src).args(args);
    run_ok(&mut cmd, "build fixture program");
}

/// The C compiler: `$CC`, else `cc`.
pub fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// Run a command, panic with its output unless it exits 0, and return the output.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
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
