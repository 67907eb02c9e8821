//! What a shim is generated from: the real library's soname, versions and exports, plus how
//! the crate refers to the runtime. Stored in the shim crate as `capsule-shim.toml` (a small,
//! fixed subset of TOML, written and read here so the file stays byte-for-byte stable):
//! the crate can be regenerated from it alone, and compared with a live library.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};

/// File name of the manifest inside a shim crate.
pub const FILE_NAME: &str = "capsule-shim.toml";

const FORMAT: i64 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub soname: String,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionDef {
    pub name: String,
    pub parents: Vec<String>,
    /// The library exports the absolute symbol `NAME` that GNU ld defines per version.
    pub marker: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Export {
    pub name: String,
    /// `None` for an unversioned symbol (or one in the library's base version).
    pub version: Option<String>,
    /// `name@@VER` rather than `name@VER`.
    pub default: bool,
    pub kind: Kind,
    pub weak: bool,
    /// Size in bytes (`st_size`).
    pub size: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
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

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "function" => Kind::Function,
            "object" => Kind::Object,
            "tls" => Kind::Tls,
            "untyped" => Kind::Untyped,
            _ => return None,
        })
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

impl Manifest {
    /// The manifest as text. Deterministic: equal manifests give equal bytes.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        out.push_str("# What this shim crate was generated from, by capsule-gen.\n");
        out.push_str("# `capsule-gen --regenerate DIR` rewrites the crate from this file alone;\n");
        out.push_str("# `capsule-gen --check DIR` compares it with the live library.\n");
        let _ = writeln!(out, "format = {FORMAT}");
        let _ = writeln!(out, "soname = {}", quote(&self.soname));
        let _ = writeln!(out, "source = {}", quote(&self.source));
        let _ = writeln!(out, "runtime = {}", quote(&self.runtime));
        let _ = writeln!(out, "workspace_member = {}", self.workspace_member);
        out.push_str("\nversions = [\n");
        for v in &self.versions {
            let parents: Vec<String> = v.parents.iter().map(|p| quote(p)).collect();
            let _ = writeln!(
                out,
                "  {{ name = {}, parents = [{}], marker = {} }},",
                quote(&v.name),
                parents.join(", "),
                v.marker
            );
        }
        out.push_str("]\n\nsymbols = [\n");
        for s in &self.symbols {
            let _ = write!(out, "  {{ name = {}", quote(&s.name));
            if let Some(v) = &s.version {
                let _ = write!(out, ", version = {}, default = {}", quote(v), s.default);
            }
            let _ = writeln!(
                out,
                ", kind = {}, weak = {}, size = {} }},",
                quote(s.kind.as_str()),
                s.weak,
                s.size
            );
        }
        out.push_str("]\n");
        out
    }

    /// Read a manifest written by [`Manifest::to_toml`]. `path` is for error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let bad = |reason: String| Error::BadManifest {
            path: path.to_path_buf(),
            reason,
        };
        let table = Parser::new(text).document().map_err(&bad)?;
        let format = table.int("format").map_err(&bad)?;
        if format != FORMAT {
            return Err(bad(format!(
                "format {format} is not the one this capsule-gen understands ({FORMAT})"
            )));
        }
        let versions = table
            .array("versions")
            .map_err(&bad)?
            .iter()
            .map(|v| {
                let v = v.as_table("versions")?;
                Ok(VersionDef {
                    name: v.string("name")?,
                    parents: v
                        .array("parents")?
                        .iter()
                        .map(|p| p.as_string("parents"))
                        .collect::<std::result::Result<_, _>>()?,
                    marker: v.bool("marker")?,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(&bad)?;
        let symbols = table
            .array("symbols")
            .map_err(&bad)?
            .iter()
            .map(|s| {
                let s = s.as_table("symbols")?;
                let version = s
                    .opt("version")
                    .map(|v| v.as_string("version"))
                    .transpose()?;
                let kind = s.string("kind")?;
                Ok(Export {
                    name: s.string("name")?,
                    default: if version.is_some() {
                        s.bool("default")?
                    } else {
                        false
                    },
                    version,
                    kind: Kind::parse(&kind).ok_or_else(|| format!("unknown kind {kind:?}"))?,
                    weak: s.bool("weak")?,
                    size: u64::try_from(s.int("size")?).map_err(|_| "negative size".to_string())?,
                })
            })
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(&bad)?;
        Ok(Manifest {
            soname: table.string("soname").map_err(&bad)?,
            source: table.string("source").map_err(&bad)?,
            runtime: table.string("runtime").map_err(&bad)?,
            workspace_member: table.bool("workspace_member").map_err(&bad)?,
            versions,
            symbols,
        })
    }
}

/// A TOML basic string. Symbol and path names are plain ASCII in practice; anything else is
/// escaped so the file stays valid.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The values the manifest uses: strings, booleans, integers, arrays and inline tables.
#[derive(Debug)]
enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Array(Vec<Value>),
    Table(Table),
}

#[derive(Debug, Default)]
struct Table(Vec<(String, Value)>);

impl Value {
    fn as_string(&self, what: &str) -> std::result::Result<String, String> {
        match self {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(format!("{what}: expected a string")),
        }
    }

    fn as_table(&self, what: &str) -> std::result::Result<&Table, String> {
        match self {
            Value::Table(t) => Ok(t),
            _ => Err(format!("{what}: expected an inline table")),
        }
    }
}

impl Table {
    fn opt(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn get(&self, key: &str) -> std::result::Result<&Value, String> {
        self.opt(key).ok_or_else(|| format!("missing key {key:?}"))
    }

    fn string(&self, key: &str) -> std::result::Result<String, String> {
        self.get(key)?.as_string(key)
    }

    fn bool(&self, key: &str) -> std::result::Result<bool, String> {
        match self.get(key)? {
            Value::Bool(b) => Ok(*b),
            _ => Err(format!("{key}: expected true or false")),
        }
    }

    fn int(&self, key: &str) -> std::result::Result<i64, String> {
        match self.get(key)? {
            Value::Int(i) => Ok(*i),
            _ => Err(format!("{key}: expected an integer")),
        }
    }

    fn array(&self, key: &str) -> std::result::Result<&[Value], String> {
        match self.get(key)? {
            Value::Array(a) => Ok(a),
            _ => Err(format!("{key}: expected an array")),
        }
    }
}

struct Parser<'a> {
    rest: &'a str,
    line: usize,
}

type Parsed<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser {
            rest: text,
            line: 1,
        }
    }

    fn err<T>(&self, what: &str) -> Parsed<T> {
        Err(format!("line {}: {what}", self.line))
    }

    /// Skip spaces, and also newlines and comments when `newlines` (inside arrays).
    fn skip(&mut self, newlines: bool) {
        loop {
            let trimmed = self.rest.trim_start_matches([' ', '\t']);
            self.rest = trimmed;
            if trimmed.starts_with('#') {
                let end = trimmed.find('\n').unwrap_or(trimmed.len());
                self.rest = &trimmed[end..];
            } else if newlines && (trimmed.starts_with('\n') || trimmed.starts_with("\r\n")) {
                self.line += 1;
                self.rest = trimmed
                    .trim_start_matches('\r')
                    .strip_prefix('\n')
                    .unwrap_or("");
            } else {
                return;
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn document(&mut self) -> Parsed<Table> {
        let mut table = Table::default();
        loop {
            self.skip(true);
            if self.rest.is_empty() {
                return Ok(table);
            }
            let (key, value) = self.key_value()?;
            table.0.push((key, value));
            self.skip(false);
            if !(self.rest.is_empty()
                || self.rest.starts_with('\n')
                || self.rest.starts_with("\r\n"))
            {
                return self.err("expected the end of the line");
            }
        }
    }

    fn key_value(&mut self) -> Parsed<(String, Value)> {
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return self.err("expected a key");
        }
        let key = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        self.skip(false);
        if !self.eat('=') {
            return self.err(&format!("expected '=' after {key}"));
        }
        self.skip(false);
        let value = self.value()?;
        Ok((key, value))
    }

    fn value(&mut self) -> Parsed<Value> {
        if self.eat('"') {
            return self.string().map(Value::Str);
        }
        if self.eat('[') {
            let mut items = Vec::new();
            loop {
                self.skip(true);
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                items.push(self.value()?);
                self.skip(true);
                if !self.eat(',') {
                    self.skip(true);
                    if self.eat(']') {
                        return Ok(Value::Array(items));
                    }
                    return self.err("expected ',' or ']'");
                }
            }
        }
        if self.eat('{') {
            let mut table = Table::default();
            self.skip(false);
            if self.eat('}') {
                return Ok(Value::Table(table));
            }
            loop {
                self.skip(false);
                table.0.push(self.key_value()?);
                self.skip(false);
                if self.eat('}') {
                    return Ok(Value::Table(table));
                }
                if !self.eat(',') {
                    return self.err("expected ',' or '}'");
                }
            }
        }
        for (word, b) in [("true", true), ("false", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(Value::Bool(b));
            }
        }
        let end = self
            .rest
            .find(|c: char| !(c.is_ascii_digit() || c == '-'))
            .unwrap_or(self.rest.len());
        match self.rest[..end].parse::<i64>() {
            Ok(i) => {
                self.rest = &self.rest[end..];
                Ok(Value::Int(i))
            }
            Err(_) => self.err("expected a string, boolean, integer, array or table"),
        }
    }

    /// The rest of a basic string whose opening quote was eaten.
    fn string(&mut self) -> Parsed<String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                '\n' => break,
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, 'u')) => {
                        let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                            Some(c) => out.push(c),
                            None => return self.err("bad \\u escape"),
                        }
                    }
                    _ => return self.err("unsupported escape in string"),
                },
                c => out.push(c),
            }
        }
        self.err("unterminated string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            soname: "libfoo.so.1".into(),
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

    #[test]
    fn bad_manifest_names_file_and_line() {
        let text = sample().to_toml().replace("size = 12", "size = twelve");
        let err = Manifest::parse(&text, Path::new("dir/capsule-shim.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dir/capsule-shim.toml"), "{msg}");
        assert!(msg.contains("line "), "{msg}");
    }

    #[test]
    fn missing_key_is_reported() {
        let text = sample().to_toml().replace("soname = \"libfoo.so.1\"\n", "");
        let msg = Manifest::parse(&text, Path::new("m"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("soname"), "{msg}");
    }
}
