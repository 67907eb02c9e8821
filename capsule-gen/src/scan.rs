//! Reading the real library: its soname, version definitions and exported dynamic symbols.

use std::collections::BTreeMap;
use std::path::Path;

use goblin::elf::{header, section_header, sym, Elf};

use crate::error::{Error, Result};
use crate::manifest::{Export, Kind, VersionDef};

/// What a shim needs to know about a library.
#[derive(Debug)]
pub struct Scanned {
    pub soname: String,
    pub versions: Vec<VersionDef>,
    /// Sorted by name, then version.
    pub symbols: Vec<Export>,
}

const VER_FLG_BASE: u16 = 1;
const VER_NDX_LOCAL: u16 = 0;
const VER_NDX_GLOBAL: u16 = 1;

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
    let elf = Elf::parse(bytes).map_err(|e| bad(format!("not a readable ELF file ({e})")))?;
    if !elf.is_64 || elf.header.e_machine != header::EM_X86_64 {
        return Err(bad(format!(
            "is built for {} ({}-bit); capsule-gen makes shims for x86-64 libraries only",
            header::machine_to_str(elf.header.e_machine),
            if elf.is_64 { 64 } else { 32 }
        )));
    }
    if elf.header.e_type != header::ET_DYN || elf.dynamic.is_none() {
        return Err(bad("is not a shared library (no dynamic section)".into()));
    }

    let (base_version, versions, names_by_index) = version_definitions(&elf).map_err(&bad)?;
    let soname = match elf.soname {
        Some(s) => s.to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| bad("has no DT_SONAME and no file name".into()))?,
    };
    let markers: Vec<&str> = versions.iter().map(|v| v.name.as_str()).collect();

    let mut symbols = Vec::new();
    let mut marked = Vec::new();
    for (index, s) in elf.dynsyms.iter().enumerate() {
        if s.st_shndx == section_header::SHN_UNDEF as usize || s.st_bind() == sym::STB_LOCAL {
            continue;
        }
        let name = elf
            .dynstrtab
            .get_at(s.st_name)
            .ok_or_else(|| bad(format!("dynamic symbol #{index} has a bad name offset")))?;
        if name.is_empty() {
            continue;
        }
        let (version, default) = match elf.versym.as_ref().and_then(|v| v.get_at(index)) {
            None => (None, true),
            Some(vs) => match vs.version() {
                VER_NDX_LOCAL => continue,
                VER_NDX_GLOBAL => (None, true),
                n => match names_by_index.get(&n) {
                    Some(v) if Some(v) == base_version.as_ref() => (None, true),
                    Some(v) => (Some(v.clone()), !vs.is_hidden()),
                    None => {
                        return Err(bad(format!(
                            "symbol {name} has version index {n}, which no version definition has"
                        )))
                    }
                },
            },
        };
        // GNU ld defines an absolute symbol named after each version, in that version.
        if s.st_shndx == section_header::SHN_ABS as usize
            && version.as_deref() == Some(name)
            && markers.contains(&name)
        {
            marked.push(name.to_string());
            continue;
        }
        let kind = kind_of(s.st_type());
        symbols.push(Export {
            name: name.to_string(),
            default: version.is_some() && default,
            version,
            kind,
            weak: s.st_bind() == sym::STB_WEAK,
            // Only a variable's size matters: a function's changes with every rebuild.
            size: if kind == Kind::Object { s.st_size } else { 0 },
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
        soname,
        versions,
        symbols,
    })
}

fn kind_of(st_type: u8) -> Kind {
    match st_type {
        sym::STT_FUNC | sym::STT_GNU_IFUNC => Kind::Function,
        sym::STT_OBJECT | sym::STT_COMMON => Kind::Object,
        sym::STT_TLS => Kind::Tls,
        _ => Kind::Untyped,
    }
}

type Versions = (Option<String>, Vec<VersionDef>, BTreeMap<u16, String>);

/// The base version's name (normally the soname: symbols in it count as unversioned), the
/// other definitions (in file order), and every definition's name by its index.
fn version_definitions(elf: &Elf<'_>) -> std::result::Result<Versions, String> {
    let mut base = None;
    let mut defs = Vec::new();
    let mut by_index = BTreeMap::new();
    let Some(verdef) = elf.verdef.as_ref() else {
        return Ok((base, defs, by_index));
    };
    for def in verdef.iter() {
        let names: Vec<String> = def
            .iter()
            .map(|aux| {
                elf.dynstrtab
                    .get_at(aux.vda_name)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        format!("version definition {} has a bad name offset", def.vd_ndx)
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        let Some((name, parents)) = names.split_first() else {
            return Err(format!("version definition {} has no name", def.vd_ndx));
        };
        by_index.insert(def.vd_ndx, name.clone());
        if def.vd_flags & VER_FLG_BASE != 0 {
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
    }
}
