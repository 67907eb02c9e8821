//! Finding a library and its whole dependency closure inside a host tree (the prefix),
//! as glibc's ld.so would find it if that tree were `/`.
//!
//! Search order for a DT_NEEDED name of object O (ld.so's, minus LD_LIBRARY_PATH, which
//! belongs to the program's tree, not the host's):
//! DT_RPATH of O and of the objects that loaded it (only while O has no DT_RUNPATH),
//! DT_RUNPATH of O, the prefix's `etc/ld.so.cache` (else the directories of its
//! `etc/ld.so.conf`), then the default directories. glibc's own libraries are taken from
//! the running system, never from the prefix: the program's loaded copies where the
//! runtime hands them in ([`glibc::Running`]), else the files of `/`. This module reads
//! files only: no memory of loaded objects, no dl calls.
//!
//! A prefix is searched for one [`Machine`] (the runtime's own, [`Machine::NATIVE`];
//! capsule-gen takes the machine of the library it is given): the default directories,
//! `$LIB`, `$PLATFORM`, the ld.so.cache entries used and the dynamic linker's soname are
//! that machine's, and a file of another class or machine is passed over, as that
//! machine's ld.so passes it over.
//!
//! Every path of the search is a path of the host tree: `$ORIGIN` is the directory an
//! object was found in *inside the prefix*, and symlinks are followed inside it ([`fs`]).
//! `$LIB` (`lib/x86_64-linux-gnu`) and `$PLATFORM` (`x86_64`) are expanded as Debian's
//! ld.so expands them. Relative RPATH/RUNPATH entries (relative to the program's working
//! directory for ld.so) and `glibc-hwcaps` subdirectories are not searched.

pub mod cache;
pub mod conf;
pub mod fs;
pub mod glibc;
mod memo;
mod search;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};
use crate::machine::Machine;

pub use search::expand_dst;

/// A host tree, opened once: its root, and its cache or conf directories.
#[derive(Debug)]
pub struct Prefix {
    root: PathBuf,
    /// The machine whose libraries are searched for.
    machine: Machine,
    /// The running process's glibc, where the runtime handed it in.
    running: Option<glibc::Running>,
    /// Read when a search first needs it (a closure the memo answers needs none). Shared
    /// between the running system's prefix and a prefix that is `/` too.
    config: OnceLock<Arc<LinkerConfig>>,
}

/// What the prefix tells ld.so beyond RPATH/RUNPATH.
#[derive(Debug)]
enum LinkerConfig {
    /// `etc/ld.so.cache` (its path on this machine, its identity when read, its entries).
    Cache {
        path: PathBuf,
        identity: fs::Identity,
        cache: cache::Cache,
    },
    /// No cache: the directories of `etc/ld.so.conf` and its includes.
    Conf(Vec<PathBuf>),
    /// Neither: only the default directories.
    Nothing,
}

/// Why a library was taken from where it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The caller named a path.
    Explicit,
    /// DT_RPATH of the requesting object or one that loaded it.
    Rpath,
    /// DT_RUNPATH of the requesting object.
    Runpath,
    /// The prefix's `etc/ld.so.cache`.
    Cache,
    /// A directory of the prefix's `etc/ld.so.conf`.
    Conf,
    /// One of the default directories.
    Default,
    /// A glibc library, taken from the running system so that it matches the running ld.so.
    System,
}

impl Origin {
    /// The origin [`Origin::as_str`] names.
    pub fn parse(word: &str) -> Option<Origin> {
        [
            Origin::Explicit,
            Origin::Rpath,
            Origin::Runpath,
            Origin::Cache,
            Origin::Conf,
            Origin::Default,
            Origin::System,
        ]
        .into_iter()
        .find(|o| o.as_str() == word)
    }

    /// The word debug lines and `capsule-gen deps` print for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Explicit => "explicit",
            Origin::Rpath => "rpath",
            Origin::Runpath => "runpath",
            Origin::Cache => "cache",
            Origin::Conf => "conf",
            Origin::Default => "default",
            Origin::System => "system",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One object of a closure.
#[derive(Clone, Debug)]
pub struct Object {
    /// DT_SONAME, or the name it was asked for by when it has none.
    pub soname: String,
    /// Where it is on this machine (prefix root joined, symlinks resolved inside the prefix).
    pub path: PathBuf,
    /// Why this file was chosen.
    pub origin: Origin,
    /// Its DT_NEEDED names, in order.
    pub needed: Vec<String>,
    /// The soname of the object that first asked for it (None for the requested library).
    pub needed_by: Option<String>,
}

/// A library and everything it needs, dependencies before the objects that need them;
/// the requested library is last.
#[derive(Clone, Debug)]
pub struct Closure {
    pub objects: Vec<Object>,
}

impl Prefix {
    /// Open a host tree: check it is a readable directory and read its linker configuration.
    ///
    /// A present but corrupt or truncated `etc/ld.so.cache` is `Error::BadConfig`, not
    /// silently skipped: falling back to other directories could pick other libraries
    /// than the host uses, and the fix (`ldconfig -r PREFIX`) is one command. Without a
    /// cache, `etc/ld.so.conf` (if any) is read with its includes; an include loop is
    /// `Error::BadConfig` too.
    ///
    /// The prefix `/` shares the running system's configuration, read once per process
    /// (the search reads it anyway for glibc's libraries), so an `ldconfig` run after
    /// that is not seen by later namespaces of the process.
    pub fn open(root: &Path) -> Result<Prefix> {
        Prefix::open_for(root, Machine::NATIVE)
    }

    /// [`Prefix::open`], to resolve libraries of `machine` (capsule-gen, on a library of
    /// another architecture).
    ///
    /// glibc's libraries are the running system's: here its files in `/`, searched for
    /// `machine` as ld.so would, and closures are not remembered. (The runtime's prefixes
    /// take them from the process's loaded copies instead: [`glibc::Running`].)
    pub fn open_for(root: &Path, machine: Machine) -> Result<Prefix> {
        let prefix = Prefix::unread(canonical_root(root)?, machine, None);
        prefix.config()?;
        Ok(prefix)
    }

    /// A root that [`canonical_root`] gave, for the runtime's machine and `running`, its
    /// configuration read when first needed (a bad one is reported then, by the load that
    /// needs it).
    pub(crate) fn open_canonical(root: PathBuf, running: glibc::Running) -> Prefix {
        Prefix::unread(root, Machine::NATIVE, Some(running))
    }

    fn unread(root: PathBuf, machine: Machine, running: Option<glibc::Running>) -> Prefix {
        Prefix {
            root,
            machine,
            running,
            config: OnceLock::new(),
        }
    }

    /// The prefix's linker configuration, read on first use.
    fn config(&self) -> Result<&LinkerConfig> {
        self.shared_config().map(|config| &**config)
    }

    fn shared_config(&self) -> Result<&Arc<LinkerConfig>> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let system = search::system_prefix(Machine::NATIVE);
        let config = if self.root == Path::new("/") && !std::ptr::eq(self, system) {
            // The running system's, read once per process.
            Arc::clone(system.shared_config()?)
        } else {
            Arc::new(read_config(&self.root)?)
        };
        Ok(self.config.get_or_init(|| config))
    }

    /// The prefix's root directory (absolute, symlinks of the path to it resolved).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The machine whose libraries this prefix resolves.
    pub fn machine(&self) -> Machine {
        self.machine
    }

    /// The running process's glibc, if handed in and of this prefix's machine (another
    /// machine's glibc is not this process's).
    fn running(&self) -> Option<&glibc::Running> {
        self.running
            .as_ref()
            .filter(|_| self.machine == Machine::NATIVE)
    }

    /// Resolve `library` (a soname, or a path inside the prefix) and its DT_NEEDED closure.
    /// A closure found before (by this or an earlier process) is taken as it was when
    /// none of the files that decided it changed since (see `memo`).
    pub fn resolve_closure(&self, library: &str) -> Result<Closure> {
        let memo = memo::slot(self, library);
        if let Some(closure) = memo.as_ref().and_then(memo::Slot::recall) {
            for o in &closure.objects {
                search::announce(&o.soname, &o.path, o.origin, o.needed_by.as_deref());
            }
            return Ok(closure);
        }
        let (closure, inputs) = search::closure(self, library, None, &|_| false)?;
        match (inputs, memo) {
            (Some(inputs), Some(memo)) => memo.remember(&closure, &inputs),
            (Some(_), None) => {}
            (None, _) => crate::debug!(
                Libs,
                "{library}: closure not remembered: where it was found also depended on what a directory did not hold"
            ),
        }
        Ok(closure)
    }

    /// Resolve `library` as `requester` (a path on this machine of an object already in
    /// the namespace) would by dlopen: its RUNPATH/RPATH and `$ORIGIN` apply. Objects whose
    /// soname `is_loaded` accepts are not resolved again, nor their dependencies.
    ///
    /// Only the requester's own RPATH is known here, not those of the objects that loaded
    /// it. Before returning, every symbol version the closure needs is checked against
    /// its provider (`Error::MissingVersion`), so nothing gets mapped in vain.
    ///
    /// The whole closure (as if nothing were loaded) is remembered as for
    /// [`Prefix::resolve_closure`], when files alone decided it: the requester's RPATH and
    /// RUNPATH, searched before `ld.so.cache`, would otherwise have had a say. Then what
    /// `is_loaded` accepts is cut from it.
    pub fn resolve_closure_from(
        &self,
        library: &str,
        requester: Option<&Path>,
        is_loaded: &dyn Fn(&str) -> bool,
    ) -> Result<Closure> {
        let key = format!("dlopen {library}");
        let memo = memo::slot(self, &key);
        if let Some(whole) = memo.as_ref().and_then(memo::Slot::recall) {
            let closure = without_loaded(whole, is_loaded);
            for o in &closure.objects {
                search::announce(&o.soname, &o.path, o.origin, o.needed_by.as_deref());
            }
            return Ok(closure);
        }
        let (whole, inputs) = search::closure(self, library, requester, &|_| false)?;
        if let (Some(inputs), Some(memo)) = (inputs, memo) {
            memo.remember(&whole, &inputs);
        }
        Ok(without_loaded(whole, is_loaded))
    }
}

/// `closure` without the objects `is_loaded` accepts and what only they needed, as the
/// search leaves them out: what the requested object reaches through objects not loaded.
fn without_loaded(closure: Closure, is_loaded: &dyn Fn(&str) -> bool) -> Closure {
    let objects = closure.objects;
    let Some(root) = objects.len().checked_sub(1) else {
        return Closure { objects };
    };
    let mut keep = vec![false; objects.len()];
    let mut seen = vec![false; objects.len()];
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) || is_loaded(&objects[i].soname) {
            continue;
        }
        keep[i] = true;
        for name in &objects[i].needed {
            if let Some(j) = objects.iter().position(|o| {
                &o.soname == name || o.path.file_name().is_some_and(|f| f == name.as_str())
            }) {
                stack.push(j);
            }
        }
    }
    Closure {
        objects: objects
            .into_iter()
            .zip(keep)
            .filter_map(|(o, k)| k.then_some(o))
            .collect(),
    }
}

/// The canonical path of a prefix root (the path *to* the prefix is this machine's
/// business: resolving it normally is right), after checking it is a readable directory.
pub(crate) fn canonical_root(root: &Path) -> Result<PathBuf> {
    if root == Path::new("/") {
        // The process's own root: a directory, canonical by definition (the default
        // prefix, so the common case is spared four system calls).
        return Ok(PathBuf::from("/"));
    }
    let bad = |reason: String| Error::BadPrefix {
        prefix: root.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(root).map_err(|e| bad(format!("cannot access it: {e}")))?;
    if !meta.is_dir() {
        return Err(bad("not a directory".into()));
    }
    std::fs::read_dir(root).map_err(|e| bad(format!("cannot read it: {e}")))?;
    std::fs::canonicalize(root).map_err(|e| bad(format!("cannot resolve it: {e}")))
}

fn read_config(root: &Path) -> Result<LinkerConfig> {
    if let Some((inside, file)) = fs::open(root, Path::new("/etc/ld.so.cache"))? {
        let path = fs::host_path(root, &inside);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let meta = file.metadata().map_err(io)?;
        let bytes = cache::map(&file, meta.len()).map_err(io)?;
        let cache = cache::parse_bytes(bytes).map_err(|e| Error::BadConfig {
            path: path.clone(),
            reason: format!("corrupt ld.so.cache: {e}"),
        })?;
        return Ok(LinkerConfig::Cache {
            path,
            identity: fs::Identity::of(&meta),
            cache,
        });
    }
    let dirs = conf::read_dirs(root, Path::new("/etc/ld.so.conf"))?;
    Ok(if dirs.is_empty() {
        LinkerConfig::Nothing
    } else {
        LinkerConfig::Conf(dirs)
    })
}
