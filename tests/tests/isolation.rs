//! The core case: the program and the capsule each reach their own copy of a library
//! with the same soname, in the same process.

use capsule::Capsule;
use capsule_tests::{build_lib, func, Lib, Tree};
use std::ffi::c_int;

const DEP: &str = r#"
int dep_version(void) { return VERSION; }
"#;

const TARGET: &str = r#"
int dep_version(void);
int target_dep_version(void) { return dep_version(); }
"#;

#[test]
fn capsule_and_program_each_get_their_own_copy() {
    // The program's tree: libdep.so.1, version 1.
    let program = Tree::new();
    let dep1 = program.path("lib/libdep.so.1");
    build_lib(
        &Lib {
            source: DEP,
            soname: Some("libdep.so.1"),
            args: &["-DVERSION=1"],
        },
        &dep1,
    );
    // The host prefix: libtarget.so.1 needing libdep.so.1, version 2.
    let host = Tree::new();
    let dep2 = host.path(&capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/libdep.so.1",
    ));
    build_lib(
        &Lib {
            source: DEP,
            soname: Some("libdep.so.1"),
            args: &["-DVERSION=2"],
        },
        &dep2,
    );
    let libdir = format!("-L{}", dep2.parent().unwrap().display());
    build_lib(
        &Lib {
            source: TARGET,
            soname: Some("libtarget.so.1"),
            args: &[&libdir, "-l:libdep.so.1"],
        },
        &host.path(&capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libtarget.so.1",
        )),
    );

    // The program loads its own copy first, globally, as if it had linked it.
    // SAFETY: a fixture library built by this test; its constructors do nothing unsafe.
    let program_dep = unsafe {
        libloading::os::unix::Library::open(
            Some(&dep1),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
        )
    }
    .expect("load the program's libdep");
    let program_version: libloading::os::unix::Symbol<extern "C" fn() -> c_int> =
        // SAFETY: dep_version has this C signature in the fixture.
        unsafe { program_dep.get(b"dep_version") }.unwrap();
    assert_eq!(program_version(), 1);

    let capsule = Capsule::load("libtarget.so.1", host.root()).expect("load the capsule");
    assert_ne!(capsule.namespace_id(), 0);
    // SAFETY: the fixture defines these functions with exactly these C signatures.
    let target_version: extern "C" fn() -> c_int = unsafe { func(&capsule, "target_dep_version") };
    assert_eq!(
        target_version(),
        2,
        "the capsule must reach the prefix's libdep"
    );
    assert_eq!(
        program_version(),
        1,
        "the program must still reach its own libdep"
    );

    // The capsule's namespace lists the prefix's copy, not the program's.
    let objects = capsule.objects();
    let paths: Vec<_> = objects.iter().map(|o| o.path.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with(host.root()) && p.ends_with("libdep.so.1")),
        "namespace objects: {paths:?}"
    );
    assert!(!paths.contains(&dep1), "namespace objects: {paths:?}");
    assert_eq!(
        capsule.path(),
        host.root().join(capsule_tests::for_machine(
            "usr/lib/x86_64-linux-gnu/libtarget.so.1"
        ))
    );

    // And dlsym in the program's namespace still finds the program's copy.
    // SAFETY: dlsym with a NUL-terminated name.
    let global = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"dep_version".as_ptr()) };
    let capsule_dep = capsule.symbol("dep_version").unwrap();
    assert_ne!(global, capsule_dep.as_ptr());
}

/// `Capsule::get`: a typed symbol that borrows the capsule and derefs to the function;
/// the same address as `symbol`, the interposer's own functions included, and the same
/// error for a name the capsule lacks.
#[test]
fn typed_symbols_call_the_capsules_copy() {
    let host = Tree::new();
    let dep = host.path(&capsule_tests::for_machine(
        "usr/lib/x86_64-linux-gnu/libdep.so.1",
    ));
    build_lib(
        &Lib {
            source: DEP,
            soname: Some("libdep.so.1"),
            args: &["-DVERSION=7"],
        },
        &dep,
    );
    let capsule = Capsule::load("libdep.so.1", host.root()).unwrap();
    // SAFETY: dep_version is `int dep_version(void)`.
    let version = unsafe { capsule.get::<extern "C" fn() -> c_int>("dep_version") }.unwrap();
    assert_eq!(version(), 7);
    assert_eq!(
        version.as_ptr(),
        capsule.symbol("dep_version").unwrap().as_ptr()
    );
    // SAFETY: only the address is compared.
    let dlopen = unsafe { capsule.get::<*const u8>("dlopen") }.unwrap();
    assert_eq!(dlopen.as_ptr(), capsule.symbol("dlopen").unwrap().as_ptr());
    // SAFETY: never called: the lookup fails.
    let missing = unsafe { capsule.get::<extern "C" fn()>("not_there") }.unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!(
            "capsule: symbol not_there not found in libdep.so.1 (namespace {})",
            capsule.namespace_id()
        )
    );
}
