//! dlopen, dlsym and dlclose called by code inside a capsule stay inside it.

use capsule::Capsule;
use capsule_tests::{build_lib, func, is_child, libc_images_mapped, rerun_self, Lib, Tree};
use std::ffi::{c_char, c_int, c_void, CStr};

const PLUGIN: &str = r#"
#include <stdlib.h>
#include <string.h>
static char *buffer;
/* malloc called by the plugin itself: under RTLD_DEEPBIND it would bind in the plugin's
   own scope (its libc) first. */
__attribute__((constructor)) static void init(void) {
    buffer = malloc(64);
    strcpy(buffer, "made by the plugin's constructor");
}
int plugin_id(void) { return ID; }
char *plugin_buffer(void) { char *b = buffer; buffer = 0; return b; }
"#;

const LOADER: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
static void *plugin;
int loader_open(void) { plugin = dlopen("libplugin.so.1", RTLD_NOW | RTLD_GLOBAL); return plugin != 0; }
int loader_open_missing(void) { return dlopen("libnothere.so.9", RTLD_NOW) != 0; }
const char *loader_error(void) { return dlerror(); }
static int call(void *f) { return f ? ((int (*)(void))f)() : -1; }
int loader_default_id(void) { return call(dlsym(RTLD_DEFAULT, "plugin_id")); }
int loader_handle_id(void) { return call(dlsym(plugin, "plugin_id")); }
int loader_self_id(void) { void *self = dlopen(0, RTLD_NOW); return call(dlsym(self, "plugin_id")); }
char *loader_plugin_buffer(void) { return ((char *(*)(void))dlsym(plugin, "plugin_buffer"))(); }
void *loader_lookup(const char *name) { return dlsym(RTLD_DEFAULT, name); }
void *loader_next(const char *name) { return dlsym(RTLD_NEXT, name); }
int loader_close(void) { return dlclose(plugin); }
/* Paths that could reach the namespace's own allocator, each routed all the same. */
char *loader_deepbind_buffer(void) {
    void *h = dlopen("libdeep.so.1", RTLD_NOW | RTLD_DEEPBIND);
    return h ? ((char *(*)(void))dlsym(h, "plugin_buffer"))() : 0;
}
void *loader_libc_malloc(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return libc ? dlsym(libc, "malloc") : 0;
}
"#;

struct Fixture {
    host: Tree,
    decoy: Tree,
}

fn fixture() -> Fixture {
    let host = Tree::new();
    let decoy = Tree::new();
    build_lib(
        &Lib {
            source: PLUGIN,
            soname: Some("libplugin.so.1"),
            args: &["-DID=2"],
        },
        &host.path("usr/lib/plugins/libplugin.so.1"),
    );
    build_lib(
        &Lib {
            source: PLUGIN,
            soname: Some("libdeep.so.1"),
            args: &["-DID=3"],
        },
        &host.path("usr/lib/plugins/libdeep.so.1"),
    );
    build_lib(
        &Lib {
            source: PLUGIN,
            soname: Some("libplugin.so.1"),
            args: &["-DID=1"],
        },
        &decoy.path("lib/libplugin.so.1"),
    );
    // The loader finds its plugin through its RUNPATH, as drivers find their modules.
    build_lib(
        &Lib {
            source: LOADER,
            soname: Some("libloader.so.1"),
            args: &["-Wl,-rpath,$ORIGIN/plugins", "-Wl,--enable-new-dtags"],
        },
        &host.path("usr/lib/libloader.so.1"),
    );
    Fixture { host, decoy }
}

#[test]
fn plugin_dlopened_with_rtld_global_inside_the_capsule() {
    const NAME: &str = "plugin_dlopened_with_rtld_global_inside_the_capsule";
    if !is_child(NAME) {
        let f = fixture();
        // The decoy sits on the program's library path; glibc's malloc checks are on, so
        // a pointer freed by the wrong allocator aborts the child.
        let out = rerun_self(
            NAME,
            &[
                ("CAPSULE_TEST_HOST", f.host.root().to_str().unwrap()),
                ("LD_LIBRARY_PATH", f.decoy.path("lib").to_str().unwrap()),
                ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
                ("LD_PRELOAD", "libc_malloc_debug.so.0"),
                ("CAPSULE_DEBUG", "dlopen"),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "child failed: {}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains("capsule: dlopen(\"libplugin.so.1\", RTLD_NOW|RTLD_GLOBAL)"),
            "{stderr}"
        );
        // Each lookup says where it went.
        assert!(
            stderr.lines().any(|l| l
                .starts_with("capsule: dlsym(RTLD_DEFAULT, \"plugin_id\") from libloader.so.1")
                && l.ends_with("in libplugin.so.1")),
            "{stderr}"
        );
        return;
    }
    let host = std::env::var("CAPSULE_TEST_HOST").unwrap();
    let capsule = Capsule::load("libloader.so.1", host.as_ref()).expect("load libloader");
    // SAFETY: the fixture's functions are called with the C signatures they have, on pointers they or the program allocated, each freed once.
    unsafe {
        let open: extern "C" fn() -> c_int = func(&capsule, "loader_open");
        let error: extern "C" fn() -> *const c_char = func(&capsule, "loader_error");
        let default_id: extern "C" fn() -> c_int = func(&capsule, "loader_default_id");
        let handle_id: extern "C" fn() -> c_int = func(&capsule, "loader_handle_id");
        let self_id: extern "C" fn() -> c_int = func(&capsule, "loader_self_id");
        let buffer: extern "C" fn() -> *mut c_char = func(&capsule, "loader_plugin_buffer");
        let lookup: extern "C" fn(*const c_char) -> *mut c_void = func(&capsule, "loader_lookup");
        let next: extern "C" fn(*const c_char) -> *mut c_void = func(&capsule, "loader_next");
        let close: extern "C" fn() -> c_int = func(&capsule, "loader_close");
        let open_missing: extern "C" fn() -> c_int = func(&capsule, "loader_open_missing");

        assert_eq!(
            open(),
            1,
            "dlopen inside the capsule failed: {:?}",
            CStr::from_ptr(error())
        );
        assert_eq!(
            handle_id(),
            2,
            "dlsym on the handle must reach the prefix's plugin"
        );
        assert_eq!(
            default_id(),
            2,
            "RTLD_GLOBAL must make the plugin visible to RTLD_DEFAULT"
        );
        assert_eq!(
            self_id(),
            2,
            "dlopen(NULL) inside the capsule searches the capsule's scope"
        );

        // The plugin landed in the capsule's namespace, from the prefix.
        let objects = capsule.objects();
        assert!(
            objects
                .iter()
                .any(|o| o.path
                    == std::path::Path::new(&host).join("usr/lib/plugins/libplugin.so.1")),
            "{objects:?}"
        );
        assert!(!objects.iter().any(|o| o.path.starts_with("/tmp")
            && o.path.ends_with("lib/libplugin.so.1")
            && !o.path.starts_with(&host)));

        // Its constructor's allocation is the program's to free.
        let b = buffer();
        assert_eq!(
            CStr::from_ptr(b).to_str().unwrap(),
            "made by the plugin's constructor"
        );
        libc::free(b as *mut c_void);

        // The allocator stays routed whoever asks for it.
        let routed = capsule.symbol("malloc").unwrap().as_ptr();
        assert_eq!(lookup(c"malloc".as_ptr()), routed);
        assert_eq!(next(c"malloc".as_ptr()), routed);
        assert!(lookup(c"no_such_symbol".as_ptr()).is_null());
        let msg = CStr::from_ptr(error()).to_string_lossy().into_owned();
        assert!(msg.contains("no_such_symbol"), "{msg}");

        // Errors name what was searched.
        assert_eq!(open_missing(), 0);
        let msg = CStr::from_ptr(error()).to_string_lossy().into_owned();
        assert!(
            msg.contains("libnothere.so.9") && msg.contains("not found"),
            "{msg}"
        );
        assert!(error().is_null(), "dlerror clears after reporting");

        // RTLD_DEEPBIND puts the plugin's own scope (its libc included) before the
        // interposer; the flag is dropped, so its constructor's allocation is routed too.
        let deep: extern "C" fn() -> *mut c_char = func(&capsule, "loader_deepbind_buffer");
        let b = deep();
        assert!(!b.is_null(), "{:?}", CStr::from_ptr(error()));
        libc::free(b as *mut c_void);
        // Asking libc itself for malloc gets the routed one.
        let libc_malloc: extern "C" fn() -> *mut c_void = func(&capsule, "loader_libc_malloc");
        assert_eq!(libc_malloc(), routed);
        assert_eq!(
            libc_images_mapped(),
            1,
            "a second libc was mapped into the process"
        );

        // dlclose drops the plugin: out of RTLD_DEFAULT's scope, and unloaded.
        assert_eq!(close(), 0);
        assert_eq!(default_id(), -1);
        assert!(!capsule
            .objects()
            .iter()
            .any(|o| o.path.ends_with("libplugin.so.1")));
        // And it can be opened again (the runtime asks glibc what is loaded, it keeps no
        // stale list).
        assert_eq!(
            open(),
            1,
            "dlopen after dlclose: {:?}",
            CStr::from_ptr(error())
        );
        assert_eq!(handle_id(), 2);
        assert_eq!(close(), 0);
    }
}
