//! What a shim is generated from: the real library's soname, versions and exports, plus how
//! the crate refers to the runtime. Stored in the shim crate as `capsule-shim.toml`: the
//! crate can be regenerated from it alone, and compared with a live library.
//!
//! Read with `toml` + `serde`, so a hand-edited file may use any TOML (comments, other key
//! orders, `[[symbols]]` tables). Written one entry per line, each value rendered by
//! `toml`, so that equal manifests give equal bytes and a diff shows one line per symbol.

use std::path::Path;

use capsule::machine::Machine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// File name of the manifest inside a shim crate.
pub const FILE_NAME: &str = "capsule-shim.toml";

/// Written, and read. Format 1 also recorded every function's size, which no shim uses
/// (it changed with every rebuild of the library); it is read, ignoring those sizes.
const FORMAT: i64 = 2;
const FORMAT_1: i64 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`]; read so that a manifest of another format is refused by name.
    pub format: Format,
    pub soname: String,
    /// The machine the library is built for, and so the shim (`machine = "i386"`); absent
    /// in the file for x86_64, the only machine of the manifests written before it.
    #[serde(default = "x86_64", deserialize_with = "machine_by_name")]
    pub machine: Machine,
    /// The file the library was read from (informative; regeneration does not read it).
    pub source: String,
    /// The `capsule` runtime crate's path, exactly as the shim's Cargo.toml names it.
    pub runtime: String,
    /// A member of an enclosing workspace (no `[workspace]` table of its own).
    pub workspace_member: bool,
    /// Version definitions other than the library's base version, in the library's order.
    pub versions: Vec<VersionDef>,
    /// Exported symbols, sorted by name, then version.
    pub symbols: Vec<Export>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionDef {
    pub name: String,
    pub parents: Vec<String>,
    /// The library exports the absolute symbol `NAME` that GNU ld defines per version.
    pub marker: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "SymbolEntry", into = "SymbolEntry")]
pub struct Export {
    pub name: String,
    /// `None` for an unversioned symbol (or one in the library's base version).
    pub version: Option<String>,
    /// `name@@VER` rather than `name@VER`.
    pub default: bool,
    pub kind: Kind,
    pub weak: bool,
    /// A variable's size in bytes (`st_size`), part of its ABI; 0 for everything else, whose
    /// size no shim uses.
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Code, indirect functions included.
    Function,
    Object,
    /// Thread-local variable: a shim cannot forward it.
    Tls,
    /// A symbol without a type (`STT_NOTYPE`): nothing says how to forward it.
    Untyped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Object => "object",
            Kind::Tls => "tls",
            Kind::Untyped => "untyped",
        }
    }
}

impl Export {
    /// `name`, `name@VER` or `name@@VER`, as `nm --with-symbol-versions` writes it.
    pub fn display_name(&self) -> String {
        match &self.version {
            None => self.name.clone(),
            Some(v) if self.default => format!("{}@@{v}", self.name),
            Some(v) => format!("{}@{v}", self.name),
        }
    }
}

/// The `format` key: serialized as [`FORMAT`]; [`FORMAT`] and [`FORMAT_1`] are accepted
/// when read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Format;

impl Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_i64(FORMAT)
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Format, D::Error> {
        match i64::deserialize(d)? {
            FORMAT | FORMAT_1 => Ok(Format),
            other => Err(serde::de::Error::custom(format!(
                "format {other} is not one this capsule-gen understands ({FORMAT_1} or {FORMAT})"
            ))),
        }
    }
}

/// An [`Export`] as the file spells it: `version` and `default` appear together or not at
/// all, which serde's attributes alone cannot say; `size` is a variable's only.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SymbolEntry {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<bool>,
    kind: Kind,
    weak: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
}

impl TryFrom<SymbolEntry> for Export {
    type Error = String;

    fn try_from(e: SymbolEntry) -> std::result::Result<Export, String> {
        let default = match (&e.version, e.default) {
            (Some(_), Some(default)) => default,
            (None, None) => false,
            (Some(_), None) => {
                return Err(format!(
                    "symbol {:?} has a version but no `default` (true for name@@VERSION, false for name@VERSION)",
                    e.name
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "symbol {:?} has `default` but no `version`",
                    e.name
                ))
            }
        };
        // Another kind's size (format 1 recorded them all) is ignored: no shim uses it.
        let size = match (e.kind, e.size) {
            (Kind::Object, Some(size)) => size,
            (Kind::Object, None) => {
                return Err(format!(
                    "variable {:?} has no `size` (its size in bytes)",
                    e.name
                ))
            }
            _ => 0,
        };
        Ok(Export {
            name: e.name,
            version: e.version,
            default,
            kind: e.kind,
            weak: e.weak,
            size,
        })
    }
}

impl From<Export> for SymbolEntry {
    fn from(e: Export) -> SymbolEntry {
        SymbolEntry {
            default: e.version.is_some().then_some(e.default),
            name: e.name,
            version: e.version,
            size: (e.kind == Kind::Object).then_some(e.size),
            kind: e.kind,
            weak: e.weak,
        }
    }
}

fn x86_64() -> Machine {
    Machine::X86_64
}

/// A machine by the name [`Machine::name`] gives it (`x86_64`, `i386`, `aarch64`).
fn machine_by_name<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Machine, D::Error> {
    let name = String::deserialize(d)?;
    Machine::ALL
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = Machine::ALL.iter().map(|m| m.name()).collect();
            serde::de::Error::custom(format!(
                "machine {name:?} is not one capsule knows ({})",
                known.join(", ")
            ))
        })
}

/// `value` as an inline TOML value (`"text"`, `[...]`, `{ key = value, ... }`).
fn inline<T: Serialize>(value: &T) -> String {
    let mut out = String::new();
    value
        .serialize(toml::ser::ValueSerializer::new(&mut out))
        .expect("manifest values are strings, booleans, integers, arrays and tables");
    out
}

impl Manifest {
    /// Read the manifest of the shim crate in `dir`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::BadManifest {
            path: path.clone(),
            reason: format!(
                "cannot read it ({e}); is {} a shim crate made by capsule-gen?",
                dir.display()
            ),
        })?;
        Manifest::parse(&text, &path)
    }

    /// The manifest as text. Deterministic: equal manifests give equal bytes.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("# What this shim crate was generated from, by capsule-gen.\n");
        out.push_str("# `capsule-gen --regenerate DIR` rewrites the crate from this file alone;\n");
        out.push_str("# `capsule-gen --check DIR` compares it with the live library.\n");
        let scalars: [(&str, String); 5] = [
            ("format", inline(&self.format)),
            ("soname", inline(&self.soname)),
            ("source", inline(&self.source)),
            ("runtime", inline(&self.runtime)),
            ("workspace_member", inline(&self.workspace_member)),
        ];
        for (key, value) in scalars {
            out.push_str(&format!("{key} = {value}\n"));
            if key == "soname" && self.machine != Machine::X86_64 {
                out.push_str(&format!("machine = {}\n", inline(&self.machine.name())));
            }
        }
        let lines = |key: &str, items: Vec<String>| {
            let items: String = items.iter().map(|i| format!("  {i},\n")).collect();
            format!("\n{key} = [\n{items}]\n")
        };
        out.push_str(&lines(
            "versions",
            self.versions.iter().map(inline).collect(),
        ));
        out.push_str(&lines("symbols", self.symbols.iter().map(inline).collect()));
        out
    }

    /// Read a manifest: any TOML document with the keys [`Manifest::to_toml`] writes.
    /// `path` is for error messages, which give the line and column of what is wrong.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            Error::ManifestSyntax {
                path: path.to_path_buf(),
                line,
                column,
                message: err.message().trim_end().replace('\n', "; "),
            }
        })
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    // toml's spans fall on character boundaries; `get` keeps a bad one from panicking.
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: Format,
            soname: "libfoo.so.1".into(),
            machine: Machine::X86_64,
            source: "/usr/lib/libfoo.so.1.2".into(),
            runtime: "../../capsule".into(),
            workspace_member: true,
            versions: vec![
                VersionDef {
                    name: "FOO_1".into(),
                    parents: vec![],
                    marker: true,
                },
                VersionDef {
                    name: "FOO_2".into(),
                    parents: vec!["FOO_1".into()],
                    marker: false,
                },
            ],
            symbols: vec![
                Export {
                    name: "counter".into(),
                    version: Some("FOO_2".into()),
                    default: true,
                    kind: Kind::Object,
                    weak: false,
                    size: 12,
                },
                Export {
                    name: "odd\"name\\".into(),
                    version: None,
                    default: false,
                    kind: Kind::Function,
                    weak: true,
                    size: 0,
                },
            ],
        }
    }

    #[test]
    fn round_trips_exactly() {
        let text = sample().to_toml();
        let back = Manifest::parse(&text, Path::new("m.toml")).unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.to_toml(), text);
    }

    fn parse_err(text: &str) -> String {
        Manifest::parse(text, Path::new("dir/capsule-shim.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_written_file_is_what_the_checked_in_shims_hold() {
        let text = sample().to_toml();
        assert!(text.contains(
            "\nversions = [\n  { name = \"FOO_1\", parents = [], marker = true },\n  \
             { name = \"FOO_2\", parents = [\"FOO_1\"], marker = false },\n]\n"
        ));
        assert!(text.contains(
            "  { name = \"counter\", version = \"FOO_2\", default = true, kind = \"object\", \
             weak = false, size = 12 },\n"
        ));
    }

    #[test]
    fn any_toml_spelling_of_the_same_manifest_reads_the_same() {
        // Comments, keys in another order, literal strings, array-of-tables and
        // multi-line arrays: a hand-edited manifest is TOML, not capsule-gen's layout.
        let text = r#"
# edited by hand
symbols = [
  { size = 12, weak = false, kind = "object", default = true, version = 'FOO_2', name = "counter" }, # a variable
  { name = 'odd"name\', kind = "function", weak = true, size = 0 },
]
workspace_member = true   # a member of this repository's workspace
runtime = '../../capsule'
source = "/usr/lib/libfoo.so.1.2"
soname = "libfoo.so.1"
format = 1

[[versions]]
name = "FOO_1"
parents = []
marker = true

[[versions]]
marker = false
parents = [
  "FOO_1",
]
name = "FOO_2"
"#;
        let read = Manifest::parse(text, Path::new("m.toml")).unwrap();
        assert_eq!(read, sample());
    }

    #[test]
    fn bad_value_gives_file_line_column_and_what_was_expected() {
        let text = sample().to_toml().replace("size = 12", "size = \"twelve\"");
        let line = 1 + text.lines().position(|l| l.contains("twelve")).unwrap();
        let column = 1 + text
            .lines()
            .nth(line - 1)
            .unwrap()
            .find("\"twelve\"")
            .unwrap();
        let msg = parse_err(&text);
        assert!(
            msg.starts_with(&format!(
                "capsule-gen: dir/capsule-shim.toml:{line}:{column}: "
            )),
            "{msg}"
        );
        assert!(msg.contains("expected u64"), "{msg}");
    }

    #[test]
    fn broken_toml_gives_line_and_column() {
        let text = sample()
            .to_toml()
            .replace("soname = \"libfoo.so.1\"", "soname = \"libfoo.so.1");
        let msg = parse_err(&text);
        // Line 5 is `soname = "libfoo.so.1`: the closing quote is missing at its end.
        assert!(
            msg.starts_with("capsule-gen: dir/capsule-shim.toml:5:22: "),
            "{msg}"
        );
        assert!(msg.contains("expected `\"`"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn other_formats_unknown_keys_and_half_versions_are_refused() {
        let text = sample().to_toml().replace("format = 2", "format = 3");
        let msg = parse_err(&text);
        assert!(
            msg.contains(":4:10: format 3 is not one this capsule-gen understands (1 or 2)"),
            "{msg}"
        );

        let text = sample()
            .to_toml()
            .replace("workspace_member", "workspace_membr");
        assert!(parse_err(&text).contains("workspace_membr"));

        let text = sample().to_toml().replace(", default = true", "");
        let msg = parse_err(&text);
        // toml places errors found after an entry was read at the array holding it; the
        // message names the symbol.
        assert!(
            msg.contains(":15:11: symbol \"counter\" has a version but no `default`"),
            "{msg}"
        );
    }

    #[test]
    fn only_variables_record_a_size() {
        let text = sample().to_toml();
        assert!(
            text.contains(r#"  { name = 'odd"name\', kind = "function", weak = true },"#),
            "{text}"
        );
        let text = text.replace(", size = 12", "");
        assert!(parse_err(&text).contains("variable \"counter\" has no `size`"));
    }

    #[test]
    fn format_1_is_read_ignoring_function_sizes() {
        let text = sample()
            .to_toml()
            .replace("format = 2", "format = 1")
            .replace("weak = true }", "weak = true, size = 57 }");
        let read = Manifest::parse(&text, Path::new("m.toml")).unwrap();
        assert_eq!(read, sample());
        assert!(read.to_toml().contains("format = 2\n"));
    }

    #[test]
    fn missing_key_is_reported() {
        let text = sample().to_toml().replace("soname = \"libfoo.so.1\"\n", "");
        let msg = parse_err(&text);
        assert!(msg.contains("soname"), "{msg}");
    }
}
