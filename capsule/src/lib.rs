//! capsule: use a library from another filesystem tree (the host) without its dependencies
//! clashing with the program's own.
//!
//! A [`Capsule`] is a host library and its whole dependency closure, resolved inside a
//! host prefix as ld.so would resolve it there, and loaded with `dlmopen` into a private
//! link-map namespace. The process keeps one libc: glibc's libraries and the
//! window-system client libraries are shared into the namespace as forwarders to the
//! program's copies ([`sharing`]).
//!
//! The data's way through the crate: [`prefix`] finds the closure, `namespace` loads it
//! (with `forwarder` objects for what [`sharing`] shares), `elf` reads loaded objects,
//! `patch` rewrites their slots, `dl` keeps dlopen inside the capsule, and [`shim`] is
//! what generated proxy libraries call.

mod arch;
mod bytes;
mod capsule;
pub mod config;
mod disk_cache;
mod dl;
mod dlfcn;
mod dynamic_tags;
pub mod elffile;
pub mod error;
mod fnv;
pub mod forwarder;
pub mod hostenv;
mod interposer;
mod iterate_phdr;
mod linkmap;
mod loaded;
pub mod machine;
pub mod prefix;

pub use capsule::{Capsule, LoadedObject, Symbol};
pub use error::{Error, Result};
pub mod elf;
mod namespace;
pub mod patch;
pub mod sharing;
pub mod shim;
