//! Reading the real library: its soname, version definitions and exported dynamic symbols.

use std::collections::BTreeMap;
use std::path::Path;

use capsule::elffile::{self, Reader, VersionDefinition};
use capsule::machine::Machine;

use crate::error::{Error, Result};
use crate::manifest::{Export, Kind, VersionDef};

/// What a shim needs to know about a library.
#[derive(Debug)]
pub struct Scanned {
    /// The machine the library is built for (its ELF class and `e_machine`).
    pub machine: Machine,
    pub soname: String,
    pub versions: Vec<VersionDef>,
    /// Sorted by name, then version.
    pub symbols: Vec<Export>,
}

/// Read the library at `path`.
pub fn scan(path: &Path) -> Result<Scanned> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    scan_bytes(&bytes, path)
}

/// Read a library image already in memory (`path` only names it in errors): the fuzzing entry point.
pub fn scan_bytes(bytes: &[u8], path: &Path) -> Result<Scanned> {
    let bad = |reason: String| Error::BadLibrary {
        path: path.to_path_buf(),
        reason,
    };
    let unreadable = |reason: String| bad(format!("not a readable ELF file ({reason})"));
    let reader = Reader::from_bytes(bytes).map_err(unreadable)?;
    let machine = reader.machine().map_err(unreadable)?;
    let elf = reader.symbols().map_err(unreadable)?;

    let (base_version, versions, names_by_index) =
        version_definitions(&elf.definitions).map_err(&bad)?;
    let soname = match elf.soname {
        Some(s) => s,
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| bad("has no DT_SONAME and no file name".into()))?,
    };
    let markers: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();

    let mut symbols = Vec::new();
    let mut marked = Vec::new();
    for s in &elf.symbols {
        if s.shndx == elffile::SHN_UNDEF || s.bind == elffile::STB_LOCAL {
            continue;
        }
        let name = s.name.as_str();
        if name.is_empty() {
            continue;
        }
        let (version, default) = match s.versym {
            None => (None, true),
            Some(vs) => match vs & !elffile::VERSYM_HIDDEN {
                elffile::VER_NDX_LOCAL => continue,
                elffile::VER_NDX_GLOBAL => (None, true),
                n => match names_by_index.get(&n) {
                    Some(v) if Some(v) == base_version.as_ref() => (None, true),
                    Some(v) => (Some(v.clone()), vs & elffile::VERSYM_HIDDEN == 0),
                    None => {
                        return Err(bad(format!(
                            "symbol {name} has version index {n}, which no version definition has"
                        )))
                    }
                },
            },
        };
        // GNU ld defines an absolute symbol named after each version, in that version.
        if s.shndx == elffile::SHN_ABS
            && version.as_deref() == Some(name)
            && markers.contains(&name)
        {
            marked.push(name.to_string());
            continue;
        }
        let kind = kind_of(s.kind);
        symbols.push(Export {
            name: name.to_string(),
            default: version.is_some() && default,
            version,
            kind,
            weak: s.bind == elffile::STB_WEAK,
            // Only a variable's size matters: a function's changes with every rebuild.
            size: if kind == Kind::Object { s.size } else { 0 },
        });
    }
    symbols.sort();
    symbols.dedup();
    let versions = versions
        .into_iter()
        .map(|mut v| {
            v.marker = marked.contains(&v.name);
            v
        })
        .collect();
    Ok(Scanned {
        machine,
        soname,
        versions,
        symbols,
    })
}

fn kind_of(st_type: u8) -> Kind {
    match st_type {
        elffile::STT_FUNC | elffile::STT_GNU_IFUNC => Kind::Function,
        elffile::STT_OBJECT | elffile::STT_COMMON => Kind::Object,
        elffile::STT_TLS => Kind::Tls,
        _ => Kind::Untyped,
    }
}

type Versions = (Option<String>, Vec<VersionDef>, BTreeMap<u16, String>);

/// The base version's name (normally the soname: symbols in it count as unversioned), the
/// other definitions (in file order), and every definition's name by its index.
fn version_definitions(definitions: &[VersionDefinition]) -> std::result::Result<Versions, String> {
    let mut base = None;
    let mut defs = Vec::new();
    let mut by_index = BTreeMap::new();
    for def in definitions {
        let Some((name, parents)) = def.names.split_first() else {
            return Err(format!("version definition {} has no name", def.index));
        };
        by_index.insert(def.index, name.clone());
        if def.flags & elffile::VER_FLG_BASE != 0 {
            base = Some(name.clone());
        } else {
            defs.push(VersionDef {
                name: name.clone(),
                parents: parents.to_vec(),
                marker: false,
            });
        }
    }
    Ok((base, defs, by_index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capsule::machine::Machine;

    #[test]
    fn rejects_non_elf_with_the_path() {
        let err = scan_bytes(b"not an elf", Path::new("/x/libnope.so")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/x/libnope.so") && msg.contains("not a readable ELF"),
            "{msg}"
        );
    }

    #[test]
    fn reads_the_system_zlib() {
        let path = Path::new("/usr/lib/x86_64-linux-gnu/libz.so.1");
        assert!(
            path.exists(),
            "this test needs zlib (apt-get install zlib1g)"
        );
        let s = scan(path).unwrap();
        assert_eq!(s.soname, "libz.so.1");
        let crc = s.symbols.iter().find(|e| e.name == "crc32").unwrap();
        assert_eq!((crc.version.as_deref(), crc.kind), (None, Kind::Function));
        let z9 = s.symbols.iter().find(|e| e.name == "adler32_z").unwrap();
        assert_eq!(z9.version.as_deref(), Some("ZLIB_1.2.9"));
        assert!(z9.default);
        assert!(s.versions.iter().all(|v| v.marker));
        assert_eq!(s.machine, Machine::X86_64);
    }

    #[test]
    fn reads_the_i386_zlib_as_the_x86_64_one() {
        // The same source built for both: the same exports, read from a 32-bit file.
        let scan_of = |machine: Machine| {
            let path = Path::new("/usr/lib")
                .join(machine.multiarch())
                .join("libz.so.1");
            scan(&path).unwrap_or_else(|e| panic!("{e} (apt-get install zlib1g:i386)"))
        };
        let (i386, x86_64) = (scan_of(Machine::X86), scan_of(Machine::X86_64));
        assert_eq!(i386.machine, Machine::X86);
        assert_eq!(i386.soname, "libz.so.1");
        assert!(i386.symbols.len() > 80, "{}", i386.symbols.len());
        assert_eq!(i386.symbols, x86_64.symbols);
        assert_eq!(i386.versions, x86_64.versions);
    }

    #[test]
    fn an_unknown_machine_is_named() {
        let mut bytes = std::fs::read("/usr/lib/x86_64-linux-gnu/libz.so.1").unwrap();
        bytes[18..20].copy_from_slice(&243u16.to_le_bytes());
        let err = scan_bytes(&bytes, Path::new("/x/libz.so.1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/x/libz.so.1") && err.contains("e_machine 243"),
            "{err}"
        );
    }
}
