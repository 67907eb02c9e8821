//! Finding the library a shim is generated from: a name with a `/` is a path on this
//! machine; a soname is resolved inside the prefix exactly as the runtime will resolve it
//! when the shim loads (`capsule::prefix`), so the shim is made from the library it will
//! forward to.

use std::path::{Path, PathBuf};

use capsule::machine::Machine;
use capsule::prefix::Prefix;

use crate::error::{Error, Result};

/// The file that `name` (a soname or a path) denotes inside `prefix`, a soname searched
/// for as `machine`'s ld.so searches (its directories, its ld.so.cache entries).
pub fn find_library(name: &str, prefix: &Path, machine: Machine) -> Result<PathBuf> {
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
    let closure = Prefix::open_for(prefix, machine)?.resolve_closure(name)?;
    closure
        .objects
        .last()
        .map(|object| object.path.clone())
        .ok_or_else(|| Error::NotFound {
            library: name.into(),
            prefix: prefix.into(),
            searched: "the prefix's library search path".into(),
        })
}
