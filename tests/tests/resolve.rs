//! Prefix resolution against fixture trees built at test time, and the real machine.

use std::path::{Path, PathBuf};

use capsule::prefix::{Closure, Object, Origin, Prefix};
use capsule::Error;
use capsule_tests::{build_lib, patch_bytes, Lib, Tree};

/// Build a library with soname `soname` at `inside` (a path of `tree`), defining a
/// function named after the soname; `args` are extra compiler/linker arguments.
fn lib(tree: &Tree, inside: &str, soname: &str, args: &[&str]) -> PathBuf {
    let symbol: String = soname
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let source = format!("int f_{symbol}(void) {{ return 1; }}\n");
    let out = tree.path(inside);
    // Debian's gcc links --as-needed: a fixture calls nothing, yet must keep its DT_NEEDED.
    let mut all = vec!["-Wl,--no-as-needed"];
    all.extend_from_slice(args);
    build_lib(
        &Lib {
            source: &source,
            soname: Some(soname),
            args: &all,
        },
        &out,
    );
    out
}

/// `-L<dir of the built file>` and `-l:<its name>`, to link against a fixture.
fn link_to(path: &Path) -> [String; 2] {
    [
        format!("-L{}", path.parent().unwrap().display()),
        format!("-l:{}", path.file_name().unwrap().to_string_lossy()),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn open(tree: &Tree) -> Prefix {
    Prefix::open(tree.root()).expect("open fixture prefix")
}

fn find<'a>(closure: &'a Closure, soname: &str) -> &'a Object {
    closure
        .objects
        .iter()
        .find(|o| o.soname == soname)
        .unwrap_or_else(|| panic!("{soname} not in closure {:#?}", closure.objects))
}

/// `root/inside` with the root as `Prefix` reports it (canonical).
fn at(prefix: &Prefix, inside: &str) -> PathBuf {
    prefix.root().join(inside.trim_start_matches('/'))
}

/// Every object appears after the objects it needs that are in the closure, each once,
/// and the requested one last.
fn assert_well_ordered(closure: &Closure, requested: &str) {
    let names: Vec<&str> = closure.objects.iter().map(|o| o.soname.as_str()).collect();
    assert_eq!(names.last(), Some(&requested), "{names:?}");
    for (i, object) in closure.objects.iter().enumerate() {
        assert_eq!(
            names.iter().filter(|n| **n == object.soname).count(),
            1,
            "{} twice in {names:?}",
            object.soname
        );
        for needed in &object.needed {
            if let Some(j) = names.iter().position(|n| n == needed) {
                assert!(
                    j < i,
                    "{needed} comes after {} which needs it: {names:?}",
                    object.soname
                );
            }
        }
    }
}

#[test]
fn runpath_is_searched() {
    let tree = Tree::new();
    let a = lib(&tree, "opt/a/liba.so.1", "liba.so.1", &[]);
    let link = link_to(&a);
    let mut b_args = args(&link);
    b_args.push("-Wl,-rpath,/opt/a");
    lib(&tree, "usr/lib/libb.so.1", "libb.so.1", &b_args);
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libb.so.1").unwrap();
    assert_well_ordered(&closure, "libb.so.1");
    let a = find(&closure, "liba.so.1");
    assert_eq!(a.origin, Origin::Runpath);
    assert_eq!(a.path, at(&prefix, "opt/a/liba.so.1"));
    assert_eq!(a.needed_by.as_deref(), Some("libb.so.1"));
    let b = find(&closure, "libb.so.1");
    assert_eq!(b.origin, Origin::Default);
    assert_eq!(b.needed_by, None);
    assert_eq!(find(&closure, "libc.so.6").origin, Origin::System);
}

#[test]
fn rpath_is_inherited_along_the_chain_unless_runpath() {
    let tree = Tree::new();
    let deep = lib(&tree, "opt/deep/libdeep.so.1", "libdeep.so.1", &[]);
    let deep_link = link_to(&deep);
    // libmid has no search path of its own: libdeep is only found through libtop's RPATH.
    let mid = lib(
        &tree,
        "usr/lib/libmid.so.1",
        "libmid.so.1",
        &args(&deep_link),
    );
    let mid_link = link_to(&mid);
    let mut top_args = args(&mid_link);
    top_args.extend(["-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/deep"]);
    lib(&tree, "usr/lib/libtop.so.1", "libtop.so.1", &top_args);
    // The same chain, but the middle object has a RUNPATH: ld.so then ignores the
    // inherited RPATH when looking up libmid2's own needs.
    let mut mid2_args = args(&deep_link);
    mid2_args.push("-Wl,-rpath,/nowhere");
    let mid2 = lib(&tree, "usr/lib/libmid2.so.1", "libmid2.so.1", &mid2_args);
    let mid2_link = link_to(&mid2);
    let mut top2_args = args(&mid2_link);
    top2_args.extend(["-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/deep"]);
    lib(&tree, "usr/lib/libtop2.so.1", "libtop2.so.1", &top2_args);

    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libtop.so.1").unwrap();
    assert_well_ordered(&closure, "libtop.so.1");
    let deep = find(&closure, "libdeep.so.1");
    assert_eq!(deep.origin, Origin::Rpath);
    assert_eq!(deep.needed_by.as_deref(), Some("libmid.so.1"));

    let err = prefix.resolve_closure("libtop2.so.1").unwrap_err();
    match &err {
        Error::NotFound {
            library, needed_by, ..
        } => {
            assert_eq!(library, "libdeep.so.1");
            assert_eq!(needed_by.as_deref(), Some("libmid2.so.1"));
        }
        other => panic!("expected NotFound, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("/nowhere/libdeep.so.1"), "{message}");
    assert!(
        !message.contains("opt/deep"),
        "inherited RPATH used: {message}"
    );
}

#[test]
fn origin_is_the_directory_inside_the_prefix() {
    let tree = Tree::new();
    let dep = lib(&tree, "opt/app/deps/libdep.so.1", "libdep.so.1", &[]);
    let link = link_to(&dep);
    let mut app_args = args(&link);
    app_args.push("-Wl,-rpath,$ORIGIN/../deps");
    lib(&tree, "opt/app/lib/libapp.so.1", "libapp.so.1", &app_args);
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("/opt/app/lib/libapp.so.1").unwrap();
    assert_well_ordered(&closure, "libapp.so.1");
    assert_eq!(find(&closure, "libapp.so.1").origin, Origin::Explicit);
    let dep = find(&closure, "libdep.so.1");
    assert_eq!(dep.origin, Origin::Runpath);
    assert_eq!(dep.path, at(&prefix, "opt/app/deps/libdep.so.1"));
}

#[test]
fn cache_made_by_ldconfig_is_used() {
    let tree = Tree::new();
    lib(&tree, "opt/c/libcached.so.3", "libcached.so.3", &[]);
    tree.write("etc/ld.so.conf", "/opt/c\n");
    tree.make_ld_so_cache();
    assert!(
        tree.root().join("etc/ld.so.cache").exists(),
        "ldconfig made no cache"
    );
    // The conf now names a directory that does not hold the library: the cache wins.
    tree.write("etc/ld.so.conf", "/elsewhere\n");
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libcached.so.3").unwrap();
    let object = find(&closure, "libcached.so.3");
    assert_eq!(object.origin, Origin::Cache);
    assert_eq!(object.path, at(&prefix, "opt/c/libcached.so.3"));
}

#[test]
fn conf_with_includes_is_used_without_cache() {
    let tree = Tree::new();
    lib(&tree, "opt/c/libconf.so.2", "libconf.so.2", &[]);
    tree.write("etc/ld.so.conf", "# main\ninclude conf.d/*.conf\n");
    tree.write("etc/conf.d/c.conf", "/opt/c/\n");
    tree.write("etc/conf.d/ignored.txt", "/opt/wrong\n");
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libconf.so.2").unwrap();
    let object = find(&closure, "libconf.so.2");
    assert_eq!(object.origin, Origin::Conf);
    assert_eq!(object.path, at(&prefix, "opt/c/libconf.so.2"));
}

#[test]
fn include_loop_is_a_config_error() {
    let tree = Tree::new();
    tree.write("etc/ld.so.conf", "include conf.d/*.conf\n");
    tree.write("etc/conf.d/a.conf", "include /etc/conf.d/b.conf\n");
    tree.write("etc/conf.d/b.conf", "include a.conf\n");
    let err = Prefix::open(tree.root()).unwrap_err();
    assert!(matches!(err, Error::BadConfig { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("include loop"), "{message}");
    assert!(message.contains("a.conf"), "{message}");
}

#[test]
fn corrupt_cache_is_a_config_error() {
    let tree = Tree::new();
    // Not a cache at all, then the new format's magic with too little after it.
    for (contents, reason) in [
        (
            "this is no ld.so.cache",
            "not an ld.so.cache: the file starts with neither \"glibc-ld.so.cache1.1\" nor \"ld.so-1.7.0\"",
        ),
        (
            "glibc-ld.so.cache1.1 but cut short",
            "truncated: 34 bytes, shorter than the 48-byte header",
        ),
    ] {
        let cache = tree.write("etc/ld.so.cache", contents);
        let err = Prefix::open(tree.root()).unwrap_err();
        assert!(matches!(err, Error::BadConfig { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "capsule: {}: corrupt ld.so.cache: {reason}; regenerate it with `ldconfig -r PREFIX` or remove it",
                cache.display()
            )
        );
    }
}

#[test]
fn wrong_class_and_machine_are_skipped() {
    let tree = Tree::new();
    let class32 = lib(&tree, "lib/x86_64-linux-gnu/libw.so.1", "libw.so.1", &[]);
    patch_bytes(&class32, 4, &[1]); // EI_CLASS = ELFCLASS32
    let arm = lib(
        &tree,
        "usr/lib/x86_64-linux-gnu/libw.so.1",
        "libw.so.1",
        &[],
    );
    patch_bytes(&arm, 18, &183u16.to_le_bytes()); // e_machine = EM_AARCH64
    lib(&tree, "usr/lib/libw.so.1", "libw.so.1", &[]);
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libw.so.1").unwrap();
    let object = find(&closure, "libw.so.1");
    assert_eq!(object.path, at(&prefix, "usr/lib/libw.so.1"));
    assert_eq!(object.origin, Origin::Default);
}

#[test]
fn truncated_and_non_elf_files_are_skipped() {
    let tree = Tree::new();
    let real = lib(&tree, "usr/lib/libt.so.1", "libt.so.1", &[]);
    let bytes = std::fs::read(&real).unwrap();
    std::fs::write(tree.path("lib/x86_64-linux-gnu/libt.so.1"), &bytes[..100]).unwrap();
    tree.write("usr/lib/x86_64-linux-gnu/libt.so.1", "INPUT(-lt)\n");
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libt.so.1").unwrap();
    assert_eq!(
        find(&closure, "libt.so.1").path,
        at(&prefix, "usr/lib/libt.so.1")
    );
}

#[test]
fn absolute_symlink_resolves_inside_the_prefix() {
    let tree = Tree::new();
    lib(&tree, "opt/x/libx.so.1.0", "libx.so.1", &[]);
    tree.symlink("usr/lib/libx.so.1", "/opt/x/libx.so.1.0");
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libx.so.1").unwrap();
    assert_eq!(
        find(&closure, "libx.so.1").path,
        at(&prefix, "opt/x/libx.so.1.0")
    );
}

#[test]
fn escaping_symlink_stays_inside() {
    let tree = Tree::new();
    // The tree's own etc/passwd is a library: finding it proves `..` stopped at the root.
    lib(&tree, "etc/passwd", "libesc.so.1", &[]);
    tree.symlink("usr/lib/libesc.so.1", "../../../../../../../../etc/passwd");
    let prefix = open(&tree);
    let closure = prefix.resolve_closure("libesc.so.1").unwrap();
    assert_eq!(
        find(&closure, "libesc.so.1").path,
        at(&prefix, "etc/passwd")
    );
}

#[test]
fn symlink_loop_is_an_error() {
    let tree = Tree::new();
    tree.symlink("usr/lib/libloop.so.1", "libloop.so.2");
    tree.symlink("usr/lib/libloop.so.2", "/usr/lib/libloop.so.1");
    let err = open(&tree).resolve_closure("libloop.so.1").unwrap_err();
    assert!(matches!(err, Error::BadPath { .. }), "{err}");
    assert!(err.to_string().contains("libloop.so.1"), "{err}");
}

#[test]
fn library_not_found_lists_where_it_looked() {
    let tree = Tree::new();
    tree.write("etc/ld.so.conf", "/opt/one\n");
    let prefix = open(&tree);
    let err = prefix.resolve_closure("libmissing.so.7").unwrap_err();
    let Error::NotFound {
        library,
        needed_by,
        searched,
        ..
    } = &err
    else {
        panic!("expected NotFound, got {err}");
    };
    assert_eq!(library, "libmissing.so.7");
    assert_eq!(*needed_by, None);
    assert_eq!(searched[0], at(&prefix, "opt/one/libmissing.so.7"));
    assert!(searched.contains(&at(
        &prefix,
        &capsule_tests::for_machine("usr/lib/x86_64-linux-gnu/libmissing.so.7")
    )));
    assert!(searched.contains(&at(&prefix, "usr/lib/libmissing.so.7")));
    assert!(
        err.to_string().contains("libmissing.so.7 not found"),
        "{err}"
    );
}

#[test]
fn dependency_not_found_names_who_needed_it() {
    let tree = Tree::new();
    let gone = lib(&tree, "build/libgone.so.1", "libgone.so.1", &[]);
    let link = link_to(&gone);
    lib(
        &tree,
        "usr/lib/libneeds.so.1",
        "libneeds.so.1",
        &args(&link),
    );
    std::fs::remove_file(&gone).unwrap();
    let err = open(&tree).resolve_closure("libneeds.so.1").unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("libgone.so.1 not found") && message.contains("needed by libneeds.so.1"),
        "{message}"
    );
}

#[test]
fn bad_prefixes_are_reported() {
    let tree = Tree::new();
    let missing = tree.root().join("no-such-dir");
    let err = Prefix::open(&missing).unwrap_err();
    assert!(matches!(err, Error::BadPrefix { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
    let file = tree.write("a-file", "x");
    let err = Prefix::open(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn missing_glibc_version_is_caught_before_loading() {
    let tree = Tree::new();
    // A stand-in libc.so.6 defining GLIBC_2.99, only to link the fixture against.
    let script = tree.write(
        "build/fake-libc.map",
        "GLIBC_2.99 { global: capsule_future_fn; local: *; };\n",
    );
    let script_arg = format!("-Wl,--version-script={}", script.display());
    let fake = tree.path("build/fake/libc.so.6");
    build_lib(
        &Lib {
            source: "int capsule_future_fn(void) { return 99; }\n",
            soname: Some("libc.so.6"),
            args: &["-nostdlib", &script_arg],
        },
        &fake,
    );
    let source =
        "int capsule_future_fn(void);\nint f_future(void) { return capsule_future_fn(); }\n";
    let out = tree.path("usr/lib/libfuture.so.1");
    let fake_arg = fake.display().to_string();
    build_lib(
        &Lib {
            source,
            soname: Some("libfuture.so.1"),
            args: &["-nostdlib", &fake_arg],
        },
        &out,
    );
    let err = open(&tree).resolve_closure("libfuture.so.1").unwrap_err();
    let Error::MissingVersion {
        library,
        version,
        provider,
        ..
    } = &err
    else {
        panic!("expected MissingVersion, got {err}");
    };
    let (provider, provider_path, provider_kind) = (&provider.name, &provider.path, &provider.kind);
    assert_eq!(library, "libfuture.so.1");
    assert_eq!(version, "GLIBC_2.99");
    assert_eq!(provider, "libc.so.6");
    assert!(
        !provider_path.starts_with(tree.root()),
        "libc taken from the prefix: {provider_path:?}"
    );
    assert_eq!(*provider_kind, "glibc");
    let glibc = capsule::prefix::glibc::running_version();
    assert_eq!(
        err.to_string(),
        format!(
            "capsule: libfuture.so.1 ({}) needs version GLIBC_2.99 of libc.so.6, which {} does not define; \
             the host library is newer than this glibc: use a host tree built for glibc {glibc} or older, or run on a newer system",
            out.display(),
            provider_path.display()
        )
    );
}

#[test]
fn requester_runpath_applies_and_loaded_objects_are_skipped() {
    let tree = Tree::new();
    lib(&tree, "opt/r/plugins/libplug.so.1", "libplug.so.1", &[]);
    let requester = lib(
        &tree,
        "opt/r/librequester.so.1",
        "librequester.so.1",
        &["-Wl,-rpath,$ORIGIN/plugins"],
    );
    let prefix = open(&tree);
    let requester = prefix
        .root()
        .join(requester.strip_prefix(tree.root()).unwrap());
    let closure = prefix
        .resolve_closure_from("libplug.so.1", Some(&requester), &|s| s == "libc.so.6")
        .unwrap();
    let names: Vec<&str> = closure.objects.iter().map(|o| o.soname.as_str()).collect();
    assert_eq!(names, ["libplug.so.1"]);
    assert_eq!(closure.objects[0].origin, Origin::Runpath);
    let none = prefix
        .resolve_closure_from("libplug.so.1", Some(&requester), &|_| true)
        .unwrap();
    assert!(none.objects.is_empty());
}

#[test]
fn real_machine_libz_and_libegl() {
    let prefix = Prefix::open(Path::new("/")).unwrap();
    let z = prefix
        .resolve_closure("libz.so.1")
        .expect("libz.so.1 must be installed (zlib1g) for this test");
    assert_well_ordered(&z, "libz.so.1");
    assert_eq!(find(&z, "libc.so.6").origin, Origin::System);

    let egl = prefix
        .resolve_closure("libEGL.so.1")
        .expect("libEGL.so.1 must be installed (libegl1) for this test");
    assert_well_ordered(&egl, "libEGL.so.1");
    assert!(find(&egl, "libGLdispatch.so.0").path.exists());
    let libc = find(&egl, "libc.so.6");
    assert_eq!(libc.origin, Origin::System);
    assert!(libc.path.is_absolute() && libc.path.exists());
}
