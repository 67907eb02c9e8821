//! capsule: use a library from another filesystem tree (the host) without its dependencies
//! clashing with the program's own.
//!
//! A [`Capsule`] is a host library and its whole dependency closure, resolved inside a
//! host prefix as ld.so would resolve it there, and loaded with `dlmopen` into a private
//! link-map namespace that has its own libc.
//!
//! The data's way through the crate: [`prefix`] finds the closure, `namespace` loads it,
//! `elf` reads loaded objects, `patch` rewrites their slots, `alloc` routes the namespace's
//! allocator to the program's, `dl` keeps dlopen inside the capsule, and [`shim`] is what
//! generated proxy libraries call.

pub mod alloc;
mod capsule;
pub mod config;
mod disk_cache;
mod dl;
pub mod error;
mod exit;
pub mod hostenv;
mod interposer;
mod linkmap;
pub mod prefix;

pub use capsule::{Capsule, LoadedObject};
pub use error::{Error, Result};
pub mod elf;
mod namespace;
pub mod patch;
pub mod shim;
mod threads;
