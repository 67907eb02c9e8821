//! dlopen of an absolute path by code inside a capsule: the path names a file of the host
//! tree, so it is found inside the prefix (with its dependencies resolved there); the
//! program's file is used only outside the host's library directories.

use std::ffi::{c_char, CStr, CString};

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, rerun_self, Lib, Tree};

const PLUGIN: &str = r#"
int plugin_dep(void);
int plugin_id(void) { return plugin_dep(); }
"#;

const DEP: &str = "int plugin_dep(void) { return ID; }";

const LOADER: &str = r#"
#include <dlfcn.h>
/* The plugin's id, or -1 with dlerror() kept for loader_error. */
static const char *error;
int loader_id(const char *path) {
    void *h = dlopen(path, RTLD_NOW);
    if (!h) { error = dlerror(); return -1; }
    int (*id)(void) = (int (*)(void))dlsym(h, "plugin_id");
    return id ? id() : -2;
}
const char *loader_error(void) { return error ? error : ""; }
"#;

/// A plugin with id `id` at `dir/plugin.so`, needing `libdep.so.1` from `dir`.
fn plugin(tree: &Tree, dir: &str, id: i32) {
    let define = format!("-DID={id}");
    build_lib(
        &Lib {
            source: DEP,
            soname: Some("libdep.so.1"),
            args: &[&define],
        },
        &tree.path(&format!("{dir}/libdep.so.1")),
    );
    let dep_dir = tree.root().join(dir.trim_start_matches('/'));
    let link = format!("-L{}", dep_dir.display());
    build_lib(
        &Lib {
            source: PLUGIN,
            soname: None,
            args: &[
                "-Wl,--no-as-needed",
                &link,
                "-l:libdep.so.1",
                "-Wl,-rpath,$ORIGIN",
            ],
        },
        &tree.path(&format!("{dir}/plugin.so")),
    );
}

struct Fixture {
    host: Tree,
    program: Tree,
    loader: Capsule,
}

fn fixture() -> Fixture {
    let host = Tree::new();
    let program = Tree::new();
    build_lib(
        &Lib {
            source: LOADER,
            soname: Some("libloader.so.1"),
            args: &[],
        },
        &host.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libloader.so.1",
        )),
    );
    plugin(
        &host,
        &capsule_tests::for_machine("usr/lib/x86_64-linux-gnu/plugins"),
        1,
    );
    plugin(&program, "game/plugins", 2);
    let loader = Capsule::load("libloader.so.1", host.root()).expect("load the loader");
    Fixture {
        host,
        program,
        loader,
    }
}

impl Fixture {
    /// (plugin id or negative, dlerror text) for dlopen(path) inside the capsule.
    fn open(&self, path: &str) -> (i32, String) {
        // SAFETY: the fixture's C signatures.
        let id: extern "C" fn(*const c_char) -> i32 = unsafe { func(&self.loader, "loader_id") };
        let error: extern "C" fn() -> *const c_char = unsafe { func(&self.loader, "loader_error") };
        let c = CString::new(path).expect("path without NUL");
        let got = id(c.as_ptr());
        // SAFETY: loader_error returns a NUL-terminated string (dlerror's, or "").
        let message = unsafe { CStr::from_ptr(error()) }
            .to_string_lossy()
            .into_owned();
        (got, message)
    }
}

#[test]
fn an_absolute_path_is_the_host_trees_file() {
    let f = fixture();
    // Written as the host sees it: the host's plugin and the host's libdep.
    assert_eq!(
        f.open(&capsule_tests::for_machine(
            "/usr/lib/x86_64-linux-gnu/plugins/plugin.so"
        )),
        (1, String::new())
    );
    // Written as this machine sees it (a manifest's directory joined with a relative
    // library_path): the same host-tree file.
    let under_prefix = f.host.root().join(capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/plugins/plugin.so",
    ));
    assert_eq!(
        f.open(&under_prefix.display().to_string()),
        (1, String::new())
    );
}

#[test]
fn outside_the_library_directories_the_programs_file_is_used() {
    let f = fixture();
    let path = f.program.root().join("game/plugins/plugin.so");
    assert_eq!(f.open(&path.display().to_string()), (2, String::new()));
}

#[test]
fn a_library_directory_path_missing_in_the_host_is_an_error() {
    let f = fixture();
    let present = &capsule_tests::for_machine("/usr/lib/x86_64-linux-gnu/libz.so.1");
    assert!(
        std::path::Path::new(present).exists(),
        "{present} is needed on this machine for this test: apt-get install zlib1g"
    );
    let (id, message) = f.open(present);
    assert_eq!(
        id, -1,
        "the program's {present} was loaded into the capsule"
    );
    let root = f.host.root().display();
    assert!(
        message.contains(&format!("{present} not found in prefix {root}"))
            && message.contains("never taken from the program's tree"),
        "{message}"
    );
}

#[test]
fn debug_log_shows_each_mapped_path() {
    const NAME: &str = "debug_log_shows_each_mapped_path";
    if is_child(NAME) {
        let f = fixture();
        let plugin = capsule_tests::for_machine("/usr/lib/x86_64-linux-gnu/plugins/plugin.so");
        assert_eq!(f.open(&plugin).0, 1);
        // The host tree is gone when the child exits: tell the parent where it was.
        println!(
            "host-root={}",
            f.host.root().canonicalize().unwrap().display()
        );
        return;
    }
    let out = rerun_self(NAME, &[("CAPSULE_DEBUG", "dlopen")]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let root = stdout
        .lines()
        .find_map(|l| Some(l.split_once("host-root=")?.1))
        .unwrap_or_else(|| panic!("the child did not report its host tree:\n{stdout}"));
    let want = capsule_tests::for_machine(&format!(
        "capsule: dlopen path /usr/lib/x86_64-linux-gnu/plugins/plugin.so -> {root}/usr/lib/x86_64-linux-gnu/plugins/plugin.so (mapped into prefix {root})"
    ));
    assert!(
        stderr.lines().any(|l| l == want),
        "no line {want:?} in:\n{stderr}"
    );
}
