//! What ld.so binds in a file's dynamic symbols: each symbol's version (its DT_VERSYM
//! index, named by DT_VERDEF or DT_VERNEED), the file's imports with the library each
//! version is needed from, and its exports found by name and version as `dlsym` and
//! `dlvsym` find them in that object alone. The skew check and the forwarder's stubs read
//! a host's libraries so; the program's loaded copies they are compared with are read
//! through `crate::elf`.

use std::collections::HashMap;

use crate::fnv::fnv1a;

use super::{
    Symbol, Symbols, SHN_ABS, SHN_UNDEF, STB_LOCAL, STB_WEAK, STT_COMMON, STT_FUNC, STT_GNU_IFUNC,
    STT_OBJECT, STT_TLS, VERSYM_HIDDEN,
};

const STT_NOTYPE: u8 = 0;
const STB_GLOBAL: u8 = 1;
const STB_GNU_UNIQUE: u8 = 10;
/// Version indices 0 (local) and 1 (global) name no version; named ones start at 2.
const FIRST_NAMED_INDEX: u16 = 2;

/// A symbol's version (also the views' of loaded objects: `crate::elf` takes it from here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolVersion<'a> {
    /// No version information (no DT_VERSYM, or index 0 or 1).
    Unversioned,
    /// A definition in version `name` of this object (DT_VERDEF). `hidden` (bit 15 of its
    /// index) marks `sym@V`, which only a reference to that version binds to, not the
    /// default `sym@@V`.
    Defined { name: &'a str, hidden: bool },
    /// A reference that requires version `name` of the object whose soname is `file`
    /// (DT_VERNEED's `vn_file` of the entry whose `vna_other` is the symbol's index).
    Required { name: &'a str, file: &'a str },
}

/// A symbol a file imports (undefined, not local): what ld.so must find elsewhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Import<'a> {
    pub name: &'a str,
    pub version: Option<&'a str>,
    /// The library the version is needed from.
    pub file: Option<&'a str>,
    /// `STB_WEAK`: ld.so binds it to 0 when nothing defines it.
    pub weak: bool,
}

/// A symbol a file defines and exports (global, weak or unique binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Export<'a> {
    pub symbol: &'a Symbol,
    /// The version it is defined in; `None` for an unversioned definition.
    pub version: Option<&'a str>,
    /// `sym@V` rather than `sym@@V` (see [`SymbolVersion::Defined`]).
    pub hidden: bool,
}

impl Export<'_> {
    /// A function (`STT_FUNC` or `STT_GNU_IFUNC`).
    pub fn is_function(&self) -> bool {
        matches!(self.symbol.kind, STT_FUNC | STT_GNU_IFUNC)
    }

    /// Defined with `SHN_ABS` (GNU ld's version-name symbols).
    pub fn is_absolute(&self) -> bool {
        self.symbol.shndx == SHN_ABS
    }

    /// Whether a lookup binds to it: glibc passes over symbols of a type it does not know
    /// and those of value 0 (but thread-local ones, whose value is an offset), and the
    /// runtime's lookups pass over absolute ones.
    fn binds(&self) -> bool {
        let s = self.symbol;
        let known = matches!(
            s.kind,
            STT_NOTYPE | STT_OBJECT | STT_FUNC | STT_COMMON | STT_TLS | STT_GNU_IFUNC
        );
        known && (s.value != 0 || s.kind == STT_TLS) && !self.is_absolute()
    }
}

/// A file's exports, in table order, with an index by name made once.
#[derive(Debug)]
pub struct Exports<'a> {
    list: Vec<Export<'a>>,
    /// (hash of the name, position in `list`) of each export a lookup binds to, sorted:
    /// one name's entries are adjacent, in table order. Hashes sort faster than names
    /// (libX11's 1,376 symbols: 32 µs to index, not 60).
    by_name: Vec<(u64, usize)>,
}

impl<'a> Exports<'a> {
    /// Every export, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &Export<'a>> + '_ {
        self.list.iter()
    }

    /// The export `name` as `dlvsym` (with `version`: exactly that version, default or
    /// not) or `dlsym` (without: an unversioned definition, else the default `@@`
    /// version) finds it in this file alone. Every export is looked up, where ld.so looks
    /// through the hash table: a linker hashes every defined symbol.
    pub fn lookup(&self, name: &str, version: Option<&str>) -> Option<&Export<'a>> {
        let hash = fnv1a(name.as_bytes());
        let start = self.by_name.partition_point(|(h, _)| *h < hash);
        let mut default = None;
        for &(_, at) in self.by_name[start..].iter().take_while(|(h, _)| *h == hash) {
            let export = &self.list[at];
            if export.symbol.name != name {
                continue;
            }
            match (version, export.version) {
                (Some(wanted), Some(v)) if wanted == v => return Some(export),
                (None, None) => return Some(export),
                (None, Some(_)) if !export.hidden && default.is_none() => default = Some(export),
                _ => {}
            }
        }
        default
    }
}

impl Symbols {
    /// Every symbol this file imports, in table order, with the version it needs and the
    /// library that version is needed from.
    pub fn imports(&self) -> Result<Vec<Import<'_>>, String> {
        let names = VersionNames::of(self);
        let mut out = Vec::new();
        for symbol in self.symbols.iter().skip(1) {
            if symbol.shndx != SHN_UNDEF || symbol.bind == STB_LOCAL {
                continue;
            }
            let (version, file) = match names.version(symbol)? {
                SymbolVersion::Required { name, file } => (Some(name), Some(file)),
                _ => (None, None),
            };
            out.push(Import {
                name: &symbol.name,
                version,
                file,
                weak: symbol.bind == STB_WEAK,
            });
        }
        Ok(out)
    }

    /// Every symbol this file exports, with its version, indexed for
    /// [`Exports::lookup`].
    pub fn exports(&self) -> Result<Exports<'_>, String> {
        let names = VersionNames::of(self);
        let mut list = Vec::new();
        let mut by_name = Vec::new();
        for symbol in self.symbols.iter().skip(1) {
            if symbol.shndx == SHN_UNDEF
                || !matches!(symbol.bind, STB_GLOBAL | STB_WEAK | STB_GNU_UNIQUE)
            {
                continue;
            }
            let (version, hidden) = match names.version(symbol)? {
                SymbolVersion::Defined { name, hidden } => (Some(name), hidden),
                _ => (None, false),
            };
            let export = Export {
                symbol,
                version,
                hidden,
            };
            if export.binds() {
                by_name.push((fnv1a(symbol.name.as_bytes()), list.len()));
            }
            list.push(export);
        }
        by_name.sort_unstable();
        Ok(Exports { list, by_name })
    }
}

/// The version names by index: the file's definitions' and its needs' (with their file).
struct VersionNames<'a> {
    defined: HashMap<u16, &'a str>,
    needed: HashMap<u16, (&'a str, &'a str)>,
}

impl<'a> VersionNames<'a> {
    fn of(symbols: &'a Symbols) -> Self {
        let mut defined = HashMap::new();
        for definition in &symbols.definitions {
            if let Some(name) = definition.names.first() {
                defined.entry(definition.index).or_insert(name.as_str());
            }
        }
        let mut needed = HashMap::new();
        for (file, versions) in &symbols.verneed {
            for version in versions {
                needed
                    .entry(version.index)
                    .or_insert((version.name.as_str(), file.as_str()));
            }
        }
        VersionNames { defined, needed }
    }

    /// `symbol`'s version: a definition's from DT_VERDEF, an import's from DT_VERNEED.
    fn version(&self, symbol: &Symbol) -> Result<SymbolVersion<'a>, String> {
        let Some(raw) = symbol.versym else {
            return Ok(SymbolVersion::Unversioned);
        };
        let index = raw & !VERSYM_HIDDEN;
        if index < FIRST_NAMED_INDEX {
            return Ok(SymbolVersion::Unversioned);
        }
        let needed = self.needed.get(&index);
        if symbol.shndx == SHN_UNDEF {
            return match needed {
                Some(&(name, file)) => Ok(SymbolVersion::Required { name, file }),
                None => Err(format!(
                    "malformed: the import {} has version index {index}, which no version need (DT_VERNEED) has",
                    symbol.name
                )),
            };
        }
        // An executable's copy-relocated definitions (`stdout@GLIBC_2.2.5`) carry the
        // index of the version they were needed in: ld.so reads one index space.
        let name = self
            .defined
            .get(&index)
            .copied()
            .or(needed.map(|&(name, _)| name))
            .ok_or_else(|| {
                format!(
                    "malformed: the definition {} has version index {index}, which no version definition (DT_VERDEF) or need has",
                    symbol.name
                )
            })?;
        Ok(SymbolVersion::Defined {
            name,
            hidden: raw & VERSYM_HIDDEN != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::elf::{Object, SymbolKind};
    use crate::elffile::Reader;
    use crate::machine::Machine;

    /// Every library of this machine's own directory, read by both readers of ELF: the
    /// file reader's imports, exports and lookups are the views' (which read the same
    /// file as an image), as the skew check and the forwarder's stubs used them.
    #[test]
    fn agree_with_the_views_on_every_installed_library() {
        let dir = Path::new("/usr/lib").join(Machine::NATIVE.multiarch());
        let mut read = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.contains(".so") || !path.metadata().is_ok_and(|m| m.is_file()) {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let Ok(view) = Object::from_file_image(&name, &bytes) else {
                continue; // a linker script, or an object without a dynamic section
            };
            let symbols = Reader::from_bytes(&bytes)
                .and_then(Reader::symbols)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let exports = symbols.exports().unwrap();
            let theirs: Vec<_> = view
                .symbols()
                .map(|s| {
                    let s = s.unwrap();
                    let function = matches!(s.kind, SymbolKind::Function | SymbolKind::Ifunc);
                    (s.name, s.version, s.hidden, function, s.absolute)
                })
                .collect();
            let ours: Vec<_> = exports
                .iter()
                .map(|e| {
                    let function = e.is_function();
                    let name = e.symbol.name.as_str();
                    (name, e.version, e.hidden, function, e.is_absolute())
                })
                .collect();
            assert_eq!(ours, theirs, "{name}");
            for export in exports.iter() {
                let symbol = export.symbol.name.as_str();
                for version in [None, export.version, Some("NO_SUCH_VERSION")] {
                    let ours = exports.lookup(symbol, version).map(|e| e.symbol.value);
                    let theirs = view.lookup(symbol, version).unwrap().map(|s| s.address);
                    assert_eq!(
                        ours,
                        theirs.map(|a| a as u64),
                        "{name}: {symbol}@{version:?}"
                    );
                }
            }
            let mut theirs = Vec::new();
            for index in 1..view.symbol_count() {
                let raw = view.raw_symbol(index).unwrap();
                if raw.is_defined() || raw.binding() == crate::elf::Binding::Local {
                    continue;
                }
                let (version, file) = match view.symbol_version(index).unwrap() {
                    SymbolVersion::Required { name, file } => (Some(name), Some(file)),
                    _ => (None, None),
                };
                theirs.push(Import {
                    name: view.symbol_name(index).unwrap(),
                    version,
                    file,
                    weak: raw.binding() == crate::elf::Binding::Weak,
                });
            }
            assert_eq!(symbols.imports().unwrap(), theirs, "{name}");
            read += 1;
        }
        // Debian 12 with the packages .ci/run installs: hundreds for x86_64 and i386; for
        // aarch64 (run under qemu) libc6:arm64's and zlib1g:arm64's alone, 22.
        let least = if Machine::NATIVE == Machine::Aarch64 {
            20
        } else {
            100
        };
        assert!(read > least, "{read} libraries read in {}", dir.display());
    }
}
