//! Memory protections after loading capsules, patching slots and dlopen inside a capsule:
//! no writable+executable mapping anywhere in the process, every RELRO range of every
//! object (both namespaces) read-only, and no file-backed page more writable than before.
//!
//! One test in this binary, so no other test maps or unmaps anything while it compares
//! `/proc/self/maps` snapshots.

use std::ffi::{c_int, c_void, CStr};
use std::ops::Range;
use std::path::Path;

use capsule::elf::{LinkMap, Object};
use capsule::patch::{self, Expect};
use capsule::Capsule;
use capsule_tests::{build_lib, func, Lib, Tree};

/// Dlopens its plugin from inside the capsule; the plugin's GOT (strdup, free) lies in RELRO.
const LOADER: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
static void *plugin;
int loader_open(void) { plugin = dlopen("libprotplugin.so.1", RTLD_NOW); return plugin != 0; }
int loader_call(void) { return ((int (*)(void))dlsym(plugin, "plugin_work"))(); }
"#;

const PLUGIN: &str = r#"
#include <stdlib.h>
#include <string.h>
int plugin_work(void) { char *s = strdup("relro"); int n = (int)strlen(s); free(s); return n; }
"#;

/// Base-namespace pair for the slot rewriter: `caller` imports `value` through its GOT.
const CALLEE: &str = "int value(void) { return 42; }\n";
const CALLER: &str = r#"
extern int value(void);
int (*const table[1])(void) = { value };
int call_table(void) { return table[0](); }
"#;

extern "C" fn replacement() -> c_int {
    7
}

#[test]
fn loading_patching_and_dlopen_leave_no_writable_code_or_relro() {
    let fixtures = build_fixtures();
    let before = read_maps();

    let caller = dlopen(&fixtures.base.join("libprotcaller.so"));
    let call_table: extern "C" fn() -> c_int = dlsym(caller, "call_table");
    assert_eq!(call_table(), 42);
    let object = object_of(call_table as usize);
    // SAFETY: `replacement` has `value`'s signature and lives as long as the program; the
    // library stays loaded (never dlclosed).
    let report = unsafe {
        patch::rewrite_symbol(
            &object,
            "value",
            None,
            replacement as *const () as usize,
            Expect::Any,
        )
    }
    .expect("rewrite value's slots in libprotcaller");
    assert!(report.rewritten >= 1, "no slot rewritten: {report:?}");
    assert_eq!(call_table(), 7, "the RELRO slot was not rewritten");

    let loader = Capsule::load("libprotloader.so.1", fixtures.host.root())
        .expect("load the loader into a capsule");
    // SAFETY: both are `int (void)` in LOADER.
    let (open, call): (extern "C" fn() -> c_int, extern "C" fn() -> c_int) =
        unsafe { (func(&loader, "loader_open"), func(&loader, "loader_call")) };
    assert_eq!(open(), 1, "dlopen inside the capsule failed");
    assert_eq!(call(), 5);
    let zlib = Capsule::load("libz.so.1", Path::new("/")).expect("load libz.so.1 from /");
    let version = zlib.symbol("zlibVersion").expect("zlibVersion");

    let after = read_maps();
    assert_no_writable_code(&after);

    let base_objects = namespace_objects(call_table as usize);
    let capsule_objects = namespace_objects(open as usize);
    let zlib_objects = namespace_objects(version.as_ptr() as usize);
    assert!(
        capsule_objects
            .iter()
            .any(|o| o.name().ends_with("libprotplugin.so.1")),
        "the dlopened plugin is not in the capsule's namespace"
    );
    let mut checked = 0;
    for object in base_objects
        .iter()
        .chain(&capsule_objects)
        .chain(&zlib_objects)
    {
        if let Some(relro) = object.relro() {
            assert_read_only(&after, object.name(), relro);
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "only {checked} objects with RELRO found: the walk over the namespaces is broken"
    );
    assert_no_page_more_writable(&before, &after);
}

struct Fixtures {
    host: Tree,
    base: std::path::PathBuf,
    _base_tree: Tree,
}

fn build_fixtures() -> Fixtures {
    let host = Tree::new();
    let lib_dir = capsule_tests::for_machine("usr/lib/x86_64-linux-gnu");
    build_lib(
        &Lib {
            source: PLUGIN,
            soname: Some("libprotplugin.so.1"),
            args: &["-Wl,-z,now"],
        },
        &host.path(&format!("{lib_dir}/libprotplugin.so.1")),
    );
    build_lib(
        &Lib {
            source: LOADER,
            soname: Some("libprotloader.so.1"),
            args: &["-ldl"],
        },
        &host.path(&format!("{lib_dir}/libprotloader.so.1")),
    );
    let base_tree = Tree::new();
    let base = base_tree.path("lib/.keep").parent().unwrap().to_path_buf();
    build_lib(
        &Lib {
            source: CALLEE,
            soname: Some("libprotcallee.so"),
            args: &[],
        },
        &base.join("libprotcallee.so"),
    );
    let (link, rpath) = (
        format!("-L{}", base.display()),
        format!("-Wl,-rpath,{}", base.display()),
    );
    build_lib(
        &Lib {
            source: CALLER,
            soname: Some("libprotcaller.so"),
            args: &[&link, "-lprotcallee", &rpath, "-Wl,-z,now"],
        },
        &base.join("libprotcaller.so"),
    );
    Fixtures {
        host,
        base,
        _base_tree: base_tree,
    }
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone)]
struct Mapping {
    range: Range<usize>,
    perms: String,
    inode: u64,
    path: String,
}

impl Mapping {
    fn writable(&self) -> bool {
        self.perms.as_bytes()[1] == b'w'
    }
    fn executable(&self) -> bool {
        self.perms.as_bytes()[2] == b'x'
    }
}

fn read_maps() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines().map(parse_mapping).collect()
}

fn parse_mapping(line: &str) -> Mapping {
    parse_mapping_fields(line).unwrap_or_else(|| panic!("unexpected /proc/self/maps line: {line}"))
}

fn parse_mapping_fields(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (range, perms) = (fields.next()?, fields.next()?);
    let (_offset, _dev) = (fields.next()?, fields.next()?);
    let inode = fields.next()?.parse().ok()?;
    let path = fields.collect::<Vec<_>>().join(" ");
    let (start, end) = range.split_once('-')?;
    let hex = |s: &str| usize::from_str_radix(s, 16).ok();
    Some(Mapping {
        range: hex(start)?..hex(end)?,
        perms: perms.to_string(),
        inode,
        path,
    })
}

fn assert_no_writable_code(maps: &[Mapping]) {
    let wx: Vec<_> = maps
        .iter()
        .filter(|m| m.writable() && m.executable())
        .collect();
    assert!(wx.is_empty(), "writable+executable mappings: {wx:#?}");
}

fn assert_read_only(maps: &[Mapping], object: &str, relro: Range<usize>) {
    let covering: Vec<_> = maps
        .iter()
        .filter(|m| m.range.start < relro.end && relro.start < m.range.end)
        .collect();
    assert!(
        !covering.is_empty(),
        "{object}: RELRO {relro:#x?} is not mapped at all"
    );
    let covered: usize = covering
        .iter()
        .map(|m| m.range.end.min(relro.end) - m.range.start.max(relro.start))
        .sum();
    assert_eq!(
        covered,
        relro.len(),
        "{object}: RELRO {relro:#x?} only partly mapped: {covering:#?}"
    );
    for m in covering {
        assert!(
            !m.writable(),
            "{object}: RELRO {relro:#x?} is writable: {m:?}"
        );
    }
}

/// Every file-backed page mapped before and still mapped from the same file is not
/// writable or executable now unless it was before. Anonymous memory is left out: malloc
/// legitimately turns its reserved PROT_NONE arena pages read-write as the heap grows.
fn assert_no_page_more_writable(before: &[Mapping], after: &[Mapping]) {
    for old in before.iter().filter(|m| m.path.starts_with('/')) {
        for new in after.iter().filter(|n| {
            n.inode == old.inode
                && n.path == old.path
                && n.range.start < old.range.end
                && old.range.start < n.range.end
        }) {
            assert!(
                (old.writable() || !new.writable()) && (old.executable() || !new.executable()),
                "a page became more permissive: before {old:?}, after {new:?}"
            );
        }
    }
}

/// Every object in the link-map namespace of the object that holds `address`.
fn namespace_objects(address: usize) -> Vec<Object<'static>> {
    let mut link_map = link_map_of(address);
    // SAFETY: link maps of loaded objects form a doubly linked list that glibc keeps valid
    // while the objects stay loaded; nothing is dlclosed during this test.
    unsafe {
        while !(*link_map).l_prev.is_null() {
            link_map = (*link_map).l_prev;
        }
    }
    let mut objects = Vec::new();
    while !link_map.is_null() {
        // SAFETY: as above; the objects stay loaded until the process ends.
        let object = unsafe { Object::from_link_map(link_map) }
            .unwrap_or_else(|e| panic!("view of a loaded object: {e}"));
        objects.push(object);
        // SAFETY: as above.
        link_map = unsafe { (*link_map).l_next };
    }
    objects
}

fn object_of(address: usize) -> Object<'static> {
    // SAFETY: the object holding `address` stays loaded for the rest of the test.
    unsafe { Object::from_link_map(link_map_of(address)) }
        .unwrap_or_else(|e| panic!("view of the object at {address:#x}: {e}"))
}

fn link_map_of(address: usize) -> *const LinkMap {
    const RTLD_DL_LINKMAP: c_int = 2;
    extern "C" {
        fn dladdr1(
            address: *const c_void,
            info: *mut libc::Dl_info,
            extra: *mut *mut c_void,
            flags: c_int,
        ) -> c_int;
    }
    // SAFETY: Dl_info is plain data that dladdr1 fills in.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut link_map: *mut c_void = std::ptr::null_mut();
    // SAFETY: both out-pointers are valid; dladdr1 only reads `address` as a key.
    let found = unsafe {
        dladdr1(
            address as *const c_void,
            &mut info,
            &mut link_map,
            RTLD_DL_LINKMAP,
        )
    };
    assert!(
        found != 0 && !link_map.is_null(),
        "no loaded object holds {address:#x}"
    );
    link_map as *const LinkMap
}

fn dlopen(path: &Path) -> *mut c_void {
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; the fixture has no constructors.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW) };
    assert!(
        !handle.is_null(),
        "dlopen {}: {}",
        path.display(),
        dlerror()
    );
    handle
}

fn dlsym<F: Copy>(handle: *mut c_void, name: &str) -> F {
    let cname = std::ffi::CString::new(name).unwrap();
    // SAFETY: `handle` came from dlopen and stays open.
    let address = unsafe { libc::dlsym(handle, cname.as_ptr()) };
    assert!(!address.is_null(), "dlsym {name}: {}", dlerror());
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: callers name F as the symbol's C function type.
    unsafe { std::mem::transmute_copy(&address) }
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated message.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "no dlerror message".into();
    }
    // SAFETY: see above.
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}
