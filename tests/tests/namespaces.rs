//! Namespace sharing and the limits glibc puts on namespaces.

use capsule::{Capsule, Error};
use capsule_tests::{build_lib, is_child, rerun_self, Lib, Tree};

fn prefix_with(libs: &[&str]) -> Tree {
    let tree = Tree::new();
    for soname in libs {
        build_lib(
            &Lib {
                source: "int present(void) { return 1; }",
                soname: Some(soname),
                args: &[],
            },
            &tree.path(&format!("usr/lib/{soname}")),
        );
    }
    tree
}

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

/// Load capsules from new prefixes until glibc refuses, and return the error.
fn exhaust() -> Error {
    let mut trees = Vec::new();
    for _ in 0..20 {
        let tree = prefix_with(&["libx.so.1"]);
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
        let e = exhaust();
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
        let e = exhaust();
        println!("ERROR: {e}");
        assert!(matches!(e, Error::NamespacesExhausted { .. }), "{e:?}");
        return;
    }
    // With more static TLS, the namespaces themselves run out first.
    let out = rerun_self(
        "namespace_exhaustion_says_what_to_do",
        &[(
            "GLIBC_TUNABLES",
            "glibc.rtld.nns=16:glibc.rtld.optional_static_tls=8192",
        )],
    );
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
