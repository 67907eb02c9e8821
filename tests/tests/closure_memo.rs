//! Closures remembered across processes (`capsule::prefix`, `memo`): recalled when the
//! files that decided them are unchanged, searched again when one changed or a directory
//! tried before gained the library. Each load runs in a child
//! process with its own cache directory.

use std::path::Path;

use capsule::Capsule;
use capsule_tests::{build_lib, is_child, rerun_self, Lib, Tree};

const CHILD: &str = "load_and_call";

/// Child: load `MEMO_LIB` from `MEMO_PREFIX` and print what its `MEMO_SYMBOL` (an
/// `int (void)` function) returns.
#[test]
fn load_and_call() {
    if !is_child(CHILD) {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} unset"));
    let capsule = Capsule::load(&var("MEMO_LIB"), Path::new(&var("MEMO_PREFIX")))
        .unwrap_or_else(|e| panic!("load: {e}"));
    // SAFETY: every library these tests load defines the symbol as `int (void)`.
    let f: extern "C" fn() -> i32 = unsafe { capsule_tests::func(&capsule, &var("MEMO_SYMBOL")) };
    println!("RESULT={}", f());
}

/// Run the child; (what the function returned, the child's stderr).
fn load(cache: &Path, prefix: &Path, library: &str, symbol: &str) -> (String, String) {
    let out = rerun_self(
        CHILD,
        &[
            ("CAPSULE_CACHE_DIR", cache.to_str().unwrap()),
            ("CAPSULE_DEBUG", "libs"),
            ("MEMO_PREFIX", prefix.to_str().unwrap()),
            ("MEMO_LIB", library),
            ("MEMO_SYMBOL", symbol),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let result = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT=").map(|(_, r)| r.to_string()))
        .unwrap_or_else(|| panic!("no RESULT= line:\n{stdout}\n{stderr}"));
    (result, stderr)
}

fn memos(cache: &Path) -> usize {
    std::fs::read_dir(cache)
        .map(|dir| {
            dir.filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".memo")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn the_machines_libz_is_recalled_by_the_next_process() {
    let cache = tempfile::tempdir().unwrap();
    let (version, first) = load(
        cache.path(),
        Path::new("/"),
        "libz.so.1",
        "zlibCompileFlags",
    );
    assert!(!first.contains("closure remembered in"), "{first}");
    assert_eq!(memos(cache.path()), 1, "{first}");
    let (again, second) = load(
        cache.path(),
        Path::new("/"),
        "libz.so.1",
        "zlibCompileFlags",
    );
    assert_eq!(again, version, "the same zlib answers");
    assert!(
        second.contains("libz.so.1: closure remembered in"),
        "{second}"
    );
    // Each object's line is the one the search printed (not the forwarder's line, whose
    // file the first run loads from memory: see forwarder::remembered).
    let object_lines = |stderr: &str| -> Vec<String> {
        stderr
            .lines()
            .filter(|l| l.contains(" => ") && !l.contains("shared with the program"))
            .map(str::to_string)
            .collect()
    };
    let (mut searched, mut remembered) = (object_lines(&first), object_lines(&second));
    searched.sort();
    remembered.sort();
    assert!(searched
        .iter()
        .any(|l| l.contains("libz.so.1 => ") && l.ends_with("(cache)")));
    assert_eq!(remembered, searched);
}

fn fixture_lib(tree: &Tree, inside: &str, soname: &str, returns: i32) {
    let source = format!("int value(void) {{ return {returns}; }}\n");
    build_lib(
        &Lib {
            source: &source,
            soname: Some(soname),
            args: &[],
        },
        &tree.path(inside),
    );
}

#[test]
fn a_changed_library_or_directory_is_searched_again() {
    let tree = Tree::new();
    fixture_lib(&tree, "opt/m/libmemo.so.1", "libmemo.so.1", 1);
    tree.write("etc/ld.so.conf", "/opt/m\n");
    tree.make_ld_so_cache();
    // Found in a default directory, not through the cache.
    fixture_lib(&tree, "usr/lib/libplain.so.1", "libplain.so.1", 7);
    let cache = tempfile::tempdir().unwrap();

    // Files changed in the last seconds are not trusted to show a next change.
    let (value, stderr) = load(cache.path(), tree.root(), "libmemo.so.1", "value");
    assert_eq!(value, "1");
    assert!(stderr.contains("changed in the last seconds"), "{stderr}");
    assert_eq!(memos(cache.path()), 0);

    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (_, stderr) = load(cache.path(), tree.root(), "libmemo.so.1", "value");
    assert_eq!(memos(cache.path()), 1, "{stderr}");
    let (value, stderr) = load(cache.path(), tree.root(), "libmemo.so.1", "value");
    assert_eq!(value, "1");
    assert!(stderr.contains("closure remembered in"), "{stderr}");

    // A new build of the library (a new file at the same path): searched again.
    fixture_lib(&tree, "opt/m/libmemo.so.1", "libmemo.so.1", 2);
    let (value, stderr) = load(cache.path(), tree.root(), "libmemo.so.1", "value");
    assert_eq!(value, "2", "the remembered closure was used:\n{stderr}");
    assert!(
        stderr.contains("remembered closure set aside") && stderr.contains("libmemo.so.1"),
        "{stderr}"
    );

    // A library found by trying the default directories depended on what the earlier
    // ones did not hold: remembered with those directories' identities, and searched
    // again once one of them holds the library.
    let (value, stderr) = load(cache.path(), tree.root(), "libplain.so.1", "value");
    assert_eq!(value, "7");
    assert!(!stderr.contains("not remembered"), "{stderr}");
    let (value, stderr) = load(cache.path(), tree.root(), "libplain.so.1", "value");
    assert_eq!(value, "7");
    assert!(
        stderr.contains("libplain.so.1: closure remembered in"),
        "{stderr}"
    );
    let earlier = Path::new(capsule::machine::Machine::NATIVE.default_dirs()[0])
        .strip_prefix("/")
        .unwrap()
        .join("libplain.so.1");
    fixture_lib(&tree, earlier.to_str().unwrap(), "libplain.so.1", 8);
    let (value, stderr) = load(cache.path(), tree.root(), "libplain.so.1", "value");
    assert_eq!(value, "8", "the remembered closure was used:\n{stderr}");
    assert!(stderr.contains("remembered closure set aside"), "{stderr}");
}

#[test]
fn a_damaged_memo_is_set_aside() {
    let cache = tempfile::tempdir().unwrap();
    let (version, _) = load(
        cache.path(),
        Path::new("/"),
        "libz.so.1",
        "zlibCompileFlags",
    );
    let memo = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "memo"))
        .expect("a memo was written");
    let bytes = std::fs::read(&memo).unwrap();
    std::fs::write(&memo, &bytes[..bytes.len() / 2]).unwrap();
    let (again, stderr) = load(
        cache.path(),
        Path::new("/"),
        "libz.so.1",
        "zlibCompileFlags",
    );
    assert_eq!(again, version);
    assert!(!stderr.contains("closure remembered in"), "{stderr}");
    // Searched and remembered anew, whole.
    let (_, stderr) = load(
        cache.path(),
        Path::new("/"),
        "libz.so.1",
        "zlibCompileFlags",
    );
    assert!(stderr.contains("closure remembered in"), "{stderr}");
}

/// A library whose `value` dlopens a plugin that needs a library the capsule holds.
const LOADER: &str = r#"
#include <dlfcn.h>
int dep(void);
int value(void) {
    void *plugin = dlopen("libplugin.so.1", RTLD_NOW);
    if (!plugin) return -1;
    int (*plugin_value)(void) = (int (*)(void))dlsym(plugin, "plugin_value");
    return plugin_value ? plugin_value() + dep() : -2;
}
"#;

#[test]
fn a_dlopen_inside_a_capsule_is_remembered_without_what_the_capsule_holds() {
    let tree = Tree::new();
    let lib = |inside: &str, soname: &str, source: &str, args: &[&str]| {
        build_lib(
            &Lib {
                source,
                soname: Some(soname),
                args,
            },
            &tree.path(inside),
        )
    };
    lib(
        "opt/m/libdep.so.1",
        "libdep.so.1",
        "int dep(void) { return 5; }\n",
        &[],
    );
    let link = format!("-L{}", tree.path("opt/m").display());
    std::os::unix::fs::symlink("libdep.so.1", tree.path("opt/m/libdep.so")).unwrap();
    lib(
        "opt/m/libplugin.so.1",
        "libplugin.so.1",
        "int dep(void);\nint plugin_value(void) { return dep() + 1; }\n",
        &[&link, "-ldep"],
    );
    lib(
        "opt/m/libloader.so.1",
        "libloader.so.1",
        LOADER,
        &[&link, "-ldep", "-ldl"],
    );
    tree.write("etc/ld.so.conf", "/opt/m\n");
    tree.make_ld_so_cache();
    // Files changed in the last seconds are not remembered (see the test above).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let cache = tempfile::tempdir().unwrap();

    let (value, first) = load(cache.path(), tree.root(), "libloader.so.1", "value");
    assert_eq!(value, "11", "{first}");
    assert!(!first.contains("closure remembered in"), "{first}");
    // The loader's closure and the plugin's, both decided by ld.so.cache alone.
    assert_eq!(memos(cache.path()), 2, "{first}");

    let (again, second) = load(cache.path(), tree.root(), "libloader.so.1", "value");
    assert_eq!(again, "11", "{second}");
    assert!(
        second.contains("dlopen libplugin.so.1: closure remembered in"),
        "{second}"
    );
    // libdep, which the capsule holds already, is not announced for the plugin again.
    let plugin_lines: Vec<&str> = second
        .lines()
        .skip_while(|l| !l.contains("dlopen libplugin.so.1: closure remembered"))
        .take_while(|l| !l.contains("dlopen(\""))
        .collect();
    assert!(
        plugin_lines
            .iter()
            .any(|l| l.starts_with("capsule: libplugin.so.1 =>"))
            && !plugin_lines
                .iter()
                .any(|l| l.starts_with("capsule: libdep.so.1 =>")),
        "{second}"
    );
}
