//! The closure search: ld.so's `_dl_map_object` order, breadth first like ld.so loads,
//! with every directory taken inside the prefix.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::fs::{self, host_path, Identity};
use super::glibc::{self, Versioned};
use super::{Closure, LinkerConfig, Object, Origin, Prefix};
use crate::elffile::{self, ElfFile};
use crate::error::{Error, Result};
use crate::machine::Machine;

/// One object met by the search.
struct Node {
    soname: String,
    /// The file on this machine, symlinks resolved inside its tree.
    path: PathBuf,
    /// The path in the tree it was found by (its directory is `$ORIGIN`, as ld.so takes
    /// it from the name it opened, not the symlink target); None outside the prefix.
    found_as: Option<PathBuf>,
    origin: Origin,
    file: ElfFile,
    /// The object whose DT_NEEDED first asked for it: the next link of the RPATH chain.
    loader: Option<usize>,
    deps: Vec<usize>,
    /// The dlopen caller given to `resolve_closure_from`: a link of the chain, not an
    /// object of the closure.
    external: bool,
}

/// A file the search settled on.
struct Found {
    path: PathBuf,
    found_as: Option<PathBuf>,
    origin: Origin,
    file: ElfFile,
    /// The file's identity when it was read (None for glibc's libraries read from memory).
    identity: Option<Identity>,
}

/// The files a closure was decided by: paths of the host tree and their identities.
pub type Inputs = Vec<(PathBuf, Identity)>;

struct Search<'a> {
    prefix: &'a Prefix,
    is_loaded: &'a dyn Fn(&str) -> bool,
    nodes: Vec<Node>,
    /// Requested names and sonames, to the node that answers them. A B-tree: a handful of
    /// names, and a HashMap's first use per thread costs a getrandom system call.
    by_name: BTreeMap<String, usize>,
    /// What the answer was decided by, for the memo; None when it also depended on
    /// something no file identity stands for (see `note_input`).
    inputs: Option<Inputs>,
}

/// The `CAPSULE_DEBUG=libs` line for a resolved object: the same whether the search found
/// it or a remembered closure holds it (which a line of its own says), so that what reads
/// these lines sees one format.
pub(super) fn announce(soname: &str, path: &Path, origin: Origin, needed_by: Option<&str>) {
    crate::debug!(
        Libs,
        "{soname} => {} ({origin}{})",
        path.display(),
        needed_by
            .map(|b| format!(", needed by {b}"))
            .unwrap_or_default()
    );
}

/// See [`Prefix::resolve_closure_from`]; with the files the closure was decided by, when
/// files alone decided it (see `Search::note_input`).
pub fn closure(
    prefix: &Prefix,
    library: &str,
    requester: Option<&Path>,
    is_loaded: &dyn Fn(&str) -> bool,
) -> Result<(Closure, Option<Inputs>)> {
    let mut search = Search {
        prefix,
        is_loaded,
        nodes: Vec::new(),
        by_name: BTreeMap::new(),
        inputs: Some(Vec::new()),
    };
    if is_loaded(library) {
        let empty = Closure {
            objects: Vec::new(),
        };
        return Ok((empty, None));
    }
    let loader = requester
        .map(|path| search.add_requester(path))
        .transpose()?;
    let found = search.find(library, loader, None)?;
    let root = search.add(library, found, loader, None);
    search.walk(root)?;
    let order = search.order(root);
    search.check_versions(&order)?;
    let closure = Closure {
        objects: order.iter().map(|&i| search.object(i)).collect(),
    };
    Ok((closure, search.inputs))
}

impl Search<'_> {
    fn add_requester(&mut self, path: &Path) -> Result<usize> {
        let file = elffile::read(path, self.prefix.machine).map_err(|reason| Error::BadElf {
            path: path.to_path_buf(),
            reason,
        })?;
        let found_as = path
            .strip_prefix(&self.prefix.root)
            .ok()
            .map(|inside| Path::new("/").join(inside));
        if found_as.is_none() {
            crate::debug!(
                Libs,
                "{}: outside prefix {}, its RPATH/RUNPATH/$ORIGIN are not used",
                path.display(),
                self.prefix.root.display()
            );
        }
        self.nodes.push(Node {
            soname: file.soname.clone().unwrap_or_else(|| file_name(path)),
            path: path.to_path_buf(),
            found_as,
            origin: Origin::Explicit,
            file,
            loader: None,
            deps: Vec::new(),
            external: true,
        });
        Ok(self.nodes.len() - 1)
    }

    fn add(&mut self, asked: &str, found: Found, loader: Option<usize>, by: Option<&str>) -> usize {
        let soname = found
            .file
            .soname
            .clone()
            .unwrap_or_else(|| file_name(Path::new(asked)));
        announce(&soname, &found.path, found.origin, by);
        let index = self.nodes.len();
        self.by_name.insert(asked.to_string(), index);
        self.by_name.insert(soname.clone(), index);
        self.nodes.push(Node {
            soname,
            path: found.path,
            found_as: found.found_as,
            origin: found.origin,
            file: found.file,
            loader,
            deps: Vec::new(),
            external: false,
        });
        index
    }

    /// Resolve every DT_NEEDED breadth first from `root`, as ld.so's `_dl_map_object_deps`.
    fn walk(&mut self, root: usize) -> Result<()> {
        let mut queue = VecDeque::from([root]);
        while let Some(at) = queue.pop_front() {
            for name in self.nodes[at].file.needed.clone() {
                if let Some(&known) = self.by_name.get(&name) {
                    self.nodes[at].deps.push(known);
                    continue;
                }
                if (self.is_loaded)(&name) {
                    continue;
                }
                if self.nodes[at].origin == Origin::System
                    && !glibc::is_glibc_on(self.prefix.machine, &name)
                {
                    crate::debug!(
                        Libs,
                        "{name} (needed by {}) not followed: glibc's libraries take nothing from the prefix",
                        self.nodes[at].soname
                    );
                    continue;
                }
                let by = self.nodes[at].soname.clone();
                let found = self.find(&name, Some(at), Some(&by))?;
                let soname = found.file.soname.clone();
                let same = soname
                    .as_ref()
                    .and_then(|s| self.by_name.get(s).copied())
                    .or_else(|| self.nodes.iter().position(|n| n.path == found.path));
                if let Some(known) = same {
                    self.by_name.insert(name, known);
                    self.nodes[at].deps.push(known);
                    continue;
                }
                if soname.as_deref().is_some_and(|s| (self.is_loaded)(s)) {
                    continue;
                }
                let new = self.add(&name, found, Some(at), Some(&by));
                self.nodes[at].deps.push(new);
                queue.push_back(new);
            }
        }
        Ok(())
    }

    /// Dependencies first, `root` last (depth-first post-order; a cycle is cut where it
    /// closes).
    fn order(&self, root: usize) -> Vec<usize> {
        fn visit(nodes: &[Node], at: usize, seen: &mut [bool], out: &mut Vec<usize>) {
            if seen[at] {
                return;
            }
            seen[at] = true;
            for &dep in &nodes[at].deps {
                visit(nodes, dep, seen, out);
            }
            out.push(at);
        }
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        visit(&self.nodes, root, &mut seen, &mut out);
        out.retain(|&i| !self.nodes[i].external);
        out
    }

    fn check_versions(&self, order: &[usize]) -> Result<()> {
        let objects: Vec<Versioned<'_>> = order
            .iter()
            .map(|&i| Versioned {
                soname: &self.nodes[i].soname,
                path: &self.nodes[i].path,
                system: self.nodes[i].origin == Origin::System,
                file: &self.nodes[i].file,
            })
            .collect();
        glibc::check_versions(&objects, self.prefix.machine)
    }

    fn object(&self, at: usize) -> Object {
        let node = &self.nodes[at];
        Object {
            soname: node.soname.clone(),
            path: node.path.clone(),
            origin: node.origin,
            needed: node.file.needed.clone(),
            needed_by: node
                .loader
                .filter(|&l| !self.nodes[l].external)
                .map(|l| self.nodes[l].soname.clone()),
        }
    }

    /// Find `name` as ld.so would for an object whose loader is `loader`.
    fn find(&mut self, name: &str, loader: Option<usize>, by: Option<&str>) -> Result<Found> {
        let mut searched = Vec::new();
        let found = if glibc::is_glibc_on(self.prefix.machine, file_name(Path::new(name)).as_str())
        {
            find_system(self.prefix, name, &mut searched)?
        } else if name.contains('/') {
            try_file(
                self.prefix,
                Path::new(name),
                Origin::Explicit,
                &mut searched,
            )?
        } else {
            self.find_soname(name, loader, &mut searched)?
        };
        let Some(found) = found else {
            return Err(Error::NotFound {
                library: name.to_string(),
                prefix: self.prefix.root.clone(),
                needed_by: by.map(str::to_string),
                searched,
            });
        };
        self.note_input(&found, &searched);
        Ok(found)
    }

    /// Keep the files `found` was decided by, for the memo: the file itself (a path the
    /// caller named, a directory entry, an `ld.so.cache` entry), `ld.so.cache` where it
    /// was consulted, and each place tried before it (`searched`, host paths, the last
    /// one `found`'s): a file passed over by its identity, a file that was not there by
    /// its directory's (adding a file changes the directory), or the nearest directory
    /// above that exists. A glibc library depends on the running glibc, which is part of
    /// the memo's key. Where the linker configuration is `ld.so.conf` rather than a cache,
    /// nothing is remembered (the configuration's files are not tracked).
    fn note_input(&mut self, found: &Found, searched: &[PathBuf]) {
        if self.inputs.is_none() {
            return;
        }
        let decided_by = self.decided_by(found, searched);
        match (&mut self.inputs, decided_by) {
            (Some(inputs), Some(new)) => {
                for input in new {
                    if !inputs.contains(&input) {
                        inputs.push(input);
                    }
                }
            }
            _ => self.inputs = None,
        }
    }

    /// What [`Search::note_input`] keeps for `found`; `None` when something no file
    /// identity stands for had a say.
    fn decided_by(&self, found: &Found, searched: &[PathBuf]) -> Option<Inputs> {
        let root = &self.prefix.root;
        let (cache, conf) = match self.prefix.config() {
            Ok(LinkerConfig::Cache { path, identity, .. }) => {
                (Some((path.clone(), *identity)), false)
            }
            Ok(LinkerConfig::Conf(_)) => (None, true),
            _ => (None, false),
        };
        let before = &searched[..searched.len().saturating_sub(1)];
        let mut inputs = Vec::new();
        match (found.origin, found.identity, &found.found_as) {
            (Origin::System, _, _) if before.is_empty() => {}
            // The directories ld.so.conf named were tried.
            (Origin::Conf | Origin::Default, _, _) if conf => return None,
            (Origin::System, _, _) => return None,
            (_, Some(identity), Some(inside)) => inputs.push((inside.clone(), identity)),
            _ => return None,
        }
        let cache_consulted = found.origin == Origin::Cache
            || cache
                .as_ref()
                .is_some_and(|(path, _)| searched.contains(path));
        if cache_consulted {
            let (_, identity) = cache.as_ref()?;
            inputs.push((PathBuf::from("/etc/ld.so.cache"), *identity));
        }
        for host in before {
            if cache.as_ref().is_some_and(|(path, _)| path == host) {
                continue;
            }
            inputs.push(passed_over(root, host.strip_prefix(root).ok()?)?);
        }
        Some(inputs)
    }

    fn find_soname(
        &self,
        name: &str,
        loader: Option<usize>,
        searched: &mut Vec<PathBuf>,
    ) -> Result<Option<Found>> {
        let loader_node = loader.map(|l| &self.nodes[l]);
        // DT_RPATH of the loader, then of its loader, and on up; not at all when the
        // loader has a DT_RUNPATH.
        if loader_node.is_none_or(|l| !l.file.has_runpath) {
            let mut link = loader;
            while let Some(at) = link {
                let node = &self.nodes[at];
                if let Some(found) =
                    self.try_dirs(node, &node.file.rpath, name, Origin::Rpath, searched)?
                {
                    return Ok(Some(found));
                }
                link = node.loader;
            }
        }
        if let Some(node) = loader_node {
            if let Some(found) =
                self.try_dirs(node, &node.file.runpath, name, Origin::Runpath, searched)?
            {
                return Ok(Some(found));
            }
            if node.file.nodeflib {
                return Ok(None);
            }
        }
        find_standard(self.prefix, name, searched)
    }

    /// Try `name` in each of `node`'s RPATH or RUNPATH entries, `$ORIGIN` and friends
    /// expanded inside the prefix.
    fn try_dirs(
        &self,
        node: &Node,
        entries: &[String],
        name: &str,
        origin: Origin,
        searched: &mut Vec<PathBuf>,
    ) -> Result<Option<Found>> {
        for entry in entries {
            let Some(dir) = expand_dst(entry, node.found_as.as_deref(), self.prefix.machine) else {
                crate::debug!(
                    Libs,
                    "{}: search path entry {entry:?} skipped (relative, or $ORIGIN outside the prefix)",
                    node.soname
                );
                continue;
            };
            if let Some(found) = try_file(self.prefix, &dir.join(name), origin, searched)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// What stands for a place the search tried and passed over (`rest`, relative to the
/// prefix root): the file's identity when it is there (it was not usable), else that of
/// the nearest directory above it that exists (the file's appearing changes it).
fn passed_over(root: &Path, rest: &Path) -> Option<(PathBuf, Identity)> {
    let mut inside = Path::new("/").join(rest);
    loop {
        if let Some(identity) = fs::identity(root, &inside).ok()? {
            return Some((inside, identity));
        }
        inside = inside.parent()?.to_path_buf();
    }
}

/// The prefix's cache (else its conf directories), then the default directories.
fn find_standard(
    prefix: &Prefix,
    name: &str,
    searched: &mut Vec<PathBuf>,
) -> Result<Option<Found>> {
    match prefix.config()? {
        LinkerConfig::Cache { path, cache, .. } => {
            for file in cache.lookup(name, prefix.machine) {
                if let Some(found) = try_file(prefix, file, Origin::Cache, searched)? {
                    return Ok(Some(found));
                }
            }
            searched.push(path.clone());
        }
        LinkerConfig::Conf(dirs) => {
            for dir in dirs {
                if let Some(found) = try_file(prefix, &dir.join(name), Origin::Conf, searched)? {
                    return Ok(Some(found));
                }
            }
        }
        LinkerConfig::Nothing => {}
    }
    for dir in prefix.machine.default_dirs() {
        if let Some(found) = try_file(
            prefix,
            &Path::new(dir).join(name),
            Origin::Default,
            searched,
        )? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// A glibc library of `prefix`'s machine from the running system: the program's loaded
/// copy (read from memory) where the runtime handed those in, else `/` searched as ld.so
/// would (cache, then default directories). For another machine than this process's, no
/// copy is loaded: a program of that machine would run on the system's glibc for it,
/// which `/` holds.
fn find_system(prefix: &Prefix, name: &str, searched: &mut Vec<PathBuf>) -> Result<Option<Found>> {
    let loaded = prefix
        .running()
        .and_then(|running| (running.loaded)(&file_name(Path::new(name))));
    if let Some((path, file)) = loaded {
        return Ok(Some(Found {
            path,
            found_as: None,
            origin: Origin::System,
            file,
            identity: None,
        }));
    }
    let system = system_prefix(prefix.machine);
    let found = if name.contains('/') {
        try_file(system, Path::new(name), Origin::System, searched)?
    } else {
        find_standard(system, name, searched)?
    };
    Ok(found.map(|f| Found {
        origin: Origin::System,
        found_as: None,
        ..f
    }))
}

/// The running system's root searched for `machine`, once per process and machine (its
/// configuration read when first needed, and shared by all machines). `/` is a
/// directory, and the process reads it all the time.
pub(super) fn system_prefix(machine: Machine) -> &'static Prefix {
    static SYSTEM: [OnceLock<Prefix>; Machine::ALL.len()] =
        [const { OnceLock::new() }; Machine::ALL.len()];
    let at = Machine::ALL.iter().position(|&m| m == machine).unwrap_or(0);
    SYSTEM[at].get_or_init(|| Prefix::unread(PathBuf::from("/"), machine, None))
}

/// `inside` if it is a usable shared object of the prefix's machine; a file ld.so would
/// pass over is skipped (with a debug line) so that the search goes on, as ld.so's does.
fn try_file(
    prefix: &Prefix,
    inside: &Path,
    origin: Origin,
    searched: &mut Vec<PathBuf>,
) -> Result<Option<Found>> {
    let inside = Path::new("/").join(inside);
    searched.push(host_path(&prefix.root, &inside));
    let Some((real, file)) = fs::open(&prefix.root, &inside)? else {
        return Ok(None);
    };
    let path = host_path(&prefix.root, &real);
    let identity = file.metadata().ok().map(|m| Identity::of(&m));
    match elffile::read_file(file, prefix.machine) {
        Ok(file) => Ok(Some(Found {
            path,
            found_as: Some(inside),
            origin,
            file,
            identity,
        })),
        Err(reason) => {
            crate::debug!(Libs, "{}: skipped: {reason}", path.display());
            Ok(None)
        }
    }
}

/// Expand `$ORIGIN`, `$LIB`, `$PLATFORM` (bare or braced) in a search path entry, the
/// last two as `machine`'s ld.so expands them. `$ORIGIN` is the directory of `found_as`,
/// a path of the prefix. None when the result is not absolute (ld.so would take it from
/// the program's working directory, which means nothing in the host tree) or `$ORIGIN`
/// is unknown.
pub fn expand_dst(entry: &str, found_as: Option<&Path>, machine: Machine) -> Option<PathBuf> {
    let origin = found_as
        .and_then(Path::parent)
        .map(|dir| dir.to_string_lossy().into_owned());
    let mut out = String::new();
    let mut rest = entry;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (token, len) = dst_token(after);
        match token {
            Some("ORIGIN") => out.push_str(origin.as_deref()?),
            Some("LIB") => out.push_str(machine.dst_lib()),
            Some("PLATFORM") => out.push_str(machine.platform()),
            _ => out.push('$'),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out.starts_with('/').then(|| PathBuf::from(out))
}

/// The dynamic string token at the start of `s` (after a `$`) and the bytes it spans.
fn dst_token(s: &str) -> (Option<&str>, usize) {
    for token in ["ORIGIN", "LIB", "PLATFORM"] {
        let braced = format!("{{{token}}}");
        if s.starts_with(&braced) {
            return (Some(token), braced.len());
        }
        // A bare token ends where a name character cannot continue it.
        if s.starts_with(token)
            && !s[token.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return (Some(token), token.len());
        }
    }
    (None, 0)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_expansion() {
        let obj = Some(Path::new("/opt/app/lib/libx.so.1"));
        let expand = |entry, obj| expand_dst(entry, obj, Machine::X86_64);
        assert_eq!(
            expand("$ORIGIN/../deps", obj),
            Some(PathBuf::from("/opt/app/lib/../deps"))
        );
        assert_eq!(
            expand("${ORIGIN}/$LIB/${PLATFORM}", obj),
            Some(PathBuf::from("/opt/app/lib/lib/x86_64-linux-gnu/x86_64"))
        );
        assert_eq!(expand("/a/$LIBX", obj), Some(PathBuf::from("/a/$LIBX")));
        assert_eq!(expand("relative/dir", obj), None);
        assert_eq!(expand("$ORIGIN", None), None);
    }

    #[test]
    fn dst_expansion_is_the_machines() {
        let obj = Some(Path::new("/opt/app/lib/libx.so.1"));
        let expand = |machine| expand_dst("/x/$LIB/${PLATFORM}", obj, machine);
        assert_eq!(
            expand(Machine::X86),
            Some(PathBuf::from("/x/lib/i386-linux-gnu/i686"))
        );
        assert_eq!(
            expand(Machine::Aarch64),
            Some(PathBuf::from("/x/lib/aarch64-linux-gnu/aarch64"))
        );
    }
}
