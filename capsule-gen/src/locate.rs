//! Finding the library a shim is generated from.
//!
//! A name with a `/` is a path on this machine. A soname is looked up in the prefix's
//! default library directories. This stands in for `capsule::prefix::Prefix`'s resolver
//! (ld.so.cache, ld.so.conf) until that lands: swap the body of [`find_library`] for
//! `Prefix::open(prefix)?.resolve_closure(name)?.objects.last()` then.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const DEFAULT_DIRS: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
];

/// The file that `name` (a soname or a path) denotes inside `prefix`.
pub fn find_library(name: &str, prefix: &Path) -> Result<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NotFound {
                library: name.into(),
                prefix: prefix.into(),
                searched: format!("the path {name} itself"),
            })
        };
    }
    let candidates: Vec<PathBuf> = DEFAULT_DIRS
        .iter()
        .map(|dir| prefix.join(dir).join(name))
        .collect();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| Error::NotFound {
            library: name.into(),
            prefix: prefix.into(),
            searched: DEFAULT_DIRS
                .iter()
                .map(|d| prefix.join(d).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
