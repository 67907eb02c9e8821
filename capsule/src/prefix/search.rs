//! The closure search: ld.so's `_dl_map_object` order, breadth first like ld.so loads,
//! with every directory taken inside the prefix.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::elffile::{self, ElfFile};
use super::fs::{self, host_path, Identity};
use super::glibc::{self, Versioned};
use super::{Closure, LinkerConfig, Object, Origin, Prefix};
use crate::error::{Error, Result};

/// ld.so's default directories on Debian's multiarch x86_64 (its `SYSTEM_DIRS`), then
/// the lib64 and plain lib directories other distributions use.
pub const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// What Debian's ld.so substitutes for `$LIB` (checked with `LD_DEBUG=libs` on a program
/// whose RUNPATH is `$LIB/$PLATFORM`: it searched `lib/x86_64-linux-gnu/x86_64`).
pub const DST_LIB: &str = "lib/x86_64-linux-gnu";
/// What ld.so substitutes for `$PLATFORM` on x86_64.
pub const DST_PLATFORM: &str = "x86_64";

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
        let file = elffile::read(path).map_err(|reason| Error::BadElf {
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
                if self.nodes[at].origin == Origin::System && !glibc::is_glibc(&name) {
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
        glibc::check_versions(&objects)
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
        let found = if glibc::is_glibc(file_name(Path::new(name)).as_str()) {
            find_system(name, &mut searched)?
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
        let tried = searched.len();
        let found = found.ok_or_else(|| Error::NotFound {
            library: name.to_string(),
            prefix: self.prefix.root.clone(),
            needed_by: by.map(str::to_string),
            searched,
        })?;
        self.note_input(&found, tried);
        Ok(found)
    }

    /// Keep the files `found` was decided by, for the memo: a cache entry taken at the
    /// first try depends on `ld.so.cache` and the file, a path the caller named on that
    /// file; a glibc library on the running glibc (part of the memo's key). Any other answer also depended on
    /// what some place did *not* hold (an RPATH or default directory, a candidate passed
    /// over), which no file identity stands for: then nothing is remembered.
    fn note_input(&mut self, found: &Found, tried: usize) {
        let Some(inputs) = &mut self.inputs else {
            return;
        };
        let cache = match self.prefix.config() {
            Ok(LinkerConfig::Cache { identity, .. }) => Some(*identity),
            _ => None,
        };
        match (found.origin, found.identity, &found.found_as, cache) {
            // glibc's own libraries come from the running system with its libc, which the
            // memo's key names (path and version): read from memory, or from their file
            // when the program has not loaded them.
            (Origin::System, _, _, _) if tried <= 1 => {}
            // A path the caller named: decided by that file alone.
            (Origin::Explicit, Some(identity), Some(inside), _) if tried == 1 => {
                inputs.push((inside.clone(), identity));
            }
            (Origin::Cache, Some(identity), Some(inside), Some(cache)) if tried == 1 => {
                let cache_path = Path::new("/etc/ld.so.cache");
                if !inputs.iter().any(|(p, _)| p == cache_path) {
                    inputs.push((cache_path.to_path_buf(), cache));
                }
                inputs.push((inside.clone(), identity));
            }
            _ => self.inputs = None,
        }
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
            let Some(dir) = expand_dst(entry, node.found_as.as_deref()) else {
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

/// The prefix's cache (else its conf directories), then the default directories.
fn find_standard(
    prefix: &Prefix,
    name: &str,
    searched: &mut Vec<PathBuf>,
) -> Result<Option<Found>> {
    match prefix.config()? {
        LinkerConfig::Cache { path, cache, .. } => {
            for file in cache.lookup(name) {
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
    for dir in DEFAULT_DIRS {
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

/// A glibc library from the running system: the program's loaded copy (read from
/// memory), else `/` searched as ld.so would (cache, then default directories).
fn find_system(name: &str, searched: &mut Vec<PathBuf>) -> Result<Option<Found>> {
    if let Some((path, file)) = glibc::loaded(&file_name(Path::new(name))) {
        return Ok(Some(Found {
            path,
            found_as: None,
            origin: Origin::System,
            file,
            identity: None,
        }));
    }
    let system = system_prefix();
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

/// The running system's root, once per process (its configuration read when first
/// needed). `/` is a directory, and the process reads it all the time.
pub(super) fn system_prefix() -> &'static Prefix {
    static SYSTEM: OnceLock<Prefix> = OnceLock::new();
    SYSTEM.get_or_init(|| Prefix::open_canonical(PathBuf::from("/")))
}

/// `inside` if it is a usable x86_64 shared object; a file ld.so would pass over is
/// skipped (with a debug line) so that the search goes on, as ld.so's does.
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
    match elffile::read_file(file) {
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

/// Expand `$ORIGIN`, `$LIB`, `$PLATFORM` (bare or braced) in a search path entry.
/// `$ORIGIN` is the directory of `found_as`, a path of the prefix. None when the result
/// is not absolute (ld.so would take it from the program's working directory, which
/// means nothing in the host tree) or `$ORIGIN` is unknown.
pub fn expand_dst(entry: &str, found_as: Option<&Path>) -> Option<PathBuf> {
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
            Some("LIB") => out.push_str(DST_LIB),
            Some("PLATFORM") => out.push_str(DST_PLATFORM),
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
        assert_eq!(
            expand_dst("$ORIGIN/../deps", obj),
            Some(PathBuf::from("/opt/app/lib/../deps"))
        );
        assert_eq!(
            expand_dst("${ORIGIN}/$LIB/${PLATFORM}", obj),
            Some(PathBuf::from("/opt/app/lib/lib/x86_64-linux-gnu/x86_64"))
        );
        assert_eq!(expand_dst("/a/$LIBX", obj), Some(PathBuf::from("/a/$LIBX")));
        assert_eq!(expand_dst("relative/dir", obj), None);
        assert_eq!(expand_dst("$ORIGIN", None), None);
    }
}
