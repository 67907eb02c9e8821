//! The one error type of capsule-gen. Messages name the library or file and say what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The library to generate from was not found.
    #[error("capsule-gen: {library}: not found in prefix {prefix} (searched {searched}); pass a path to the library, or the host tree's root with --prefix")]
    NotFound {
        library: String,
        prefix: PathBuf,
        searched: String,
    },

    /// The file is not a library capsule-gen can make a shim for.
    #[error("capsule-gen: {path}: {reason}")]
    BadLibrary { path: PathBuf, reason: String },

    /// A soname that cannot become a crate and library name.
    #[error("capsule-gen: {soname}: {reason}")]
    BadSoname { soname: String, reason: String },

    /// A library (or manifest) of a machine capsule-gen has no trampolines for.
    #[error("capsule-gen: shims for {machine} libraries are not supported yet (supported: {supported}); capsule-gen/src/emit has one file per architecture")]
    UnsupportedMachine {
        machine: &'static str,
        supported: String,
    },

    /// `--target` names no target capsule knows.
    #[error("capsule-gen: --target {triple}: not a target capsule knows ({known})")]
    BadTarget { triple: String, known: String },

    /// A shim crate's manifest is missing or malformed.
    #[error("capsule-gen: {path}: {reason}; regenerate the shim from the library instead (capsule-gen LIBRARY)")]
    BadManifest { path: PathBuf, reason: String },

    /// A manifest that is not valid TOML, or whose values are not what a manifest holds.
    #[error("capsule-gen: {path}:{line}:{column}: {message}; fix the file there, or regenerate the shim from the library (capsule-gen LIBRARY)")]
    ManifestSyntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    /// The runtime crate given with --runtime (or the default one) is not usable.
    #[error("capsule-gen: runtime crate {path}: {reason}; pass the capsule runtime crate's directory with --runtime")]
    BadRuntime { path: PathBuf, reason: String },

    /// `cargo build` of a shim crate failed or made no shared library.
    #[error("capsule-gen: {dir}: {reason}")]
    Build { dir: PathBuf, reason: String },

    /// Reading or writing a file failed.
    #[error("capsule-gen: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The runtime's resolver failed (boxed: the runtime's error is large).
    #[error(transparent)]
    Runtime(Box<capsule::Error>),
}

impl From<capsule::Error> for Error {
    fn from(err: capsule::Error) -> Error {
        Error::Runtime(Box::new(err))
    }
}

impl Error {
    /// The process exit status for this error: 2 for bad input (a library, soname or
    /// manifest the user named), 1 for a failure while generating.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound { .. }
            | Error::BadLibrary { .. }
            | Error::BadSoname { .. }
            | Error::UnsupportedMachine { .. }
            | Error::BadTarget { .. }
            | Error::BadManifest { .. }
            | Error::ManifestSyntax { .. }
            | Error::BadRuntime { .. }
            | Error::Runtime(_) => 2,
            Error::Io { .. } | Error::Build { .. } => 1,
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
