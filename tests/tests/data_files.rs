//! Data files at fixed paths (issue 7): code inside a capsule whose prefix is not `/`
//! reads the host's files under the data directories (`/usr/share/drirc.d`, `/etc/drirc`,
//! `/etc/vulkan`, ...), with every libc family a driver stack uses, while the program
//! reads its own. A fixture host library (`tests/c/data_reader.c`) reports what it saw.

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, rerun_self, Lib, Tree};

const READER: &str = include_str!("../c/data_reader.c");
const READER_SONAME: &str = "libdatareader.so.1";

/// A data file of the host tree that the machine running the tests lacks.
const CONF: &str = "/usr/share/drirc.d/capsule-data-files-test.conf";
const HOST_CONF: &str = "host drirc.d\n";
const OTHER: &str = "capsule-data-files-other.conf";
/// A single-file data path.
const HOST_ETC_DRIRC: &str = "<driconf><!-- host etc/drirc --></driconf>\n";
/// Not under `/usr/share/drirc.d` (a name that only starts like it).
const LOOKALIKE: &str = "/usr/share/drirc.dx/capsule-data-files-test.conf";

const OPEN: &[&str] = &[
    "open",
    "open64",
    "openat",
    "openat64",
    "__open_2",
    "__open64_2",
    "__openat_2",
    "__openat64_2",
    "fopen",
    "fopen64",
];
const STAT: &[&str] = &[
    "stat",
    "stat64",
    "lstat",
    "lstat64",
    "fstatat",
    "fstatat64",
    "statx",
    "__xstat",
    "__xstat64",
    "__lxstat",
    "__lxstat64",
    "__fxstatat",
    "__fxstatat64",
];
const ACCESS: &[&str] = &["access", "faccessat", "eaccess", "euidaccess"];
const LIST: &[&str] = &["opendir", "scandir", "scandir64"];

/// A host tree holding the reader library and the host's data files.
fn host_tree() -> Tree {
    let host = Tree::new();
    build_lib(
        &Lib {
            source: READER,
            soname: Some(READER_SONAME),
            args: &[],
        },
        &host.path(&capsule_tests::for_machine(&format!(
            "usr/lib/x86_64-linux-gnu/{READER_SONAME}"
        ))),
    );
    host.write(CONF, HOST_CONF);
    host.write(&format!("usr/share/drirc.d/{OTHER}"), "other\n");
    host.write("etc/drirc", HOST_ETC_DRIRC);
    host.write(LOOKALIKE, "not a data directory\n");
    host
}

/// The fixture library loaded into a capsule.
struct Reader(Capsule);

impl Reader {
    fn load(prefix: &Path) -> Reader {
        Reader(Capsule::load(READER_SONAME, prefix).expect("load the data reader"))
    }

    /// `entry(how, path)` of the fixture: what the host library saw.
    fn call(&self, entry: &str, how: &str, path: &str) -> String {
        // SAFETY: every entry of the fixture is `const char *(const char *, const char *)`.
        let f: extern "C" fn(*const c_char, *const c_char) -> *const c_char =
            unsafe { func(&self.0, entry) };
        let how = CString::new(how).expect("no NUL");
        let path = CString::new(path).expect("no NUL");
        // SAFETY: the fixture returns a NUL-terminated string (a literal or its buffer).
        unsafe { CStr::from_ptr(f(how.as_ptr(), path.as_ptr())) }
            .to_string_lossy()
            .into_owned()
    }

    fn read(&self, how: &str, path: &str) -> String {
        self.call("read_with", how, path)
    }

    fn resolve(&self, path: &str) -> String {
        self.call("resolve", "", path)
    }
}

/// The sorted names in `dir` as the program sees them, or the error's kind.
fn program_listing(dir: &str) -> Result<Vec<String>, std::io::ErrorKind> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| e.kind())?
        .map(|e| {
            e.expect("read an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    Ok(names)
}

fn assert_machine_lacks(path: &str) {
    assert!(
        std::fs::symlink_metadata(path).is_err(),
        "this test needs a machine without {path} (the test's own name for a host-only file)"
    );
}

#[test]
fn the_capsule_reads_the_hosts_data_files_with_every_libc_family() {
    assert_machine_lacks(CONF);
    let host = host_tree();
    let reader = Reader::load(host.root());

    for how in OPEN {
        assert_eq!(reader.read(how, CONF), HOST_CONF, "{how}({CONF})");
    }
    // Repeated slashes still name the data directory.
    let doubled = CONF.replace('/', "//");
    assert_eq!(reader.read("open", &doubled), HOST_CONF, "open({doubled})");
    // A single file as a data path.
    assert_eq!(reader.read("fopen", "/etc/drirc"), HOST_ETC_DRIRC);

    let size = format!("size={}", HOST_CONF.len());
    for how in STAT {
        assert_eq!(reader.call("size_with", how, CONF), size, "{how}({CONF})");
    }
    for how in ACCESS {
        assert_eq!(
            reader.call("access_with", how, CONF),
            "readable",
            "{how}({CONF})"
        );
    }
    // The directory the capsule lists is the host's, whatever the program's holds.
    let listed = format!("{OTHER} capsule-data-files-test.conf");
    for how in LIST {
        assert_eq!(
            reader.call("list_with", how, "/usr/share/drirc.d"),
            listed,
            "{how}(/usr/share/drirc.d)"
        );
    }
    let canonical = std::fs::canonicalize(host.root()).expect("canonical prefix");
    assert_eq!(
        reader.resolve(CONF),
        format!("{}{CONF}", canonical.display()),
        "realpath names the host's file"
    );

    // The program still sees its own tree.
    assert_eq!(
        std::fs::read(CONF).map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::NotFound),
        "the program must not see the host's data file"
    );
    assert_ne!(
        std::fs::read_to_string("/etc/drirc").ok().as_deref(),
        Some(HOST_ETC_DRIRC)
    );
    let names = program_listing("/usr/share/drirc.d").unwrap_or_else(|e| {
        panic!(
            "/usr/share/drirc.d: {e:?}: the program's listing cannot be checked without it \
             (libgl1-mesa-dri installs it; see the README's test packages)"
        )
    });
    assert!(
        !names.iter().any(|n| n == OTHER),
        "the program lists the host's directory: {names:?}"
    );
}

/// A data file that is an absolute symlink of the host tree, twice over, as Debian's
/// alternatives make them (`/usr/share/vulkan/icd.d/nvidia_icd.json` ->
/// `/etc/alternatives/...` -> `/usr/lib/...`).
const ALTERNATIVE: &str = "/usr/share/drirc.d/capsule-data-files-alternative.conf";
const ALTERNATIVES_LINK: &str = "/etc/alternatives/capsule-data-files-test";
const VENDOR_FILE: &str = "/opt/capsule-data-files-vendor/vendor.conf";
const HOST_VENDOR: &str = "host vendor conf, reached through two absolute symlinks\n";

#[test]
fn absolute_symlinks_in_the_host_tree_are_followed_inside_the_prefix() {
    for path in [ALTERNATIVE, ALTERNATIVES_LINK, VENDOR_FILE] {
        assert_machine_lacks(path);
    }
    let host = host_tree();
    host.write(VENDOR_FILE, HOST_VENDOR);
    std::fs::create_dir_all(host.path("etc/alternatives")).expect("mkdir");
    std::os::unix::fs::symlink(
        VENDOR_FILE,
        host.path(ALTERNATIVES_LINK.trim_start_matches('/')),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(
        ALTERNATIVES_LINK,
        host.path(ALTERNATIVE.trim_start_matches('/')),
    )
    .expect("symlink");
    let reader = Reader::load(host.root());

    for how in OPEN {
        assert_eq!(
            reader.read(how, ALTERNATIVE),
            HOST_VENDOR,
            "{how}({ALTERNATIVE})"
        );
    }
    for how in ["stat", "stat64", "__xstat", "fstatat"] {
        assert_eq!(
            reader.call("size_with", how, ALTERNATIVE),
            format!("size={}", HOST_VENDOR.len()),
            "{how}({ALTERNATIVE}) follows the links inside the prefix"
        );
    }
    // lstat stats the link itself (its size is the length of its target).
    for how in ["lstat", "lstat64", "__lxstat"] {
        assert_eq!(
            reader.call("size_with", how, ALTERNATIVE),
            format!("size={}", ALTERNATIVES_LINK.len()),
            "{how}({ALTERNATIVE})"
        );
    }
    let canonical = std::fs::canonicalize(host.root()).expect("canonical prefix");
    assert_eq!(
        reader.resolve(ALTERNATIVE),
        format!("{}{VENDOR_FILE}", canonical.display()),
        "realpath names the host's vendor file"
    );
}

#[test]
fn paths_outside_the_data_directories_are_not_rewritten() {
    assert_machine_lacks("/usr/share/drirc.dx");
    let host = host_tree();
    let reader = Reader::load(host.root());
    // Component boundaries: /usr/share/drirc.dx is not under /usr/share/drirc.d.
    assert_eq!(reader.read("open", LOOKALIKE), "open: ENOENT");
    // The program's own files elsewhere stay readable as they are.
    let program = Tree::new();
    let file = program.write("program-file.txt", "the program's file\n");
    let file = file.display().to_string();
    assert_eq!(reader.read("open", &file), "the program's file\n");
    assert_eq!(reader.read("fopen", &file), "the program's file\n");
    // A path already inside the prefix names the host's file and is not mapped again.
    let inside = format!("{}{CONF}", host.root().display());
    assert_eq!(reader.read("open", &inside), HOST_CONF);
}

/// A path under `/usr/share/drirc.d` of exactly `len` bytes, each component short.
fn long_data_path(len: usize) -> String {
    let mut path = String::from("/usr/share/drirc.d");
    while path.len() + 5 <= len {
        path.push_str("/dir0");
    }
    while path.len() < len {
        path.push('x');
    }
    assert_eq!(path.len(), len);
    path
}

#[test]
fn a_rewritten_path_longer_than_path_max_fails_instead_of_reading_the_programs_file() {
    let host = host_tree();
    let reader = Reader::load(host.root());
    // Short enough for the kernel as written (it would answer ENOENT), too long once the
    // prefix is put in front.
    let path = long_data_path(4090);
    assert_eq!(reader.read("open", &path), "open: ENAMETOOLONG");
    assert_eq!(reader.read("fopen", &path), "fopen: ENAMETOOLONG");
    assert_eq!(
        reader.call("size_with", "stat", &path),
        "stat: ENAMETOOLONG"
    );
    assert_eq!(
        std::fs::read(&path).map_err(|e| e.raw_os_error()).err(),
        Some(Some(libc::ENOENT)),
        "the program's view of the same path"
    );
}

/// The reader loaded with the prefix `/`, by absolute path (the prefix `/` is this
/// machine's tree, where the fixture is not installed).
fn reader_with_root_prefix(host: &Tree) -> Reader {
    let path = host.root().join(capsule_tests::for_machine(&format!(
        "usr/lib/x86_64-linux-gnu/{READER_SONAME}"
    )));
    Reader(
        Capsule::load(&path.display().to_string(), Path::new("/"))
            .expect("load the data reader with the prefix /"),
    )
}

#[test]
fn with_the_prefix_root_nothing_is_rewritten() {
    assert_machine_lacks(CONF);
    let host = host_tree();
    let reader = reader_with_root_prefix(&host);
    // The program's tree is the capsule's: the same answers.
    assert_eq!(reader.read("open", CONF), "open: ENOENT");
    let listing = reader.call("list_with", "scandir", "/usr/share/drirc.d");
    match program_listing("/usr/share/drirc.d") {
        Ok(names) => assert_eq!(listing, names.join(" ")),
        Err(_) => assert_eq!(listing, "scandir: ENOENT"),
    }
    // A path of 4095 bytes fits PATH_MAX as written; it would not with any prefix put
    // in front, so the kernel's ENOENT shows that nothing was put there.
    let path = long_data_path(4095);
    assert_eq!(reader.read("open", &path), "open: ENOENT");
}

const DEBUG_CHILD: &str = "debug_output_lists_data_directories_and_each_rewrite";

#[test]
fn debug_output_lists_data_directories_and_each_rewrite() {
    if is_child(DEBUG_CHILD) {
        let host = PathBuf::from(std::env::var_os("DATA_FILES_HOST").expect("host tree"));
        let reader = if std::env::var_os("DATA_FILES_ROOT_PREFIX").is_some() {
            let path = host.join(capsule_tests::for_machine(&format!(
                "usr/lib/x86_64-linux-gnu/{READER_SONAME}"
            )));
            Reader(Capsule::load(&path.display().to_string(), Path::new("/")).expect("load"))
        } else {
            Reader::load(&host)
        };
        println!("read: {}", reader.read("open", CONF).trim_end());
        return;
    }
    let host = host_tree();
    let canonical = std::fs::canonicalize(host.root()).expect("canonical prefix");
    let root = host.root().display().to_string();
    let out = rerun_self(
        DEBUG_CHILD,
        &[("CAPSULE_DEBUG", "libs,files"), ("DATA_FILES_HOST", &root)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("read: host drirc.d"), "{stdout}\n{stderr}");
    let c = canonical.display();
    for dir in capsule::hostenv::DATA_PATHS {
        let line = format!("data files under {dir} are read from {c}{dir}\n");
        assert_eq!(stderr.matches(&line).count(), 1, "{line}\n{stderr}");
    }
    assert!(
        stderr.contains(&format!("capsule: data file {CONF} -> {c}{CONF} (open)\n")),
        "{stderr}"
    );

    // With the prefix `/`: no data directory, no rewrite.
    let out = rerun_self(
        DEBUG_CHILD,
        &[
            ("CAPSULE_DEBUG", "libs,files"),
            ("DATA_FILES_HOST", &root),
            ("DATA_FILES_ROOT_PREFIX", "1"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("read: open: ENOENT"), "{stdout}\n{stderr}");
    assert!(stderr.contains("namespace "), "no libs output: {stderr}");
    assert!(
        !stderr.contains("data file"),
        "the prefix / must map nothing:\n{stderr}"
    );
}

const SANDBOX_CHILD: &str =
    "in_a_sandbox_the_capsule_reads_the_hosts_copy_and_the_program_the_runtimes";
const RUNTIME_CONF: &str = "runtime drirc.d\n";
const RUNTIME_ONLY: &str = "/usr/share/drirc.d/runtime-only.conf";

/// In a bubblewrap sandbox shaped like a container: the host tree at /run/host, the
/// runtime's own `/usr/share/drirc.d` with a file of the same name as the host's but
/// other content, and one the host lacks.
#[test]
fn in_a_sandbox_the_capsule_reads_the_hosts_copy_and_the_program_the_runtimes() {
    if is_child(SANDBOX_CHILD) {
        let reader = Reader::load(Path::new("/run/host"));
        assert_eq!(std::fs::read_to_string(CONF).unwrap(), RUNTIME_CONF);
        for how in OPEN {
            assert_eq!(reader.read(how, CONF), HOST_CONF, "{how}");
        }
        // The host lacks it: missing for the capsule, though the runtime has it.
        assert!(std::fs::read(RUNTIME_ONLY).is_ok());
        assert_eq!(reader.read("open", RUNTIME_ONLY), "open: ENOENT");
        assert_eq!(reader.read("fopen", RUNTIME_ONLY), "fopen: ENOENT");
        assert_eq!(
            reader.call("access_with", "access", RUNTIME_ONLY),
            "access: ENOENT"
        );
        assert_eq!(
            reader.call("list_with", "scandir", "/usr/share/drirc.d"),
            format!("{OTHER} capsule-data-files-test.conf")
        );
        assert_eq!(
            program_listing("/usr/share/drirc.d").unwrap(),
            ["capsule-data-files-test.conf", "runtime-only.conf"]
        );
        println!("sandbox checks passed");
        return;
    }
    let found = Command::new("bwrap").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "bubblewrap is needed for the sandbox tests: apt-get install bubblewrap ({found:?})"
    );
    let host = host_tree();
    let runtime = Tree::new();
    runtime.write("drirc.d/capsule-data-files-test.conf", RUNTIME_CONF);
    runtime.write("drirc.d/runtime-only.conf", "runtime only\n");
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        .args(["--tmpfs", "/run", "--ro-bind"])
        .arg(host.root())
        .arg("/run/host")
        // The runtime's /usr/share, holding only its drirc.d (made whether or not this
        // machine has one).
        .args(["--tmpfs", "/usr/share", "--ro-bind"])
        .arg(runtime.root().join("drirc.d"))
        .arg("/usr/share/drirc.d")
        .args(["--die-with-parent", "--"])
        .args(capsule_tests::emulator())
        .arg(exe)
        .args([SANDBOX_CHILD, "--exact", "--nocapture", "--test-threads=1"])
        .env("CAPSULE_TEST_CHILD", SANDBOX_CHILD)
        .env("CAPSULE_DEBUG", "files")
        .output()
        .expect("run bwrap");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("sandbox checks passed"),
        "{}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains(&format!(
            "capsule: data file {RUNTIME_ONLY} -> /run/host{RUNTIME_ONLY} (fopen)"
        )),
        "{stderr}"
    );
}
