//! What the search needs to know of a shared object on disk, read with goblin.

use std::io::Read;
use std::path::Path;

use goblin::elf::dynamic::DF_1_NODEFLIB;
use goblin::elf::header::{ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_DYN, SELFMAG};
use goblin::elf::symver::VER_FLG_WEAK;
use goblin::elf::Elf;

/// One version an object needs from a library (an entry of its DT_VERNEED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeededVersion {
    /// The version name, e.g. `GLIBC_2.34`.
    pub name: String,
    /// `VER_FLG_WEAK`: ld.so only warns when it is missing.
    pub weak: bool,
}

/// The dynamic-linking facts of a shared object.
#[derive(Clone, Debug, Default)]
pub struct ElfFile {
    pub soname: Option<String>,
    pub needed: Vec<String>,
    /// DT_RPATH entries, split at `:`; empty when the object has a DT_RUNPATH, because
    /// ld.so then ignores its DT_RPATH altogether (also for the objects it loads).
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries, split at `:`.
    pub runpath: Vec<String>,
    pub has_runpath: bool,
    /// `DF_1_NODEFLIB`: dependencies are not looked up in the cache or default directories.
    pub nodeflib: bool,
    /// DT_VERNEED: per library file name, the versions needed from it.
    pub verneed: Vec<(String, Vec<NeededVersion>)>,
    /// DT_VERDEF: the version names this object defines (its base name included).
    pub verdef: Vec<String>,
}

/// Read `path`, or say why ld.so would pass it over (not ELF, another class or machine,
/// not a shared object, truncated). The reason names the problem, not the path.
pub fn read(path: &Path) -> Result<ElfFile, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    // Check the identification first, so a big file of the wrong kind is not read whole.
    let mut ident = [0u8; 20];
    file.read_exact(&mut ident)
        .map_err(|_| "too short to be an ELF file".to_string())?;
    check_ident(&ident)?;
    let mut bytes = ident.to_vec();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    let elf = Elf::parse(&bytes).map_err(|e| format!("malformed ELF file: {e}"))?;
    if elf.header.e_type != ET_DYN {
        return Err("not a shared object (ELF type is not ET_DYN)".into());
    }
    Ok(facts(&elf))
}

/// ld.so's `open_verify` checks, on the first 20 bytes.
fn check_ident(ident: &[u8; 20]) -> Result<(), String> {
    if &ident[..SELFMAG] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if ident[4] != ELFCLASS64 {
        return Err("wrong ELF class (not 64-bit)".into());
    }
    if ident[5] != ELFDATA2LSB {
        return Err("wrong byte order (not little-endian)".into());
    }
    let machine = u16::from_le_bytes([ident[18], ident[19]]);
    if machine != EM_X86_64 {
        return Err(format!("wrong machine (e_machine {machine}, not x86_64)"));
    }
    Ok(())
}

fn facts(elf: &Elf<'_>) -> ElfFile {
    let split = |entries: &[&str]| -> Vec<String> {
        entries
            .iter()
            .flat_map(|e| e.split(':'))
            .map(str::to_string)
            .collect()
    };
    let has_runpath = !elf.runpaths.is_empty();
    let flags_1 = elf.dynamic.as_ref().map_or(0, |d| d.info.flags_1);
    ElfFile {
        soname: elf.soname.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: if has_runpath {
            Vec::new()
        } else {
            split(&elf.rpaths)
        },
        runpath: split(&elf.runpaths),
        has_runpath,
        nodeflib: flags_1 & DF_1_NODEFLIB != 0,
        verneed: verneed(elf),
        verdef: verdef(elf),
    }
}

fn verneed(elf: &Elf<'_>) -> Vec<(String, Vec<NeededVersion>)> {
    let Some(section) = &elf.verneed else {
        return Vec::new();
    };
    let name = |offset: usize| elf.dynstrtab.get_at(offset).unwrap_or("").to_string();
    section
        .iter()
        .map(|need| {
            let versions = need
                .iter()
                .map(|aux| NeededVersion {
                    name: name(aux.vna_name),
                    weak: aux.vna_flags & VER_FLG_WEAK != 0,
                })
                .collect();
            (name(need.vn_file), versions)
        })
        .collect()
}

fn verdef(elf: &Elf<'_>) -> Vec<String> {
    let Some(section) = &elf.verdef else {
        return Vec::new();
    };
    section
        .iter()
        .filter_map(|def| def.iter().next())
        .filter_map(|aux| elf.dynstrtab.get_at(aux.vda_name))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ident_checks() {
        let mut ident = [0u8; 20];
        ident[..4].copy_from_slice(b"\x7fELF");
        ident[4] = ELFCLASS64;
        ident[5] = ELFDATA2LSB;
        ident[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        assert!(check_ident(&ident).is_ok());
        let mut class32 = ident;
        class32[4] = 1;
        assert!(check_ident(&class32).unwrap_err().contains("class"));
        let mut arm = ident;
        arm[18] = 183;
        assert!(check_ident(&arm).unwrap_err().contains("machine"));
        assert!(check_ident(&[b'#'; 20]).unwrap_err().contains("not an ELF"));
    }
}
