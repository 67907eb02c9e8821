//! Namespace sharing and the limits glibc puts on namespaces.

use capsule::{Capsule, Error};
use capsule_tests::{build_lib, is_child, rerun_self, Lib, Tree};

fn prefix_with(libs: &[&str]) -> Tree {
    prefix_with_source(libs, "int present(void) { return 1; }")
}

fn prefix_with_source(libs: &[&str], source: &str) -> Tree {
    let tree = Tree::new();
    for soname in libs {
        build_lib(
            &Lib {
                source,
                soname: Some(soname),
                args: &[],
            },
            &tree.path(&format!("usr/lib/{soname}")),
        );
    }
    tree
}

/// A library with initial-exec thread-local storage, as Mesa's has: a dlmopen'd object
/// takes it from glibc's small static TLS surplus.
const STATIC_TLS: &str = r#"
__thread char block[1024] __attribute__((tls_model("initial-exec")));
int present(void) { return 1; }
char *block_of_this_thread(void) { return block; }
"#;

#[test]
fn capsules_of_one_prefix_share_a_namespace_and_two_prefixes_give_two() {
    let a = prefix_with(&["liba.so.1", "libb.so.1"]);
    let b = prefix_with(&["liba.so.1"]);
    let a1 = Capsule::load("liba.so.1", a.root()).unwrap();
    let a2 = Capsule::load("libb.so.1", a.root()).unwrap();
    let b1 = Capsule::load("liba.so.1", b.root()).unwrap();
    assert_eq!(a1.namespace_id(), a2.namespace_id());
    assert_ne!(a1.namespace_id(), b1.namespace_id());
    assert_ne!(b1.namespace_id(), 0);
    // The same prefix spelled differently is still the same prefix.
    let spelled = a.root().join("usr/..");
    let a3 = Capsule::load("liba.so.1", &spelled).unwrap();
    assert_eq!(a3.namespace_id(), a1.namespace_id());
}

/// Load capsules of `source` from new prefixes until glibc refuses, and return the error.
fn exhaust(source: &str) -> Error {
    let mut trees = Vec::new();
    for _ in 0..20 {
        let tree = prefix_with_source(&["libx.so.1"], source);
        if let Err(e) = Capsule::load("libx.so.1", tree.root()) {
            return e;
        }
        trees.push(tree);
    }
    panic!("20 namespaces were created; glibc allows at most 15");
}

#[test]
fn static_tls_exhaustion_says_what_to_do() {
    if is_child("static_tls_exhaustion_says_what_to_do") {
        let e = exhaust(STATIC_TLS);
        println!("ERROR: {e}");
        assert!(matches!(e, Error::StaticTlsExhausted { .. }), "{e:?}");
        return;
    }
    let out = rerun_self("static_tls_exhaustion_says_what_to_do", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("static TLS"), "{stdout}");
    assert!(
        stdout.contains("GLIBC_TUNABLES=glibc.rtld.optional_static_tls"),
        "{stdout}"
    );
}

#[test]
fn namespace_exhaustion_says_what_to_do() {
    if is_child("namespace_exhaustion_says_what_to_do") {
        let e = exhaust("int present(void) { return 1; }");
        println!("ERROR: {e}");
        assert!(matches!(e, Error::NamespacesExhausted { .. }), "{e:?}");
        return;
    }
    // No second libc takes static TLS in each namespace: with glibc's default tunables,
    // capsules of libraries without initial-exec TLS get all 15 namespaces.
    let out = rerun_self("namespace_exhaustion_says_what_to_do", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("no more namespaces available"), "{stdout}");
    assert!(
        stdout.contains("GLIBC_TUNABLES=glibc.rtld.nns=16"),
        "{stdout}"
    );
    assert!(stdout.contains("share one namespace"), "{stdout}");
}
