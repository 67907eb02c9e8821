//! Writing a shim crate from a [`Manifest`]. Everything here is a pure function of the
//! manifest, so regenerating from the manifest gives the same bytes.
//!
//! The crate is a cdylib named after the soname (`libGL.so.1` builds `libGL.so`) whose
//! exports are the real library's: one `global_asm!` trampoline per (name, version)
//! jumping through a slot, one zero-filled object of the real size per variable, the
//! absolute `VER_n` symbols GNU ld defines, and two version scripts (named versions, and
//! unversioned symbols) handed to the linker by `build.rs` with the soname.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::{Export, Kind, Manifest, FILE_NAME};

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
            contents: lib_rs(m, &functions, &objects),
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

fn lib_rs(m: &Manifest, functions: &[&Export], objects: &[&Export]) -> String {
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
    out.push_str("use capsule::shim::{Library, Symbol};\n\n");
    let _ = writeln!(out, "const FUNCTIONS: usize = {};\n", functions.len());
    let _ = writeln!(
        out,
        "/// Functions first, in slot order, then variables. One line each, whatever rustfmt\n/// thinks, so that `cargo fmt` leaves the generated file byte-identical.\n#[rustfmt::skip]\nstatic SYMBOLS: [Symbol; {}] = [",
        functions.len() + objects.len()
    );
    for s in functions {
        let _ = writeln!(
            out,
            "    Symbol::function(c\"{}\", {}, {}),",
            s.name,
            version_literal(s),
            s.default
        );
    }
    for s in objects {
        let _ = writeln!(
            out,
            "    Symbol::object(c\"{}\", {}, {}, {}),",
            s.name,
            version_literal(s),
            s.default,
            s.size
        );
    }
    out.push_str("];\n\n");
    let _ = writeln!(
        out,
        "static LIBRARY: Library = Library::new(\"{}\", &SYMBOLS, FUNCTIONS);\n",
        m.soname
    );
    out.push_str(RUST_GLUE);
    out.push_str("\ncore::arch::global_asm!(\n");
    asm_trampolines(&mut out, functions);
    asm_missing_stubs(&mut out, functions.len());
    asm_objects(&mut out, objects);
    asm_version_markers(&mut out, m);
    out.push_str("    slots = sym SLOTS,\n    missing = sym missing,\n);\n");
    out
}

fn version_literal(s: &Export) -> String {
    match &s.version {
        Some(v) => format!("Some(c\"{v}\")"),
        None => "None".into(),
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
    // table has one 16-byte stub per function, each passing its index to `missing`.
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

/// Give `label` the exported name of `s`: a versioned name through `.symver` (dropping the
/// label itself), an unversioned one by naming the label after the symbol.
fn label_for(s: &Export, fallback: String) -> (String, Option<String>) {
    match &s.version {
        None => (s.name.clone(), None),
        Some(v) => {
            let at = if s.default { "@@" } else { "@" };
            let symver = format!(".symver {fallback}, {}{at}{v}, remove", s.name);
            (fallback, Some(symver))
        }
    }
}

fn asm_line(out: &mut String, line: &str) {
    let _ = writeln!(out, "    \"{}\",", line.replace('"', "\\\""));
}

fn asm_trampolines(out: &mut String, functions: &[&Export]) {
    out.push_str(
        "    // Trampolines: each forwards registers, stack and variadic state untouched.\n",
    );
    asm_line(
        out,
        ".pushsection .text.capsule_trampolines,\"ax\",@progbits",
    );
    for (i, s) in functions.iter().enumerate() {
        let (label, symver) = label_for(s, format!("__capsule_fn_{i}"));
        asm_line(out, ".p2align 3");
        asm_line(
            out,
            &format!("{} {label}", if s.weak { ".weak" } else { ".globl" }),
        );
        asm_line(out, &format!(".type {label}, @function"));
        asm_line(out, &format!("{label}:"));
        asm_line(out, &format!("jmp qword ptr [rip + {{slots}} + {}]", 8 * i));
        asm_line(out, &format!(".size {label}, . - {label}"));
        if let Some(symver) = symver {
            asm_line(out, &symver);
        }
    }
    asm_line(out, ".popsection");
}

fn asm_missing_stubs(out: &mut String, count: usize) {
    out.push_str("    // Missing-symbol stubs, 16 bytes apart: stub i calls missing(i).\n");
    asm_line(out, ".pushsection .text.capsule_missing,\"ax\",@progbits");
    asm_line(out, ".p2align 4");
    asm_line(out, ".globl __capsule_missing_stubs");
    asm_line(out, ".hidden __capsule_missing_stubs");
    asm_line(out, "__capsule_missing_stubs:");
    for i in 0..count {
        asm_line(out, &format!("mov edi, {i}"));
        asm_line(out, "jmp {missing}");
        asm_line(out, ".p2align 4");
    }
    asm_line(out, ".popsection");
}

fn asm_objects(out: &mut String, objects: &[&Export]) {
    if objects.is_empty() {
        return;
    }
    out.push_str(
        "    // Variables: placeholders of the real size, filled from the real library at load.\n",
    );
    asm_line(out, ".pushsection .bss.capsule_objects,\"aw\",@nobits");
    for (i, s) in objects.iter().enumerate() {
        let (label, symver) = label_for(s, format!("__capsule_obj_{i}"));
        asm_line(out, ".p2align 4");
        asm_line(
            out,
            &format!("{} {label}", if s.weak { ".weak" } else { ".globl" }),
        );
        asm_line(out, &format!(".type {label}, @object"));
        asm_line(out, &format!("{label}:"));
        asm_line(out, &format!(".skip {}", s.size));
        asm_line(out, &format!(".size {label}, {}", s.size));
        if let Some(symver) = symver {
            asm_line(out, &symver);
        }
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
    fn crate_names_from_sonames() {
        assert_eq!(crate_name("libGL.so.1"), "shim-libgl-so-1");
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
