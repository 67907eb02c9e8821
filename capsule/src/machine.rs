//! The architectures capsule knows, and what ld.so and Debian's multiarch layout say of
//! each: ELF class and machine, library directories, `$LIB`/`$PLATFORM`, the dynamic
//! linker's soname and the flags of its ld.so.cache entries.
//!
//! The runtime only ever deals with its own architecture ([`Machine::NATIVE`]); capsule-gen
//! reads libraries of any of them and takes the machine from the file.

/// `EI_CLASS` of 32-bit objects.
pub const ELFCLASS32: u8 = 1;
/// `EI_CLASS` of 64-bit objects.
pub const ELFCLASS64: u8 = 2;

/// A processor architecture with glibc's Linux ABI, as ld.so sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    X86_64,
    /// 32-bit x86 (`i386`/`i686`).
    X86,
    Aarch64,
}

impl Machine {
    /// Every machine capsule knows.
    pub const ALL: [Machine; 3] = [Machine::X86_64, Machine::X86, Machine::Aarch64];

    /// The machine this crate was built for.
    #[cfg(target_arch = "x86_64")]
    pub const NATIVE: Machine = Machine::X86_64;
    #[cfg(target_arch = "x86")]
    pub const NATIVE: Machine = Machine::X86;
    #[cfg(target_arch = "aarch64")]
    pub const NATIVE: Machine = Machine::Aarch64;

    /// The machine of an ELF file with this `EI_CLASS` and `e_machine`, if capsule knows it.
    pub fn from_elf(class: u8, e_machine: u16) -> Option<Machine> {
        Machine::ALL
            .into_iter()
            .find(|m| m.elf_class() == class && m.e_machine() == e_machine)
    }

    /// The machine a Rust target triple (`i686-unknown-linux-gnu`) builds for.
    pub fn from_target(triple: &str) -> Option<Machine> {
        let arch = triple.split('-').next()?;
        match arch {
            "x86_64" => Some(Machine::X86_64),
            "i386" | "i486" | "i586" | "i686" => Some(Machine::X86),
            "aarch64" => Some(Machine::Aarch64),
            _ => None,
        }
    }

    /// `EI_CLASS`.
    pub const fn elf_class(self) -> u8 {
        match self {
            Machine::X86 => ELFCLASS32,
            Machine::X86_64 | Machine::Aarch64 => ELFCLASS64,
        }
    }

    /// Bytes in an address.
    pub const fn word_size(self) -> usize {
        match self.elf_class() {
            ELFCLASS32 => 4,
            _ => 8,
        }
    }

    /// `e_machine`.
    pub const fn e_machine(self) -> u16 {
        match self {
            Machine::X86_64 => 62,   // EM_X86_64
            Machine::X86 => 3,       // EM_386
            Machine::Aarch64 => 183, // EM_AARCH64
        }
    }

    /// How people and tools name it (`uname -m`, `file`).
    pub const fn name(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64",
            Machine::X86 => "i386",
            Machine::Aarch64 => "aarch64",
        }
    }

    /// The Rust target triple a shim for this machine is built with.
    pub const fn rust_target(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64-unknown-linux-gnu",
            Machine::X86 => "i686-unknown-linux-gnu",
            Machine::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's multiarch tuple: the directory under `/lib` and `/usr/lib`.
    pub const fn multiarch(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64-linux-gnu",
            Machine::X86 => "i386-linux-gnu",
            Machine::Aarch64 => "aarch64-linux-gnu",
        }
    }

    /// What Debian's ld.so substitutes for `$LIB` (checked with `LD_DEBUG=libs` on a
    /// program whose RUNPATH is `$LIB/$PLATFORM`).
    pub const fn dst_lib(self) -> &'static str {
        match self {
            Machine::X86_64 => "lib/x86_64-linux-gnu",
            Machine::X86 => "lib/i386-linux-gnu",
            Machine::Aarch64 => "lib/aarch64-linux-gnu",
        }
    }

    /// What ld.so substitutes for `$PLATFORM`.
    pub const fn platform(self) -> &'static str {
        match self {
            Machine::X86_64 => "x86_64",
            Machine::X86 => "i686",
            Machine::Aarch64 => "aarch64",
        }
    }

    /// ld.so's default directories (Debian's `SYSTEM_DIRS`), then the directories other
    /// distributions use for this class.
    pub const fn default_dirs(self) -> &'static [&'static str] {
        match self {
            Machine::X86_64 => &[
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ],
            Machine::X86 => &[
                "/lib/i386-linux-gnu",
                "/usr/lib/i386-linux-gnu",
                "/lib",
                "/usr/lib",
            ],
            Machine::Aarch64 => &[
                "/lib/aarch64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu",
                "/lib64",
                "/usr/lib64",
                "/lib",
                "/usr/lib",
            ],
        }
    }

    /// The dynamic linker's soname.
    pub const fn ld_so(self) -> &'static str {
        match self {
            Machine::X86_64 => "ld-linux-x86-64.so.2",
            Machine::X86 => "ld-linux.so.2",
            Machine::Aarch64 => "ld-linux-aarch64.so.1",
        }
    }

    /// The flags of the ld.so.cache entries this machine's ld.so accepts
    /// (`FLAG_ELF_LIBC6` and the class/ABI bits of glibc's `ldconfig.h`).
    pub const fn ld_cache_flags(self) -> i32 {
        match self {
            Machine::X86_64 => 0x0303,  // FLAG_ELF_LIBC6 | FLAG_X8664_LIB64
            Machine::X86 => 0x0003,     // FLAG_ELF_LIBC6
            Machine::Aarch64 => 0x0a03, // FLAG_ELF_LIBC6 | FLAG_AARCH64_LIB64
        }
    }

    /// Whether this machine's ld.so uses an ld.so.cache entry with `flags`
    /// (`_dl_cache_check_flags`): x86_64's and aarch64's take their own flags only,
    /// i386's (glibc's generic rule) also plain `FLAG_ELF` (1) entries.
    pub const fn accepts_cache_flags(self, flags: i32) -> bool {
        match self {
            Machine::X86 => flags == 1 || flags == self.ld_cache_flags(),
            Machine::X86_64 | Machine::Aarch64 => flags == self.ld_cache_flags(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_identification_round_trips() {
        for m in Machine::ALL {
            assert_eq!(Machine::from_elf(m.elf_class(), m.e_machine()), Some(m));
            assert_eq!(Machine::from_target(m.rust_target()), Some(m));
        }
        assert_eq!(Machine::from_elf(ELFCLASS64, 3), None);
        assert_eq!(Machine::from_target("riscv64gc-unknown-linux-gnu"), None);
    }

    #[test]
    fn native_matches_the_pointer_width() {
        assert_eq!(Machine::NATIVE.word_size(), std::mem::size_of::<usize>());
    }
}
