//! Writing a shim crate from a [`Manifest`]. Everything here is a pure function of the
//! manifest, so regenerating from the manifest gives the same bytes.
//!
//! The crate is a cdylib named after the soname (`libGL.so.1` builds `libGL.so`) whose
//! exports are the real library's: one `global_asm!` trampoline per (name, version)
//! jumping through a slot, one zero-filled object of the real size per variable, the
//! absolute `VER_n` symbols GNU ld defines, and two version scripts (named versions, and
//! unversioned symbols) handed to the linker by `build.rs` with the soname.
//!
//! The assembly defines one macro per kind of export and invokes it once per symbol, so a
//! shim is about four lines per symbol (its name in `STRINGS`, its `SYMBOLS` entry, its
//! table line, its version script line) and a library that gains one symbol changes those
//! lines, the offsets of the `SYMBOLS` entries after it, and one line of the manifest.
//!
//! The instructions of a trampoline and of a missing-symbol stub are the architecture's
//! (one file each, listed in [`ARCHES`]); the crate is for the manifest's machine and
//! refuses to build for another.

mod aarch64;
mod x86;
mod x86_64;

use std::fmt::Write as _;
use std::path::Path;

use capsule::machine::Machine;

use crate::error::{Error, Result};
use crate::manifest::{Export, Kind, Manifest, FILE_NAME};

/// What the generated assembly says differently on one architecture. Its lines may use
/// the `global_asm!` operands `{slots}` (the slot table), `{missing}` (the function a
/// stub calls) and the assembler symbols `.Lcapsule_slot` (the trampoline's slot index)
/// and `.Lcapsule_stub` (the stub's function index).
pub(crate) struct Arch {
    pub machine: Machine,
    /// The `target_arch` the crate must be compiled for.
    pub target_arch: &'static str,
    /// Options of the `global_asm!` (`options(att_syntax)`), or empty.
    pub options: &'static str,
    /// The alignment directive before each trampoline.
    pub trampoline_align: &'static str,
    /// A trampoline's instructions: jump through slot `.Lcapsule_slot`, every register
    /// and the stack as the caller left them (but the convention's scratch registers).
    pub trampoline: &'static [&'static str],
    /// A missing-symbol stub's instructions: call `{missing}` with `.Lcapsule_stub`, in at
    /// most `capsule::shim::MISSING_STUB_STRIDE` bytes.
    pub missing_stub: &'static [&'static str],
}

/// Every architecture capsule-gen writes shims for.
pub(crate) const ARCHES: [&Arch; 3] = [&x86_64::ARCH, &x86::ARCH, &aarch64::ARCH];

/// The architecture description for `machine`, or an error naming what is supported.
pub(crate) fn arch(machine: Machine) -> Result<&'static Arch> {
    ARCHES
        .into_iter()
        .find(|a| a.machine == machine)
        .ok_or_else(|| Error::UnsupportedMachine {
            machine: machine.name(),
            supported: ARCHES
                .iter()
                .map(|a| a.machine.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// One generated file, relative to the crate directory.
#[derive(Debug, PartialEq, Eq)]
pub struct File {
    pub path: &'static str,
    pub contents: String,
}

/// A generated crate: its files, and the symbols it had to leave out (with why).
#[derive(Debug)]
pub struct Crate {
    pub files: Vec<File>,
    pub left_out: Vec<(String, &'static str)>,
    /// Symbols the shim exports.
    pub exported: usize,
}

const VERSIONS_MAP: &str = "versions.map";
const UNVERSIONED_MAP: &str = "unversioned.map";

/// The Rust library name for `soname`: `libGL.so.1` -> `GL`, `libxcb-glx.so.0` ->
/// `xcb_glx` (Cargo library names must be identifiers; the built file is then
/// `libxcb_glx.so`, while DT_SONAME stays `libxcb-glx.so.0`).
pub fn lib_name(soname: &str) -> Result<String> {
    let stem = soname.strip_prefix("lib").unwrap_or(soname);
    let stem = stem.find(".so").map_or(stem, |end| &stem[..end]);
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    match name.chars().next() {
        None => Err(Error::BadSoname {
            soname: soname.into(),
            reason: "no library name left after removing `lib` and `.so...`".into(),
        }),
        Some(c) if c.is_ascii_digit() => Err(Error::BadSoname {
            soname: soname.into(),
            reason: format!("the library name {name:?} starts with a digit, which Cargo does not accept as a [lib] name"),
        }),
        Some(_) => Ok(name),
    }
}

/// The Cargo package name for `soname`: `libGL.so.1` -> `shim-libgl-so-1`.
pub fn crate_name(soname: &str) -> String {
    let mangled: String = soname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("shim-{mangled}")
}

/// Generate the crate's files.
pub fn generate(m: &Manifest) -> Result<Crate> {
    let lib = lib_name(&m.soname)?;
    let arch = arch(m.machine)?;
    let mut left_out = Vec::new();
    let mut functions = Vec::new();
    let mut objects = Vec::new();
    for s in &m.symbols {
        match why_left_out(s) {
            Some(reason) => left_out.push((s.display_name(), reason)),
            None if s.kind == Kind::Function => functions.push(s),
            None => objects.push(s),
        }
    }
    let exported = functions.len() + objects.len();
    let mut files = vec![
        File {
            path: "Cargo.toml",
            contents: cargo_toml(m, &lib),
        },
        File {
            path: "build.rs",
            contents: build_rs(m, &functions, &objects),
        },
        File {
            path: "src/lib.rs",
            contents: lib_rs(m, arch, &functions, &objects),
        },
        File {
            path: FILE_NAME,
            contents: m.to_toml(),
        },
    ];
    if let Some(map) = versions_map(m, &functions, &objects) {
        files.push(File {
            path: VERSIONS_MAP,
            contents: map,
        });
    }
    if let Some(map) = unversioned_map(&functions, &objects) {
        files.push(File {
            path: UNVERSIONED_MAP,
            contents: map,
        });
    }
    if !m.workspace_member {
        files.push(File {
            path: ".gitignore",
            contents: "/target\n/Cargo.lock\n".into(),
        });
    }
    Ok(Crate {
        files,
        left_out,
        exported,
    })
}

/// Write `krate` into `dir`, creating directories as needed.
pub fn write(krate: &Crate, dir: &Path) -> Result<()> {
    for file in &krate.files {
        let path = dir.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        std::fs::write(&path, &file.contents).map_err(Error::io(&path))?;
    }
    Ok(())
}

/// Why a symbol cannot be exported by the shim, if it cannot.
fn why_left_out(s: &Export) -> Option<&'static str> {
    match s.kind {
        Kind::Tls => {
            return Some("it is a thread-local variable: each access goes through the library's own TLS block, which a proxy cannot share")
        }
        Kind::Untyped => return Some("it has no symbol type, so nothing says whether it is code or data"),
        Kind::Function | Kind::Object => {}
    }
    if !is_asm_name(&s.name) || !s.version.as_deref().is_none_or(is_asm_name) {
        return Some("its name or version has characters the assembler cannot take unquoted");
    }
    None
}

/// Names the generated assembly and version scripts can carry as they are.
fn is_asm_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
}

const HEADER: &str = "Generated by capsule-gen from capsule-shim.toml. Do not edit: \
                      regenerate with `capsule-gen --regenerate <this directory>`.";

fn cargo_toml(m: &Manifest, lib: &str) -> String {
    let mut out = format!("# {HEADER}\n\n[package]\n");
    let _ = writeln!(out, "name = \"{}\"", crate_name(&m.soname));
    out.push_str("version = \"0.1.0\"\nedition = \"2021\"\npublish = false\n");
    let _ = writeln!(
        out,
        "description = \"Proxy for {0} that forwards to the host's {0}, loaded in a capsule\"",
        m.soname
    );
    out.push_str("build = \"build.rs\"\n\n[lib]\n");
    let _ = writeln!(out, "name = \"{lib}\"");
    out.push_str("crate-type = [\"cdylib\"]\npath = \"src/lib.rs\"\n\n[dependencies]\n");
    let _ = writeln!(out, "capsule = {{ path = {:?} }}", m.runtime);
    if !m.workspace_member {
        out.push_str("\n# Not part of any enclosing workspace.\n[workspace]\n");
    }
    out
}

fn build_rs(m: &Manifest, functions: &[&Export], objects: &[&Export]) -> String {
    let mut out = format!("//! {HEADER}\n\nfn main() {{\n");
    out.push_str(
        "    let dir = std::env::var(\"CARGO_MANIFEST_DIR\").expect(\"cargo sets CARGO_MANIFEST_DIR\");\n",
    );
    let _ = writeln!(
        out,
        "    println!(\"cargo:rustc-cdylib-link-arg=-Wl,-soname,{}\");",
        m.soname
    );
    let all = || functions.iter().chain(objects);
    let mut maps = Vec::new();
    if all().any(|s| s.version.is_some()) || m.versions.iter().any(|v| v.marker) {
        maps.push(VERSIONS_MAP);
    }
    if all().any(|s| s.version.is_none()) {
        maps.push(UNVERSIONED_MAP);
    }
    // Symbol versions need rust-lld (rustc's default linker on x86-64 Linux): GNU ld
    // refuses a named version script beside the anonymous one rustc writes.
    for map in &maps {
        let _ = writeln!(
            out,
            "    println!(\"cargo:rustc-cdylib-link-arg=-Wl,--version-script={{dir}}/{map}\");"
        );
        let _ = writeln!(out, "    println!(\"cargo:rerun-if-changed={map}\");");
    }
    out.push_str("    println!(\"cargo:rerun-if-changed=build.rs\");\n}\n");
    out
}

/// The version script for named versions: per version, its marker and the names whose
/// default version it is. Non-default `name@VER` symbols need no entry.
fn versions_map(m: &Manifest, functions: &[&Export], objects: &[&Export]) -> Option<String> {
    let defaults: Vec<&Export> = functions
        .iter()
        .chain(objects)
        .copied()
        .filter(|s| s.version.is_some() && s.default)
        .collect();
    let needed = m.versions.iter().any(|v| v.marker)
        || functions.iter().chain(objects).any(|s| s.version.is_some());
    if !needed {
        return None;
    }
    let mut out = format!("/* {HEADER} */\n");
    for v in &m.versions {
        let _ = writeln!(out, "{} {{", v.name);
        let mut names: Vec<&str> = defaults
            .iter()
            .filter(|s| s.version.as_deref() == Some(&v.name))
            .map(|s| s.name.as_str())
            .collect();
        if v.marker {
            names.push(&v.name);
        }
        names.sort_unstable();
        if !names.is_empty() {
            out.push_str("  global:\n");
            for name in names {
                let _ = writeln!(out, "    {name};");
            }
        }
        out.push('}');
        for parent in &v.parents {
            let _ = write!(out, " {parent}");
        }
        out.push_str(";\n");
    }
    Some(out)
}

fn unversioned_map(functions: &[&Export], objects: &[&Export]) -> Option<String> {
    let names: Vec<&str> = functions
        .iter()
        .chain(objects)
        .filter(|s| s.version.is_none())
        .map(|s| s.name.as_str())
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut out = format!("/* {HEADER} */\n{{\n  global:\n");
    for name in names {
        let _ = writeln!(out, "    {name};");
    }
    out.push_str("};\n");
    Some(out)
}

fn lib_rs(m: &Manifest, arch: &Arch, functions: &[&Export], objects: &[&Export]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "//! Proxy for `{0}`: it exports what the real library exports and forwards every\n\
         //! call to the host's `{0}`, which it loads into a capsule when it is loaded itself.\n\
         //!\n//! {HEADER}\n",
        m.soname
    );
    if lib_name(&m.soname).is_ok_and(|name| name.chars().any(|c| c.is_ascii_uppercase())) {
        // The crate is named after the soname (libGL.so.1 -> GL) so that `-lGL` links it.
        out.push_str("#![allow(non_snake_case)]\n\n");
    }
    let _ = writeln!(
        out,
        "#[cfg(not(target_arch = \"{}\"))]\ncompile_error!(\"this proxy for {} was generated from a library for {}: build it with `--target {}`\");\n",
        arch.target_arch,
        m.soname,
        arch.machine.name(),
        arch.machine.rust_target()
    );
    out.push_str("use capsule::shim::{Entry, Library};\n\n");
    let _ = writeln!(out, "const FUNCTIONS: usize = {};\n", functions.len());
    let table = StringTable::new(functions.iter().chain(objects).copied());
    out.push_str(
        "/// Every name, then every version, each NUL-terminated: `SYMBOLS` holds offsets into\n\
         /// it, not pointers (each of which the dynamic linker would relocate at every start).\n\
         #[rustfmt::skip]\nconst STRINGS: &[u8] = concat!(\n    \"\\0\",\n",
    );
    for text in &table.texts {
        let _ = writeln!(out, "    \"{text}\\0\",");
    }
    out.push_str(").as_bytes();\n\n");
    let _ = writeln!(
        out,
        "/// Functions first, in slot order, then variables: the offsets of the name and the\n/// version (0: none) in `STRINGS`. One line each, whatever rustfmt thinks, so that\n/// `cargo fmt` leaves the generated file byte-identical.\n#[rustfmt::skip]\nstatic SYMBOLS: [Entry; {}] = [",
        functions.len() + objects.len()
    );
    for (k, s) in functions.iter().enumerate() {
        let (name, version) = table.offsets(k, s);
        let _ = writeln!(
            out,
            "    Entry::function({name}, {version}, {}),",
            s.default
        );
    }
    for (k, s) in objects.iter().enumerate() {
        let (name, version) = table.offsets(functions.len() + k, s);
        let _ = writeln!(
            out,
            "    Entry::object({name}, {version}, {}, {}),",
            s.default, s.size
        );
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "static LIBRARY: Library = Library::new(\"{}\", STRINGS, &SYMBOLS, FUNCTIONS);\n",
        m.soname
    );
    out.push_str(RUST_GLUE);
    out.push_str("\ncore::arch::global_asm!(\n");
    asm_trampolines(&mut out, arch, functions);
    asm_missing_stubs(&mut out, arch);
    asm_objects(&mut out, objects);
    asm_version_markers(&mut out, m);
    out.push_str(
        "    slots = sym SLOTS,\n    missing = sym missing,\n    functions = const FUNCTIONS,\n    \
         stride = const capsule::shim::MISSING_STUB_STRIDE,\n",
    );
    if !arch.options.is_empty() {
        let _ = writeln!(out, "    {},", arch.options);
    }
    out.push_str(");\n");
    out
}

/// The generated `STRINGS`: each symbol's name in table order, then each version once,
/// after the empty string at offset 0.
struct StringTable {
    texts: Vec<String>,
    /// Where each name (by its place in the table) and each version start.
    names: Vec<usize>,
    versions: std::collections::BTreeMap<String, usize>,
}

impl StringTable {
    fn new<'a>(symbols: impl Iterator<Item = &'a Export> + Clone) -> StringTable {
        let mut table = StringTable {
            texts: Vec::new(),
            names: Vec::new(),
            versions: std::collections::BTreeMap::new(),
        };
        let mut next = 1; // after the empty string
        for s in symbols.clone() {
            table.names.push(next);
            next += s.name.len() + 1;
            table.texts.push(s.name.clone());
        }
        for version in symbols.filter_map(|s| s.version.as_ref()) {
            if !table.versions.contains_key(version) {
                table.versions.insert(version.clone(), next);
                next += version.len() + 1;
                table.texts.push(version.clone());
            }
        }
        table
    }

    /// The offsets of the name of symbol `k` (in the order the table was made from) and
    /// of its version (0: unversioned).
    fn offsets(&self, k: usize, s: &Export) -> (usize, usize) {
        let version = s
            .version
            .as_ref()
            .and_then(|v| self.versions.get(v).copied())
            .unwrap_or(0);
        (self.names.get(k).copied().unwrap_or(0), version)
    }
}

const RUST_GLUE: &str = r#"/// Where each trampoline jumps; filled by `capsule::shim::init` when the shim loads.
static mut SLOTS: [usize; FUNCTIONS] = [0; FUNCTIONS];

extern "C" {
    /// The first missing-symbol stub in the assembly below (hidden: not exported).
    static __capsule_missing_stubs: u8;
}

/// Runs when the dynamic linker loads the shim, before the program's own constructors.
#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = load;

extern "C" fn load() {
    // SAFETY: SLOTS has one slot per function and only the trampolines read it; the stub
    // table has one stub per function, MISSING_STUB_STRIDE bytes apart, each passing its
    // index to `missing`.
    unsafe {
        capsule::shim::init(
            &LIBRARY,
            (&raw mut SLOTS).cast(),
            &raw const __capsule_missing_stubs,
        )
    };
}

extern "C" fn missing(index: u32) -> ! {
    capsule::shim::missing_called(&LIBRARY, index as usize)
}
"#;

/// One line of the `global_asm!` template: a raw string where it holds backslashes (macro
/// arguments), else a plain one.
fn asm_line(out: &mut String, line: &str) {
    if line.contains('\\') && !line.contains('"') {
        let _ = writeln!(out, "    r\"{line}\",");
    } else {
        let _ = writeln!(out, "    {line:?},");
    }
}

fn asm_lines(out: &mut String, lines: &[&str]) {
    for line in lines {
        asm_line(out, line);
    }
}

/// The table line for `s`, which invokes the assembler macro for its `kind` (`fn`, `obj`): `capsule_fn NAME`, `capsule_fn_ver NAME, VER` (NAME@@VER),
/// `capsule_fn_oldver NAME, VER` (NAME@VER), objects with their size last, and `, .weak`
/// at the end for weak symbols.
fn table_line(kind: &str, s: &Export) -> String {
    let mut line = match (&s.version, s.default) {
        (None, _) => format!("capsule_{kind} {}", s.name),
        (Some(v), true) => format!("capsule_{kind}_ver {}, {v}", s.name),
        (Some(v), false) => format!("capsule_{kind}_oldver {}, {v}", s.name),
    };
    if kind == "obj" {
        let _ = write!(line, ", {}", s.size);
    }
    if s.weak {
        line.push_str(", .weak");
    }
    line
}

/// The macros renaming a local label to a versioned symbol, for exports of `kind` whose
/// plain macro takes the parameters `extra` after the name. `\@` (the macro expansion
/// count) makes each label unique; `.symver ..., remove` drops it.
fn asm_version_macros(out: &mut String, kind: &str, extra: &[&str], exports: &[&Export]) {
    for (default, suffix, at) in [(true, "ver", "@@"), (false, "oldver", "@")] {
        if !exports
            .iter()
            .any(|s| s.version.is_some() && s.default == default)
        {
            continue;
        }
        let params: String = extra.iter().map(|p| format!(", {p}")).collect();
        let args: String = extra.iter().map(|p| format!(", \\{p}")).collect();
        asm_lines(
            out,
            &[
                &format!(".macro capsule_{kind}_{suffix} name, ver{params}, bind=.globl"),
                &format!("capsule_{kind} __capsule_{kind}_\\@{args}, \\bind"),
                &format!(".symver __capsule_{kind}_\\@, \\name{at}\\ver, remove"),
                ".endm",
            ],
        );
    }
}

fn asm_trampolines(out: &mut String, arch: &Arch, functions: &[&Export]) {
    out.push_str(
        "    // Trampolines, one table line per function in slot order: each jumps through its\n    \
         // slot, leaving registers, stack and variadic state untouched.\n",
    );
    asm_lines(
        out,
        &[
            r".macro capsule_fn name, bind=.globl",
            arch.trampoline_align,
            r"\bind \name",
            r".type \name, @function",
            r"\name:",
        ],
    );
    asm_lines(out, arch.trampoline);
    asm_lines(
        out,
        &[
            r".size \name, . - \name",
            ".set .Lcapsule_slot, .Lcapsule_slot + 1",
            ".endm",
        ],
    );
    asm_version_macros(out, "fn", &[], functions);
    asm_line(
        out,
        ".pushsection .text.capsule_trampolines,\"ax\",@progbits",
    );
    asm_line(out, ".set .Lcapsule_slot, 0");
    for s in functions {
        asm_line(out, &table_line("fn", s));
    }
    asm_lines(
        out,
        &[
            ".if .Lcapsule_slot != {functions}",
            ".error \"the trampoline table and SYMBOLS disagree on the number of functions\"",
            ".endif",
            ".popsection",
        ],
    );
}

fn asm_missing_stubs(out: &mut String, arch: &Arch) {
    out.push_str(
        "    // Missing-symbol stubs, capsule::shim::MISSING_STUB_STRIDE bytes apart (the runtime\n    \
         // finds stub i there): stub i calls missing(i). `.org` fails the build if one is longer.\n",
    );
    asm_lines(
        out,
        &[
            ".pushsection .text.capsule_missing,\"ax\",@progbits",
            ".balign {stride}",
            ".globl __capsule_missing_stubs",
            ".hidden __capsule_missing_stubs",
            "__capsule_missing_stubs:",
            ".set .Lcapsule_stub, 0",
            ".rept {functions}",
        ],
    );
    asm_lines(out, arch.missing_stub);
    asm_lines(
        out,
        &[
            ".set .Lcapsule_stub, .Lcapsule_stub + 1",
            ".org __capsule_missing_stubs + {stride} * .Lcapsule_stub, 0xcc",
            ".endr",
            ".popsection",
        ],
    );
}

fn asm_objects(out: &mut String, objects: &[&Export]) {
    if objects.is_empty() {
        return;
    }
    out.push_str(
        "    // Variables: placeholders of the real size, filled from the real library at load.\n",
    );
    asm_lines(
        out,
        &[
            r".macro capsule_obj name, size, bind=.globl",
            ".p2align 4",
            r"\bind \name",
            r".type \name, @object",
            r"\name:",
            r".skip \size",
            r".size \name, \size",
            ".endm",
        ],
    );
    asm_version_macros(out, "obj", &["size"], objects);
    asm_line(out, ".pushsection .bss.capsule_objects,\"aw\",@nobits");
    for s in objects {
        asm_line(out, &table_line("obj", s));
    }
    asm_line(out, ".popsection");
}

/// GNU ld defines an absolute symbol per version; lld does not, so define them here.
fn asm_version_markers(out: &mut String, m: &Manifest) {
    let markers: Vec<&str> = m
        .versions
        .iter()
        .filter(|v| v.marker && is_asm_name(&v.name))
        .map(|v| v.name.as_str())
        .collect();
    if markers.is_empty() {
        return;
    }
    out.push_str("    // Version markers, as GNU ld defines them.\n");
    for name in markers {
        asm_line(out, &format!(".globl {name}"));
        asm_line(out, &format!(".set {name}, 0"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_names_from_sonames() {
        assert_eq!(lib_name("libGL.so.1").unwrap(), "GL");
        assert_eq!(lib_name("libGLESv2.so.2").unwrap(), "GLESv2");
        assert_eq!(lib_name("libxcb-glx.so.0").unwrap(), "xcb_glx");
        assert_eq!(lib_name("libstdc++.so.6").unwrap(), "stdc__");
        assert_eq!(lib_name("libz.so.1").unwrap(), "z");
        let err = lib_name("lib.so.1").unwrap_err().to_string();
        assert!(err.contains("lib.so.1"), "{err}");
        assert!(lib_name("lib3d.so").is_err());
    }

    #[test]
    fn every_machine_capsule_knows_has_an_emitter() {
        for machine in Machine::ALL {
            assert_eq!(arch(machine).unwrap().machine, machine);
        }
    }

    #[test]
    fn crate_names_from_sonames() {
        assert_eq!(crate_name("libGL.so.1"), "shim-libgl-so-1");
    }

    fn export(name: &str, version: Option<&str>, default: bool, kind: Kind, weak: bool) -> Export {
        Export {
            name: name.into(),
            version: version.map(Into::into),
            default,
            kind,
            weak,
            size: if kind == Kind::Object { 12 } else { 0 },
        }
    }

    #[test]
    fn one_table_line_per_symbol() {
        let m = Manifest {
            format: crate::manifest::Format,
            soname: "libfoo.so.1".into(),
            machine: Machine::X86_64,
            source: "/usr/lib/libfoo.so.1".into(),
            runtime: "../../capsule".into(),
            workspace_member: true,
            versions: vec![],
            symbols: vec![
                export("bar", None, false, Kind::Function, false),
                export("foo", Some("FOO_1"), false, Kind::Function, false),
                export("foo", Some("FOO_2"), true, Kind::Function, true),
                export("counter", Some("FOO_2"), true, Kind::Object, false),
                export("weak_counter", None, false, Kind::Object, true),
            ],
        };
        let krate = generate(&m).unwrap();
        let lib = &krate
            .files
            .iter()
            .find(|f| f.path == "src/lib.rs")
            .unwrap()
            .contents;
        for line in [
            "    \"capsule_fn bar\",\n",
            "    \"capsule_fn_oldver foo, FOO_1\",\n",
            "    \"capsule_fn_ver foo, FOO_2, .weak\",\n",
            "    \"capsule_obj_ver counter, FOO_2, 12\",\n",
            "    \"capsule_obj weak_counter, 12, .weak\",\n",
            "    r\".symver __capsule_fn_\\@, \\name@\\ver, remove\",\n",
            "    r\".symver __capsule_obj_\\@, \\name@@\\ver, remove\",\n",
        ] {
            assert!(lib.contains(line), "no {line:?} in\n{lib}");
        }
        // Only the macros the tables use are defined.
        assert!(!lib.contains("capsule_obj_oldver"), "{lib}");
        // The stub table is laid out with the runtime's stride, at the shim's build.
        assert!(lib.contains("stride = const capsule::shim::MISSING_STUB_STRIDE,"));
        for line in [
            ".balign {stride}",
            ".org __capsule_missing_stubs + {stride} * .Lcapsule_stub, 0xcc",
        ] {
            assert!(lib.contains(line), "no {line:?} in\n{lib}");
        }
    }

    #[test]
    fn the_crate_is_for_the_manifests_machine() {
        let mut m = Manifest {
            format: crate::manifest::Format,
            soname: "libfoo.so.1".into(),
            machine: Machine::X86,
            source: "/usr/lib/i386-linux-gnu/libfoo.so.1".into(),
            runtime: "../../capsule".into(),
            workspace_member: true,
            versions: vec![],
            symbols: vec![export("bar", None, false, Kind::Function, false)],
        };
        let lib_rs = |m: &Manifest| {
            generate(m)
                .unwrap()
                .files
                .into_iter()
                .find(|f| f.path == "src/lib.rs")
                .unwrap()
                .contents
        };
        let i386 = lib_rs(&m);
        for line in [
            "#[cfg(not(target_arch = \"x86\"))]\ncompile_error!(\"this proxy for libfoo.so.1 was generated from a library for i386: build it with `--target i686-unknown-linux-gnu`\");",
            "    \"popl %ecx\",\n",
            "    options(att_syntax),\n",
        ] {
            assert!(i386.contains(line), "no {line:?} in\n{i386}");
        }
        m.machine = Machine::X86_64;
        let x86_64 = lib_rs(&m);
        assert!(x86_64.contains("#[cfg(not(target_arch = \"x86_64\"))]"));
        assert!(!x86_64.contains("att_syntax") && !x86_64.contains("%ecx"));
        m.machine = Machine::Aarch64;
        let aarch64 = lib_rs(&m);
        for line in [
            "#[cfg(not(target_arch = \"aarch64\"))]",
            "    \"ldr x16, [x16, :lo12:{slots} + 8 * .Lcapsule_slot]\",\n",
            "    \"b {missing}\",\n",
        ] {
            assert!(aarch64.contains(line), "no {line:?} in\n{aarch64}");
        }
        assert!(!aarch64.contains("att_syntax") && !aarch64.contains("%ecx"));
    }

    #[test]
    fn asm_names() {
        assert!(is_asm_name("ZLIB_1.2.0"));
        assert!(is_asm_name("_ZN3foo3barEv"));
        assert!(!is_asm_name("9lives"));
        assert!(!is_asm_name("a-b"));
        assert!(!is_asm_name(""));
    }
}
