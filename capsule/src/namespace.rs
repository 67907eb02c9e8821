//! Loading a closure into a private link-map namespace with `dlmopen`, and walking its
//! link map.
//!
//! Every namespace starts with the interposer (see `interpose/interpose.c`): glibc makes
//! the first object of a namespace its global scope, so the interposer's `dlopen` family
//! (and, for prefixes other than `/`, its environment overlay and data-file functions)
//! win every lookup in the namespace. Next comes a forwarder of the program's libc, so
//! that the namespace never maps a libc of its own, then the closure, with forwarders for
//! the libraries shared with the program (see `sharing` and `forwarder`).
//!
//! Namespaces are never torn down: glibc cannot reclaim most of one (libLLVM is
//! NODELETE). They are shared by every capsule of the same prefix, since glibc has at
//! most 15 to give.

use std::ffi::{c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::prefix::{Closure, Origin, Prefix};
use crate::{forwarder, interposer, sharing};

use crate::dlfcn::{last_dl_error, load_error, path_cstring, Handle, Lmid};

/// glibc's DL_NNS: the base namespace plus 15.
const MAX_NAMESPACES: usize = 16;

/// One capsule namespace: a prefix, the interposer heading it, and what was loaded.
///
/// Each shim links its own copy of this runtime, so a process can hold several copies.
/// The copy that created a namespace *owns* it: its prefix, its state, and the dl
/// emulation the interposer calls. Other copies *adopt* it (found through glibc's
/// `_r_debug` list of namespaces) and load into it through the interposer's `load` entry;
/// a shim whose copy has the owner's shim code has the owner wire it up instead (`shim`).
pub(crate) struct Namespace {
    pub lmid: Lmid,
    /// The canonical prefix path, the key under which capsules share this namespace.
    key: PathBuf,
    pub interposer: interposer::Interposer,
    owned: Option<Owned>,
}

/// What the copy of the runtime that created a namespace keeps of it.
pub(crate) struct Owned {
    pub prefix: Prefix,
    pub state: Mutex<State>,
    /// The sonames shared into the namespace (each has its forwarder there).
    forwarded: Mutex<Vec<String>>,
    /// The sonames of every object the runtime loaded into the namespace (forwarders
    /// included), which a NOLOAD probe can find: any other name misses, and a missed
    /// NOLOAD `dlmopen` costs ld.so a search of the file system.
    held: Mutex<std::collections::BTreeSet<String>>,
}

/// What the runtime knows of a namespace's contents beyond its link map.
#[derive(Default)]
pub(crate) struct State {
    /// Handles searched by `dlsym(RTLD_DEFAULT)` inside the capsule, in load order: the
    /// capsules' libraries, then what the capsule dlopened with RTLD_GLOBAL (with a count,
    /// since each RTLD_GLOBAL dlopen is undone by one dlclose).
    pub global: Vec<(usize, usize)>,
}

// SAFETY: the raw pointers inside (interposer table, handles) refer to objects that are
// never unloaded, and every mutable part is behind the `state` mutex or written only
// while the namespace is being set up, before it is published.
unsafe impl Send for Namespace {}
// SAFETY: as above.
unsafe impl Sync for Namespace {}

/// Namespaces by prefix; creation is serialized by this lock.
static NAMESPACES: Mutex<Vec<&'static Namespace>> = Mutex::new(Vec::new());

/// Namespaces by lmid, read without a lock by the dl emulation's entry points.
static BY_LMID: [AtomicPtr<Namespace>; MAX_NAMESPACES] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_NAMESPACES];

/// The namespace a dl-emulation call came from, by the lmid the interposer passes.
pub(crate) fn by_lmid(lmid: Lmid) -> Option<&'static Namespace> {
    let slot = BY_LMID.get(usize::try_from(lmid).ok()?)?;
    // SAFETY: slots only ever hold pointers to leaked (`&'static`) namespaces.
    unsafe { slot.load(Ordering::Acquire).as_ref() }
}

/// The namespace for `prefix`: one this copy of the runtime knows, else one another copy
/// created (adopted), else a new one, whose interposer `dl_entries` points at the dl
/// emulation (the `dl` module, above this one).
pub(crate) fn for_prefix(
    prefix: &Path,
    dl_entries: fn(&interposer::Interposer),
) -> Result<&'static Namespace> {
    let key = crate::prefix::canonical_root(prefix)?;
    crate::phase!("prefix {} checked", key.display());
    let mut all = NAMESPACES.lock();
    if let Some(ns) = known_or_adopted(&mut all, &key) {
        return Ok(ns);
    }
    let running = crate::prefix::glibc::Running {
        libc_path: crate::loaded::running_libc_path,
        loaded: crate::loaded::glibc_facts,
    };
    let prefix = Prefix::open_canonical(key.clone(), running);
    let ns: &'static Namespace = Box::leak(Box::new(create(prefix, key, dl_entries)?));
    if let Some(slot) = usize::try_from(ns.lmid).ok().and_then(|i| BY_LMID.get(i)) {
        slot.store(ns as *const Namespace as *mut Namespace, Ordering::Release);
    }
    all.push(ns);
    Ok(ns)
}

/// The namespace for `prefix` if another copy of the runtime owns it (none is created).
pub(crate) fn of_another_copy(prefix: &Path) -> Option<&'static Namespace> {
    let key = crate::prefix::canonical_root(prefix).ok()?;
    let mut all = NAMESPACES.lock();
    known_or_adopted(&mut all, &key).filter(|ns| ns.owned.is_none())
}

/// The namespace for the canonical prefix `key` that this copy knows, else one another
/// copy created (adopted now and known from then on).
fn known_or_adopted(all: &mut Vec<&'static Namespace>, key: &Path) -> Option<&'static Namespace> {
    if let Some(ns) = all.iter().find(|ns| ns.key == key) {
        return Some(ns);
    }
    let ns: &'static Namespace = Box::leak(Box::new(adopt(key)?));
    all.push(ns);
    Some(ns)
}

/// A namespace for `key` created by another copy of the runtime, if any.
fn adopt(key: &Path) -> Option<Namespace> {
    // SAFETY: `_r_debug` is ld.so's debugger interface, a static that lives as long as
    // the process. r_version >= 2 announces the extended layout, whose r_next chain glibc
    // only ever appends to; each r_map is the head link map of a live namespace (ours
    // are never unloaded), or NULL.
    unsafe {
        let base = crate::linkmap::r_debug();
        if (*base).r_version < 2 {
            return None;
        }
        // The base namespace (the program's) is never a capsule.
        let mut r = (*base).r_next;
        while !r.is_null() {
            let head = (*r).r_map;
            r = (*r).r_next;
            let Some(handle) = std::ptr::NonNull::new(head as *mut c_void).map(Handle) else {
                continue;
            };
            // Only a capsule interposer exports `capsule_table`; glibc's handle for an
            // object is its link map.
            let Some(interposer) = interposer::Interposer::attach(handle) else {
                continue;
            };
            if interposer.prefix() == key && interposer.has_loader() {
                crate::debug!(
                    Libs,
                    "namespace {} for prefix {} shared with another copy of the runtime",
                    interposer.lmid(),
                    key.display()
                );
                return Some(Namespace {
                    lmid: interposer.lmid(),
                    key: key.to_path_buf(),
                    interposer,
                    owned: None,
                });
            }
        }
    }
    None
}

/// Create a namespace: the interposer first, its table filled, then libc's forwarder.
fn create(
    prefix: Prefix,
    key: PathBuf,
    dl_entries: fn(&interposer::Interposer),
) -> Result<Namespace> {
    let interposer = interposer::Interposer::load_into_new_namespace(&key)?;
    crate::phase!("namespace created with the interposer");
    let lmid = interposer.lmid();
    dl_entries(&interposer);
    interposer.with_table(|t| t.forwarder_init = Some(forwarder::on_init));
    interposer.attach_program_libc()?;
    crate::hostenv::prepare(&interposer)?;
    crate::phase!("interposer table filled");
    let ns = Namespace {
        lmid,
        key,
        interposer,
        owned: Some(Owned {
            prefix,
            state: Mutex::new(State::default()),
            forwarded: Mutex::new(Vec::new()),
            held: Mutex::new(std::collections::BTreeSet::new()),
        }),
    };
    if !ns.share("libc.so.6", None)? {
        return Err(Error::Dl {
            operation: "find",
            target: "the program's libc.so.6".into(),
            message: last_dl_error(),
        });
    }
    ns.interposer
        .with_table(|t| t.load = Some(load_for_another_copy));
    crate::debug!(
        Libs,
        "namespace {lmid} created for prefix {}",
        ns.key.display()
    );
    Ok(ns)
}

/// The interposer's `load` entry: another copy of the runtime asks the owner to load a
/// library into its namespace.
extern "C" fn load_for_another_copy(
    lmid: Lmid,
    library: *const libc::c_char,
    error: *mut libc::c_char,
    error_len: usize,
) -> *mut c_void {
    let result = match by_lmid(lmid) {
        // SAFETY: the caller passes a NUL-terminated library name.
        Some(ns) => ns.load_library(&unsafe { CStr::from_ptr(library) }.to_string_lossy()),
        None => Err(Error::Dl {
            operation: "load into",
            target: format!("namespace {lmid}"),
            message: "this copy of the runtime does not own it".into(),
        }),
    };
    match result {
        Ok(loaded) => loaded.handle.as_ptr(),
        Err(e) => {
            let message = e.to_string();
            let n = message.len().min(error_len.saturating_sub(1));
            // SAFETY: the caller's buffer holds error_len bytes; we write n + 1 <= that.
            unsafe {
                std::ptr::copy_nonoverlapping(message.as_ptr(), error.cast::<u8>(), n);
                *error.add(n) = 0;
            }
            std::ptr::null_mut()
        }
    }
}

/// How one object of a closure is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Share {
    /// From its file in the prefix.
    Private,
    /// As a forwarder to the program's copy.
    Forwarder,
    /// Not at all (ld.so, or needed only by shared libraries).
    Skip,
}

/// A library loaded into a namespace.
pub(crate) struct Loaded {
    pub handle: Handle,
    pub soname: String,
    pub path: PathBuf,
}

impl Namespace {
    /// Offer the copies of the runtime that adopt this namespace (if this copy owns it) an
    /// entry that wires their shims up (see `shim`), for those whose shim code hashes to
    /// `abi`.
    pub fn offer_shim_entry(&self, abi: u64, entry: extern "C" fn(*const c_void) -> c_int) {
        if self.owned.is_some() {
            self.interposer.with_table(|t| {
                t.shim_abi = abi as libc::c_ulong;
                t.shim_init = Some(entry);
            });
        }
    }

    /// The owner's prefix and state; `None` in a namespace adopted from another copy.
    pub fn owned(&self) -> Option<&Owned> {
        self.owned.as_ref()
    }

    /// Resolve `library` in the prefix, load its closure, and make it visible to
    /// `dlsym(RTLD_DEFAULT)` inside the capsule, as a library the program linked would be.
    pub fn load_library(&self, library: &str) -> Result<Loaded> {
        let Some(owned) = &self.owned else {
            return self.load_through_owner(library);
        };
        let closure = owned.prefix.resolve_closure(library)?;
        crate::phase!(
            "{library}: closure resolved ({} objects)",
            closure.objects.len()
        );
        let mode = libc::RTLD_NOW | libc::RTLD_LOCAL;
        // The closure's objects stay loaded with the library: their handles are kept.
        let (_, handle) = self.load_closure(&closure, mode, mode)?;
        let (Some(object), Some(handle)) = (closure.objects.last(), handle) else {
            return Err(Error::NotFound {
                library: library.into(),
                prefix: owned.prefix.root().to_path_buf(),
                needed_by: None,
                searched: Vec::new(),
            });
        };
        self.add_global(handle);
        crate::phase!("{library}: made visible to dlsym(RTLD_DEFAULT) inside");
        crate::debug!(
            Libs,
            "{library}: loaded; namespace {} holds {} object(s)",
            self.lmid,
            self.objects().len()
        );
        Ok(Loaded {
            handle,
            soname: object.soname.clone(),
            path: object.path.clone(),
        })
    }

    fn load_through_owner(&self, library: &str) -> Result<Loaded> {
        let name = CString::new(library).map_err(|_| Error::Dl {
            operation: "load",
            target: library.into(),
            message: "the name contains a NUL byte".into(),
        })?;
        let mut error = vec![0u8; 4096];
        let load = self.interposer.loader().ok_or_else(|| Error::Dl {
            operation: "load into",
            target: format!("namespace {}", self.lmid),
            message: "the namespace's owner offers no loader".into(),
        })?;
        let raw = load(
            self.lmid,
            name.as_ptr(),
            error.as_mut_ptr() as *mut libc::c_char,
            error.len(),
        );
        let Some(handle) = std::ptr::NonNull::new(raw).map(Handle) else {
            let end = error.iter().position(|&b| b == 0).unwrap_or(0);
            return Err(Error::Shared {
                message: String::from_utf8_lossy(&error[..end]).into_owned(),
            });
        };
        let path = handle.path();
        let soname = if library.contains('/') {
            path.file_name()
                .map_or(library.into(), |f| f.to_string_lossy().into_owned())
        } else {
            library.to_string()
        };
        Ok(Loaded {
            handle,
            soname,
            path,
        })
    }

    /// Load every object of `closure` that the namespace lacks, dependencies first:
    /// shared libraries as forwarders to the program's copies (see `sharing`), the rest
    /// from their files in the prefix, each with `deps_mode`, the requested object (last)
    /// with `mode`. Returns the handles of the private dependencies loaded (in closure
    /// order), which the caller owns, and a handle of the requested object (`None` for
    /// ld.so, which every namespace shares).
    pub fn load_closure(
        &self,
        closure: &Closure,
        deps_mode: libc::c_int,
        mode: libc::c_int,
    ) -> Result<(Vec<Handle>, Option<Handle>)> {
        let plan = self.plan(closure)?;
        let mut handles = Vec::with_capacity(closure.objects.len());
        let last = closure.objects.len().saturating_sub(1);
        let mut target = None;
        for (i, object) in closure.objects.iter().enumerate() {
            let mode = if i == last { mode } else { deps_mode };
            let handle = match plan[i] {
                Share::Skip => continue,
                Share::Forwarder => {
                    let host = (object.origin != Origin::System).then_some(object.path.as_path());
                    if self.share(&object.soname, host)? {
                        if i == last {
                            // One more reference, for the caller to own.
                            target = self.find_loaded(Path::new(&object.soname), mode);
                        }
                        continue;
                    }
                    // The program's tree lacks it: the host's copy, private.
                    self.open(&object.path, mode, &object.soname)?
                }
                Share::Private => self.open(&object.path, mode, &object.soname)?,
            };
            self.note_held(&object.soname);
            if i == last {
                target = Some(handle);
            } else {
                handles.push(handle);
            }
        }
        Ok((handles, target))
    }

    /// How each object of `closure` is loaded: the shared libraries the program has (or
    /// its tree gives) as forwarders, the rest privately; objects that only shared
    /// libraries need are not loaded at all (the program's copies bring their own), nor
    /// is ld.so. Refuses, before anything is loaded, a closure whose objects need what a
    /// program's copy lacks (see `sharing::check_skew`).
    fn plan(&self, closure: &Closure) -> Result<Vec<Share>> {
        let objects = &closure.objects;
        let mut plan = Vec::with_capacity(objects.len());
        for object in objects {
            let wanted = sharing::is_shared(&object.soname)?;
            let shared = wanted
                && (crate::prefix::glibc::is_glibc(&object.soname)
                    || self.program_copy(&object.soname).is_some());
            plan.push(if object.soname.starts_with("ld-linux") {
                Share::Skip
            } else if shared {
                Share::Forwarder
            } else {
                if wanted {
                    crate::debug!(
                        Libs,
                        "{}: the program's tree has none to share: the host's copy ({}) stays private to the capsule",
                        object.soname,
                        object.path.display()
                    );
                }
                Share::Private
            });
        }
        // Keep what the requested object reaches without passing through a shared one.
        let mut reached = vec![false; objects.len()];
        let mut stack: Vec<usize> = objects.len().checked_sub(1).into_iter().collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reached[i], true) || plan[i] != Share::Private {
                continue;
            }
            for name in &objects[i].needed {
                if let Some(j) = objects.iter().position(|o| &o.soname == name) {
                    stack.push(j);
                }
            }
        }
        for (i, r) in reached.iter().enumerate() {
            if !r {
                plan[i] = Share::Skip;
            }
        }
        self.check_skew(closure, &plan)?;
        Ok(plan)
    }

    /// Refuse `closure` if one of its private objects needs what the program's copy of a
    /// shared library lacks (other than functions, which become stubs).
    fn check_skew(&self, closure: &Closure, plan: &[Share]) -> Result<()> {
        let objects = &closure.objects;
        // The shared libraries whose program copy is another file than the host's: the
        // only ones a skew can come from. Each is read once, whoever needs it.
        let mut skewed = Vec::new();
        for (j, host) in objects.iter().enumerate() {
            if plan[j] != Share::Forwarder || host.origin == Origin::System {
                continue;
            }
            let Some(copy) = self.program_copy(&host.soname) else {
                continue;
            };
            if !sharing::same_file(&copy.path, &host.path) {
                skewed.push((host, copy, sharing::host_symbols(&host.path)?));
            }
        }
        if skewed.is_empty() {
            return Ok(());
        }
        let mut views = Vec::with_capacity(skewed.len());
        for (host, copy, symbols) in &skewed {
            // SAFETY: program copies are never unloaded.
            let program = unsafe { crate::elf::Object::from_link_map(copy.handle.link_map()) }?;
            let exports = symbols.exports().map_err(sharing::bad_elf(&host.path))?;
            views.push((*host, *copy, program, exports));
        }
        for (i, needer) in objects.iter().enumerate() {
            let needs: Vec<_> = views
                .iter()
                .filter(|(host, ..)| needer.needed.contains(&host.soname))
                .collect();
            if plan[i] != Share::Private || needs.is_empty() {
                continue;
            }
            let needer_symbols = sharing::host_symbols(&needer.path)?;
            for (host, copy, program, host_exports) in needs {
                let name = &host.soname;
                let stubbed = sharing::check_skew(
                    (&needer.soname, &needer.path, &needer_symbols),
                    name,
                    program,
                    &copy.path,
                    host_exports,
                    &host.path,
                )?;
                if !stubbed.is_empty() {
                    crate::debug!(
                        Libs,
                        "{} ({}) calls {} function(s) of {name} that the program's copy ({}) lacks: {}; each aborts with a message if called",
                        needer.soname,
                        needer.path.display(),
                        stubbed.len(),
                        copy.path.display(),
                        stubbed.join(", ")
                    );
                }
            }
        }
        Ok(())
    }

    /// The program's copy of the shared library `soname` (loaded from its tree if it had
    /// not loaded it), remembered per process.
    fn program_copy(&self, soname: &str) -> Option<&'static sharing::ProgramCopy> {
        static COPIES: Mutex<Vec<(String, Option<&'static sharing::ProgramCopy>)>> =
            Mutex::new(Vec::new());
        let mut copies = COPIES.lock();
        if let Some((_, copy)) = copies.iter().find(|(s, _)| s == soname) {
            return *copy;
        }
        let copy = sharing::program_copy(soname).map(|c| &*Box::leak(Box::new(c)));
        copies.push((soname.to_string(), copy));
        copy
    }

    fn note_held(&self, soname: &str) {
        if let Some(owned) = &self.owned {
            owned.held.lock().insert(soname.to_string());
        }
    }

    /// Whether the namespace may hold an object of soname `soname` (false: certainly
    /// not; an object the runtime loaded may have been unloaded since).
    pub fn may_hold(&self, soname: &str) -> bool {
        self.owned
            .as_ref()
            .is_none_or(|owned| owned.held.lock().contains(soname))
    }

    /// Put a forwarder to the program's copy of `soname` into this namespace if `soname`
    /// is shared and the program has loaded it (nothing is loaded into the program).
    pub fn share_if_program_has(&self, soname: &str) -> Result<bool> {
        if !sharing::is_shared(soname)? || !crate::loaded::has_loaded(soname) {
            return Ok(false);
        }
        self.share(soname, None)
    }

    /// Put a forwarder to the program's copy of `soname` into this namespace (unless one
    /// is there already). `host`: the host's copy, whose functions the program's copy
    /// lacks become stubs. False when the program's tree has no copy.
    fn share(&self, soname: &str, host: Option<&Path>) -> Result<bool> {
        let Some(owned) = &self.owned else {
            return Ok(false);
        };
        // Not held while loading (ld.so's lock is taken then, and a constructor running
        // under it may share into this namespace too). Two threads making the same
        // forwarder at once load the same cache file, which ld.so loads once; with no
        // cache, the second copy is never found (the first holds the soname).
        if owned.forwarded.lock().iter().any(|s| s == soname) {
            return Ok(true);
        }
        let Some(copy) = self.program_copy(soname) else {
            return Ok(false);
        };
        let identity = sharing::copy_identity(copy.handle.link_map());
        let source = forwarder::Source {
            soname,
            program: copy.handle.link_map(),
            program_path: &copy.path,
            program_build_id: identity.build_id.as_deref(),
            host: host.filter(|path| !sharing::same_file(&copy.path, path)),
            scope: identity.scope.as_deref(),
            remembered: None,
        };
        let name = forwarder::file_name(&source);
        let remembering = source.scope.and_then(|_| crate::disk_cache::find(&name));
        // Until a file remembers the activation in this program's scope (written once a
        // walk has found what to remember, below), the file every program shares, walked
        // at each activation.
        let made_from = match remembering {
            Some(_) => source,
            None => forwarder::Source {
                scope: None,
                ..source
            },
        };
        let stored = match remembering {
            Some(path) => crate::disk_cache::Stored::File(path),
            None => crate::disk_cache::cached_or_built(
                &forwarder::file_name(&made_from),
                c"capsule-forwarder",
                || forwarder::image(&made_from),
            )?,
        };
        crate::phase!("{soname}: forwarder found or written");
        let open = |path: &Path| {
            forwarder::expect(
                self.lmid,
                soname,
                self.interposer.link_map(),
                copy.handle.link_map(),
            );
            let opened = self.open(path, libc::RTLD_NOW | libc::RTLD_LOCAL, soname);
            (opened, forwarder::outcome(self.lmid, soname))
        };
        let (handle, outcome) = match open(stored.path()) {
            (Ok(handle), outcome) => (handle, outcome),
            (Err(e), _) if matches!(stored, crate::disk_cache::Stored::File(_)) => {
                // A damaged file (cut short by a full disk, say): loaded from memory now,
                // and replaced for the next process.
                let image = forwarder::image(&made_from)?;
                let replaced = match stored.path().parent() {
                    Some(dir) => crate::disk_cache::store(dir, stored.path(), &image),
                    None => Err("no directory".into()),
                };
                crate::debug!(
                    Libs,
                    "{e}; loading the forwarder from memory ({})",
                    replaced.map_or_else(
                        |why| format!("not replaced: {why}"),
                        |()| "file replaced".into()
                    )
                );
                let (fd, path) = crate::disk_cache::in_memory(c"capsule-forwarder", &image)?;
                let (opened, outcome) = open(&path);
                std::mem::forget(fd);
                (opened?, outcome)
            }
            (Err(e), _) => return Err(e),
        };
        if let crate::disk_cache::Stored::Memory(fd, _) = stored {
            // Kept open for the life of the process, so that debuggers can read the name.
            std::mem::forget(fd);
        }
        let activated = match outcome {
            Some(result) => result?,
            // Its constructor did not run: another thread loaded the same file into the
            // namespace first, and activated it.
            // SAFETY: the handle is a live link map (just returned by dlmopen).
            None if unsafe { (*handle.link_map()).l_addr == (*copy.handle.link_map()).l_addr } => {
                forwarder::Activated::default()
            }
            None => {
                return Err(Error::Dl {
                    operation: "activate the forwarder",
                    target: format!("{soname} ({})", handle.path().display()),
                    message: "its constructor did not run".into(),
                })
            }
        };
        crate::phase!("{soname}: forwarder loaded and activated");
        if let (Some(found), Some(_)) = (&activated.walked, source.scope) {
            let written = match forwarder::remember(source, &name, found) {
                Ok(()) => "written, remembering its activation".to_string(),
                Err(why) => format!("not written: {why}"),
            };
            crate::debug!(Libs, "{soname}: forwarder {name} {written}");
        }
        crate::debug!(
            Libs,
            "{soname} => shared with the program: {} (forwarder {}{})",
            copy.path.display(),
            handle.path().display(),
            if activated.interposed > 0 {
                format!(
                    ", {} symbol(s) from objects before it in the program's scope",
                    activated.interposed
                )
            } else {
                String::new()
            }
        );
        let mut forwarded = owned.forwarded.lock();
        if !forwarded.iter().any(|s| s == soname) {
            forwarded.push(soname.to_string());
        }
        drop(forwarded);
        self.note_held(soname);
        if !activated.stubs.is_empty() {
            crate::debug!(
                Libs,
                "{soname}: {} function(s) of the host's copy that the program's lacks are stubs that abort if called: {}",
                activated.stubs.len(),
                activated.stubs.join(", ")
            );
        }
        Ok(true)
    }

    /// `dlmopen` one file into this namespace, mapping glibc's errors to ours.
    pub fn open(&self, path: &Path, mode: libc::c_int, name: &str) -> Result<Handle> {
        match self.dlmopen(&path_cstring(path)?, mode) {
            Some(handle) => {
                crate::phase!("{name}: dlmopen");
                Ok(handle)
            }
            None => Err(load_error(name, path, &last_dl_error())),
        }
    }

    /// The object `path` (a soname, or a path as loaded) names if the namespace holds it,
    /// with a reference taken as any dlmopen takes one; None when it does not. Nothing is
    /// loaded, and a miss, the common answer, builds no error.
    pub fn find_loaded(&self, path: &Path, mode: libc::c_int) -> Option<Handle> {
        self.dlmopen(&path_cstring(path).ok()?, mode | libc::RTLD_NOLOAD)
    }

    fn dlmopen(&self, path: &CStr, mode: libc::c_int) -> Option<Handle> {
        // SAFETY: path is NUL-terminated; self.lmid is a live namespace; the mode never
        // holds RTLD_GLOBAL, which glibc rejects for namespaces other than the base.
        // (With RTLD_NOLOAD, nothing is mapped and no constructor runs.)
        let raw = unsafe {
            libc::dlmopen(
                self.lmid,
                path.as_ptr(),
                mode & !(libc::RTLD_GLOBAL | libc::RTLD_DEEPBIND),
            )
        };
        NonNull::new(raw).map(Handle)
    }

    /// Every object in the namespace, in link-map order.
    pub fn objects(&self) -> Vec<crate::LoadedObject> {
        let head = self.interposer.link_map();
        // SAFETY: the interposer heading the namespace is never closed; each link map is
        // read while the loader's list lock keeps it alive, and its name is copied out.
        unsafe {
            crate::linkmap::namespace_of(head, |map| crate::LoadedObject {
                path: (*map).path(),
                base: (*map).l_addr,
            })
        }
    }

    /// Add `handle` to the scope `dlsym(RTLD_DEFAULT)` searches inside the capsule.
    pub fn add_global(&self, handle: Handle) {
        let Some(owned) = &self.owned else { return };
        let mut state = owned.state.lock();
        let key = handle.as_usize();
        match state.global.iter_mut().find(|(h, _)| *h == key) {
            Some((_, count)) => *count += 1,
            None => state.global.push((key, 1)),
        }
    }

    /// Undo one `add_global`; returns whether the handle was global.
    pub fn remove_global(&self, handle: usize) -> bool {
        let Some(owned) = &self.owned else {
            return false;
        };
        let mut state = owned.state.lock();
        let Some(index) = state.global.iter().position(|(h, _)| *h == handle) else {
            return false;
        };
        state.global[index].1 -= 1;
        if state.global[index].1 == 0 {
            state.global.remove(index);
        }
        true
    }

    /// The handles `dlsym(RTLD_DEFAULT)` searches, in order.
    pub fn global_handles(&self) -> Vec<usize> {
        self.owned.as_ref().map_or(Vec::new(), |o| {
            o.state.lock().global.iter().map(|(h, _)| *h).collect()
        })
    }
}
