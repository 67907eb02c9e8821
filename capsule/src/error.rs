//! The one error type of the runtime. Every message names the library, the path or the
//! prefix involved, and says what the user can do about it.

use std::path::PathBuf;

/// Everything that can go wrong while finding, loading or wiring up a capsule.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The prefix (host tree) is missing, unreadable or not a directory.
    #[error("capsule: host prefix {prefix}: {reason}; point CAPSULE_PREFIX (or CAPSULE_<SONAME>_PREFIX) at the host's root directory")]
    BadPrefix { prefix: PathBuf, reason: String },

    /// A library (the requested one or a dependency) was found nowhere in the search path.
    #[error("capsule: {library} not found in prefix {prefix}{}; searched: {}; install it in the host tree or fix the prefix", needed_by_suffix(.needed_by), join_paths(.searched))]
    NotFound {
        library: String,
        prefix: PathBuf,
        /// The object whose DT_NEEDED (or dlopen) asked for it, if any.
        needed_by: Option<String>,
        /// Every directory or file that was looked at, in order.
        searched: Vec<PathBuf>,
    },

    /// A file that should be an ELF object could not be used.
    #[error("capsule: {path}: {reason}")]
    BadElf { path: PathBuf, reason: String },

    /// A symbol loop or an escape attempt while resolving a path inside the prefix.
    #[error("capsule: {path}: {reason} (inside prefix {prefix})")]
    BadPath {
        path: PathBuf,
        prefix: PathBuf,
        reason: String,
    },

    /// The prefix's `etc/ld.so.cache` or `etc/ld.so.conf` is malformed.
    #[error("capsule: {path}: {reason}; regenerate it with `ldconfig -r PREFIX` or remove it")]
    BadConfig { path: PathBuf, reason: String },

    /// A library needs a symbol version that the object providing it lacks (typically a
    /// host library built against a newer glibc than the one running).
    #[error("capsule: {library} ({path}) needs version {version} of {}, which {} does not define; the host library is newer than this {}: use a host tree built for glibc {} or older, or run on a newer system", .provider.name, .provider.path.display(), .provider.kind, .provider.running_glibc)]
    MissingVersion {
        library: String,
        path: PathBuf,
        version: String,
        /// Who should have defined it (boxed: rarely built, and it keeps `Error` small).
        provider: Box<VersionProvider>,
    },

    /// A host library needs from a library shared with the program (see `sharing`)
    /// something the program's copy lacks and that no stub can stand in for: a data
    /// symbol, or a symbol version ld.so would refuse the object for.
    #[error("capsule: {library} ({path}) needs {what} from {shared}, which the program's copy ({program_copy}) lacks; the host's copy ({host_copy}) has it. The host's library was built against a newer {shared} than the program's tree provides: update it there, or keep the host's copy private to the capsule with CAPSULE_SHARE=-{shared}", path = .path.display(), shared = .copies.soname, program_copy = .copies.program.display(), host_copy = .copies.host.display())]
    SharedTooOld {
        library: String,
        path: PathBuf,
        what: String,
        /// The shared library's two copies (boxed: rarely built, and it keeps `Error` small).
        copies: Box<SharedCopies>,
    },

    /// An environment variable of the runtime has a value it cannot use.
    #[error("capsule: {variable}={value:?}: {reason}")]
    BadVariable {
        variable: &'static str,
        value: String,
        reason: String,
    },

    /// glibc has no link-map namespace left for `dlmopen(LM_ID_NEWLM)`.
    #[error("capsule: cannot create a namespace for {library}: {message}; glibc allows at most 15 extra namespaces (and fewer fit in static TLS): share one namespace between capsules of the same prefix, or start the program with GLIBC_TUNABLES=glibc.rtld.nns=16")]
    NamespacesExhausted { library: String, message: String },

    /// The static TLS surplus is full: libraries with initial-exec thread-local storage
    /// (Mesa's have some) take it in every namespace they are loaded into.
    #[error("capsule: cannot load {library}: {message}; objects with initial-exec thread-local storage take glibc's small static TLS surplus in each namespace: start the program with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=3072 (or glibc.rtld.nns=16), or share one namespace between capsules")]
    StaticTlsExhausted { library: String, message: String },

    /// `dlmopen`, `dlinfo` or another dynamic-linker call failed.
    #[error("capsule: {operation} {target} failed: {message}")]
    Dl {
        operation: &'static str,
        target: String,
        message: String,
    },

    /// A symbol was looked up and is not defined by the capsule.
    #[error("capsule: symbol {symbol}{} not found in {library} (namespace {namespace})", version_suffix(.version))]
    SymbolNotFound {
        symbol: String,
        version: Option<String>,
        library: String,
        namespace: i64,
    },

    /// A loaded object's dynamic section, symbol tables or relocations are malformed.
    #[error("capsule: {object}: malformed {what}")]
    Malformed { object: String, what: String },

    /// A relocation slot could not be rewritten.
    #[error("capsule: cannot rewrite {symbol} in {object}: {reason}")]
    Patch {
        object: String,
        symbol: String,
        reason: String,
    },

    /// An error reported by the copy of the runtime that owns a shared namespace (each
    /// shim links its own copy), passed on as that copy worded it.
    #[error("{message}")]
    Shared { message: String },

    /// Reading a file failed.
    #[error("capsule: {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A library shared with the program: its soname, the program's copy and the host's.
#[derive(Debug)]
pub struct SharedCopies {
    pub soname: String,
    pub program: PathBuf,
    pub host: PathBuf,
}

/// The object a required symbol version was looked for in.
#[derive(Debug)]
pub struct VersionProvider {
    /// Its soname, e.g. `libc.so.6`.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// "glibc" (taken from the running system) or "host library".
    pub kind: &'static str,
    /// The running glibc's version, e.g. `2.36`.
    pub running_glibc: String,
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn needed_by_suffix(needed_by: &Option<String>) -> String {
    match needed_by {
        Some(by) => format!(" (needed by {by})"),
        None => String::new(),
    }
}

fn version_suffix(version: &Option<String>) -> String {
    match version {
        Some(v) => format!("@{v}"),
        None => String::new(),
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
