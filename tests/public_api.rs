//! The crate's exported surface, listed one item a line in `tests/public-api.txt`, so that a
//! change to it is a conscious one.
//!
//! The listing comes from rustdoc's JSON output (`--output-format json`, unstable; stable
//! rustdoc emits it under `RUSTC_BOOTSTRAP=1`), built into its own target dir
//! (`target/public-api`) so that it never waits on the build lock of the `cargo test` that runs
//! it. The JSON is walked by hand (no `rustdoc-types`): only the few keys read here have to stay
//! put across rustdoc's format versions.
//!
//! Walked from the crate root: public modules, `pub use` re-exports (listed under the path they
//! export, followed to the item), structs and their public fields, enums and their variants,
//! traits and their items, functions (with a signature), constants, statics, type aliases,
//! macros, the public items of inherent impls and the written trait impls (`impl Clone for X`).
//! Auto-trait impls, blanket impls and `#[doc(hidden)]` items are left out.
//!
//! On a change, the test fails with the lines added and removed; accept it with
//! `UPDATE_PUBLIC_API=1 cargo test --test public_api`, which rewrites the file.
//! Without JSON output (a rustdoc that refuses the `-Z` flags) the test skips, unless `CI` is
//! set and non-empty, where it fails.

// A failed unwrap here (helpers included) is the test, bench or example failing.
#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The rustdoc JSON `format_version` this walker was written against (rustdoc 1.95). Another
/// version is still walked; a difference in the listing then may come from the format.
const KNOWN_FORMAT_VERSION: u64 = 57;

const LISTING: &str = "tests/public-api.txt";

const HEADER: &str = "\
# The public API of the cookiestore library, one item a line (see tests/public_api.rs).
# Regenerate after a deliberate change: UPDATE_PUBLIC_API=1 cargo test --test public_api
";

#[test]
fn public_api_is_unchanged() {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let crate_name = env!("CARGO_PKG_NAME").replace('-', "_");
    let json = match rustdoc_json(manifest_dir, &crate_name) {
        Ok(json) => json,
        Err(Unavailable(why)) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty());
            assert!(
                !ci,
                "rustdoc JSON output is unavailable (and CI is set): {why}"
            );
            eprintln!("SKIPPED public_api_is_unchanged: rustdoc JSON output is unavailable: {why}");
            return;
        }
    };
    let doc: Value = serde_json::from_str(&json).expect("rustdoc JSON parses");
    let version = doc["format_version"].as_u64().unwrap_or(0);
    if version != KNOWN_FORMAT_VERSION {
        eprintln!(
            "note: rustdoc JSON format_version {version} (the walker was written for \
             {KNOWN_FORMAT_VERSION}); a listing difference may come from the format"
        );
    }
    let lines = Api::new(&doc).walk();
    assert!(
        lines.iter().any(|l| l.starts_with("struct ")),
        "the walk found no public struct: rustdoc JSON format {version} is not understood"
    );

    let mut actual = String::from(HEADER);
    for line in &lines {
        actual.push_str(line);
        actual.push('\n');
    }
    let path = manifest_dir.join(LISTING);
    if std::env::var_os("UPDATE_PUBLIC_API").is_some_and(|v| !v.is_empty()) {
        std::fs::write(&path, &actual).expect("write tests/public-api.txt");
        eprintln!("wrote {} ({} items)", path.display(), lines.len());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let expected: BTreeSet<String> = committed
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if expected == lines {
        return;
    }
    let removed: Vec<&String> = expected.difference(&lines).collect();
    let added: Vec<&String> = lines.difference(&expected).collect();
    let mut diff = format!(
        "--- {LISTING} (committed)\n+++ {LISTING} (this build)\n@@ {} removed, {} added @@\n",
        removed.len(),
        added.len()
    );
    // Both sides are sorted sets: a merge shows each line where it belongs.
    let mut changed: Vec<(&String, char)> = removed.iter().map(|l| (*l, '-')).collect();
    changed.extend(added.iter().map(|l| (*l, '+')));
    changed.sort();
    for (line, sign) in changed {
        diff.push_str(&format!("{sign}{line}\n"));
    }
    panic!(
        "the public API differs from {LISTING}:\n{diff}\n\
         If the change is intended, accept it with\n    \
         UPDATE_PUBLIC_API=1 cargo test --test public_api\n\
         and commit the rewritten {LISTING}."
    );
}

/// Why there is no JSON to compare (the rustdoc refused the unstable flags).
struct Unavailable(String);

/// Runs rustdoc with JSON output into `target/public-api` and returns the JSON text.
/// Panics on any failure except JSON output being unavailable.
fn rustdoc_json(manifest_dir: &Path, crate_name: &str) -> Result<String, Unavailable> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("target"))
        .join("public-api");
    let output = Command::new(env!("CARGO"))
        .args([
            "rustdoc",
            "--lib",
            "--offline",
            "--color",
            "never",
            "--manifest-path",
        ])
        .arg(manifest_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Doc lints (or RUSTDOCFLAGS=-D warnings) are not this test's business.
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .args(["--cap-lints", "allow"])
        // The suite also runs under libfaketime (a year ahead, in CI), which deadlocks
        // jemalloc-linked programs such as rustc at start: the compiler keeps the real time.
        .env_remove("LD_PRELOAD")
        .env("RUSTC_BOOTSTRAP", "1")
        // The JSON lands in <target-dir>/doc only for the host target.
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo rustdoc");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let refused = ["-Z", "`Z`", "nightly", "unstable-options", "output-format"]
            .iter()
            .any(|s| stderr.contains(s));
        if refused {
            return Err(Unavailable(stderr.trim().to_owned()));
        }
        panic!("cargo rustdoc failed ({}):\n{stderr}", output.status);
    }
    let file = target_dir.join("doc").join(format!("{crate_name}.json"));
    match std::fs::read_to_string(&file) {
        Ok(json) => Ok(json),
        Err(e) => panic!(
            "read {}: {e}\ncargo rustdoc said:\n{stderr}",
            file.display()
        ),
    }
}

/// The walk over rustdoc's JSON, collecting one line per exported item.
struct Api<'a> {
    index: &'a Map<String, Value>,
    paths: &'a Map<String, Value>,
    external_crates: &'a Map<String, Value>,
    root: &'a Value,
    lines: BTreeSet<String>,
    /// Modules being walked (re-exports can form cycles).
    walking: HashSet<String>,
    /// While an impl line is rendered: the id of the type whose impls are listed, shown as the
    /// path it is exported at.
    owner: RefCell<Option<(Value, String)>>,
}

/// An id (a number since format 40-ish, a string before) as the key of `index` and `paths`.
fn key(id: &Value) -> Option<String> {
    match id {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The single key of a one-key object (`inner`, and rustdoc's other externally tagged
/// enums), or the string of a unit variant.
fn tag(v: &Value) -> (&str, &Value) {
    match v {
        Value::Object(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one key");
            (k.as_str(), v)
        }
        Value::String(s) => (s.as_str(), &Value::Null),
        _ => ("", v),
    }
}

fn is_hidden(item: &Value) -> bool {
    attrs_contain(item, |a| a.contains("doc(") && a.contains("hidden"))
}

fn is_non_exhaustive(item: &Value) -> bool {
    attrs_contain(item, |a| a.contains("non_exhaustive"))
}

/// Attributes are strings up to format 53 or so, then `"non_exhaustive"` or
/// `{"other": "#[...]"}` and friends: look at their text either way.
fn attrs_contain(item: &Value, pred: impl Fn(&str) -> bool) -> bool {
    item["attrs"].as_array().is_some_and(|attrs| {
        attrs.iter().any(|a| match a {
            Value::String(s) => pred(s),
            other => pred(&other.to_string()),
        })
    })
}

/// Whether type `t` names the item `id` anywhere (`Vec<&Id>` does).
fn mentions(t: &Value, id: &Value) -> bool {
    match t {
        Value::Object(m) => {
            (m.contains_key("path") && m.get("id") == Some(id))
                || m.values().any(|v| mentions(v, id))
        }
        Value::Array(a) => a.iter().any(|v| mentions(v, id)),
        _ => false,
    }
}

fn ids(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn join<I: IntoIterator<Item = String>>(parts: I, sep: &str) -> String {
    parts.into_iter().collect::<Vec<_>>().join(sep)
}

impl<'a> Api<'a> {
    fn new(doc: &'a Value) -> Self {
        let index = doc["index"].as_object().expect("JSON has an index");
        let paths = doc["paths"].as_object().expect("JSON has paths");
        let external_crates = doc["external_crates"]
            .as_object()
            .expect("JSON has external_crates");
        let root = key(&doc["root"])
            .and_then(|k| index.get(&k))
            .expect("the root item is in the index");
        Api {
            index,
            paths,
            external_crates,
            root,
            lines: BTreeSet::new(),
            walking: HashSet::new(),
            owner: RefCell::new(None),
        }
    }

    fn walk(mut self) -> BTreeSet<String> {
        let root = self.root;
        let name = root["name"]
            .as_str()
            .expect("the crate has a name")
            .to_owned();
        self.module(root, &name);
        self.lines
    }

    fn get(&self, id: &Value) -> Option<&'a Value> {
        key(id).and_then(|k| self.index.get(&k))
    }

    fn emit(&mut self, line: String) {
        self.lines.insert(line);
    }

    fn module(&mut self, module: &'a Value, path: &str) {
        let guard = format!("{}@{path}", module["id"]);
        if !self.walking.insert(guard.clone()) {
            return;
        }
        let (_, inner) = tag(&module["inner"]);
        for child in ids(&inner["items"]) {
            let Some(item) = self.get(child) else {
                continue;
            };
            if item["visibility"] == "public" && !is_hidden(item) {
                self.item(item, path, None);
            }
        }
        self.walking.remove(&guard);
    }

    /// Lists `item` as `parent::name` (`name` is the item's own name unless re-exported under
    /// another one).
    fn item(&mut self, item: &'a Value, parent: &str, name: Option<&str>) {
        let (kind, inner) = tag(&item["inner"]);
        if kind == "use" {
            return self.reexport(inner, parent);
        }
        if kind == "impl" {
            return; // listed with the type or trait
        }
        let Some(name) = name.or(item["name"].as_str()) else {
            return;
        };
        let path = format!("{parent}::{name}");
        let ne = if is_non_exhaustive(item) {
            " #[non_exhaustive]"
        } else {
            ""
        };
        match kind {
            "module" => {
                self.emit(format!("mod {path}"));
                self.module(item, &path);
            }
            "struct" | "union" => {
                let g = self.generics(&inner["generics"]);
                let w = self.where_clause(&inner["generics"]);
                self.emit(format!("{kind} {path}{g}{w}{ne}"));
                let (_, shape) = tag(&inner["kind"]);
                let fields = if shape.is_array() {
                    shape
                } else {
                    &shape["fields"]
                };
                self.fields(fields, &path);
                let fields = &inner["fields"]; // unions
                self.fields(fields, &path);
                self.impls(&inner["impls"], item, &path);
            }
            "enum" => {
                let g = self.generics(&inner["generics"]);
                let w = self.where_clause(&inner["generics"]);
                self.emit(format!("enum {path}{g}{w}{ne}"));
                for v in ids(&inner["variants"]) {
                    if let Some(variant) = self.get(v).filter(|v| !is_hidden(v)) {
                        self.variant(variant, &path, None);
                    }
                }
                self.impls(&inner["impls"], item, &path);
            }
            "variant" => self.variant(item, parent, Some(name)),
            "trait" => self.trait_(inner, &path),
            "function" => {
                let sig = self.function(inner);
                self.emit(format!("fn {path}{sig}"));
            }
            "constant" => {
                let t = self.ty(&inner["type"]);
                self.emit(format!("const {path}: {t}"));
            }
            "static" => {
                let t = self.ty(&inner["type"]);
                let m = if inner["is_mutable"] == true {
                    "mut "
                } else {
                    ""
                };
                self.emit(format!("static {m}{path}: {t}"));
            }
            "type_alias" => {
                let g = self.generics(&inner["generics"]);
                let w = self.where_clause(&inner["generics"]);
                let t = self.ty(&inner["type"]);
                self.emit(format!("type {path}{g}{w} = {t}"));
            }
            "macro" | "proc_macro" => self.emit(format!("macro {path}!")),
            other => self.emit(format!("{} {path}", other.replace('_', " "))),
        }
    }

    /// `pub use`: follows it to the item, which is listed under the exported path.
    fn reexport(&mut self, import: &'a Value, parent: &str) {
        let target = self.get(&import["id"]);
        if import["is_glob"] == true {
            match target.map(|t| tag(&t["inner"])) {
                Some(("module", _)) => self.module(target.expect("some"), parent),
                Some(("enum", inner)) => {
                    for v in ids(&inner["variants"]) {
                        if let Some(variant) = self.get(v).filter(|v| !is_hidden(v)) {
                            self.variant(variant, parent, None);
                        }
                    }
                }
                _ => {
                    let source = import["source"].as_str().unwrap_or("?");
                    self.emit(format!("use {parent}::* = {source}::*"));
                }
            }
            return;
        }
        let name = import["name"].as_str().unwrap_or("?");
        match target {
            Some(t) if is_hidden(t) => {}
            Some(t) => self.item(t, parent, Some(name)),
            None => {
                // Not documented here: an item of another crate (listed by its canonical path),
                // or one stripped as hidden (not listed).
                let summary = key(&import["id"]).and_then(|k| self.paths.get(&k));
                match summary {
                    Some(s) if s["crate_id"] != 0 => {
                        let canonical = join(
                            ids(&s["path"]).filter_map(|p| p.as_str().map(str::to_owned)),
                            "::",
                        );
                        let kind = s["kind"].as_str().unwrap_or("item");
                        self.emit(format!("use {parent}::{name} = {kind} {canonical}"));
                    }
                    Some(_) => {}
                    None if import["id"].is_null() => {
                        let source = import["source"].as_str().unwrap_or("?");
                        self.emit(format!("use {parent}::{name} = {source}"));
                    }
                    None => {}
                }
            }
        }
    }

    fn fields(&mut self, fields: &Value, path: &str) {
        for f in ids(fields) {
            let Some(field) = self.get(f) else {
                continue; // null: a private tuple field
            };
            if field["visibility"] != "public" || is_hidden(field) {
                continue;
            }
            let name = field["name"].as_str().unwrap_or("?");
            let (_, t) = tag(&field["inner"]);
            let t = self.ty(t);
            self.emit(format!("field {path}::{name}: {t}"));
        }
    }

    fn variant(&mut self, variant: &Value, enum_path: &str, name: Option<&str>) {
        let name = name.or(variant["name"].as_str()).unwrap_or("?");
        let path = format!("{enum_path}::{name}");
        let (_, inner) = tag(&variant["inner"]);
        let (shape, detail) = tag(&inner["kind"]);
        let mut line = format!("variant {path}");
        match shape {
            "tuple" => {
                let parts = ids(detail).map(|f| match self.get(f) {
                    Some(field) => self.ty(tag(&field["inner"]).1),
                    None => "_".to_owned(),
                });
                line.push_str(&format!("({})", join(parts, ", ")));
            }
            "struct" => {
                line.push_str(" { .. }");
                for f in ids(&detail["fields"]) {
                    if let Some(field) = self.get(f).filter(|f| !is_hidden(f)) {
                        let fname = field["name"].as_str().unwrap_or("?");
                        let t = self.ty(tag(&field["inner"]).1);
                        self.emit(format!("field {path}::{fname}: {t}"));
                    }
                }
            }
            _ => {}
        }
        if let Some(expr) = inner["discriminant"]["expr"].as_str() {
            line.push_str(&format!(" = {expr}"));
        }
        if is_non_exhaustive(variant) {
            line.push_str(" #[non_exhaustive]");
        }
        self.emit(line);
    }

    /// The public items of the inherent impls, and a line per written trait impl.
    fn impls(&mut self, impls: &Value, owner: &Value, path: &str) {
        for i in ids(impls) {
            let Some(imp) = self.get(i).filter(|i| !is_hidden(i)) else {
                continue;
            };
            let (_, inner) = tag(&imp["inner"]);
            if inner["is_synthetic"] == true || !inner["blanket_impl"].is_null() {
                continue; // auto traits, blanket impls
            }
            if inner["trait"].is_null() {
                for a in ids(&inner["items"]) {
                    let Some(assoc) = self.get(a) else {
                        continue;
                    };
                    if assoc["visibility"] == "public" && !is_hidden(assoc) {
                        self.assoc(assoc, path, false);
                    }
                }
            } else {
                // rustdoc lists with a type the impls that merely mention it (`impl From<ThisType>
                // for OtherLocalType`): those are listed with the other type.
                let for_ = &inner["for"];
                if !mentions(for_, &owner["id"]) && self.is_local_path(for_) {
                    continue;
                }
                *self.owner.borrow_mut() = Some((owner["id"].clone(), path.to_owned()));
                let line = self.impl_line(inner, None);
                *self.owner.borrow_mut() = None;
                self.emit(line);
            }
        }
    }

    /// `impl<G> Trait<A> for Type where .. { type Assoc = T }`.
    fn impl_line(&self, inner: &Value, trait_path: Option<&str>) -> String {
        let g = self.generics(&inner["generics"]);
        let w = self.where_clause(&inner["generics"]);
        let unsafety = if inner["is_unsafe"] == true {
            "unsafe "
        } else {
            ""
        };
        let not = if inner["is_negative"] == true {
            "!"
        } else {
            ""
        };
        let tr = match trait_path {
            Some(p) => format!("{p}{}", self.args(&inner["trait"]["args"])),
            None => self.path(&inner["trait"]),
        };
        let for_ = self.ty(&inner["for"]);
        let mut assoc_types = Vec::new();
        for a in ids(&inner["items"]) {
            if let Some(item) = self.get(a)
                && let ("assoc_type", at) = tag(&item["inner"])
            {
                let name = item["name"].as_str().unwrap_or("?");
                assoc_types.push(format!("type {name} = {}", self.ty(&at["type"])));
            }
        }
        let body = if assoc_types.is_empty() {
            String::new()
        } else {
            format!(" {{ {} }}", assoc_types.join("; "))
        };
        format!("{unsafety}impl{g} {not}{tr} for {for_}{w}{body}")
    }

    /// An associated item (of an inherent impl or of a trait) listed under `owner::name`.
    fn assoc(&mut self, item: &Value, owner: &str, in_trait: bool) {
        let name = item["name"].as_str().unwrap_or("?");
        let path = format!("{owner}::{name}");
        let (kind, inner) = tag(&item["inner"]);
        let provided = |yes: bool| if in_trait && yes { " (provided)" } else { "" };
        let line = match kind {
            "function" => {
                let sig = self.function(inner);
                format!("fn {path}{sig}{}", provided(inner["has_body"] == true))
            }
            "assoc_const" | "constant" => {
                let t = self.ty(&inner["type"]);
                let has_value = !inner["value"].is_null() || !inner["const"].is_null();
                format!("const {path}: {t}{}", provided(has_value))
            }
            "assoc_type" => {
                let g = self.generics(&inner["generics"]);
                let bounds = self.bounds(&inner["bounds"]);
                let bounds = if bounds.is_empty() {
                    String::new()
                } else {
                    format!(": {bounds}")
                };
                let default = if inner["type"].is_null() {
                    String::new()
                } else {
                    format!(" = {}", self.ty(&inner["type"]))
                };
                format!("type {path}{g}{bounds}{default}")
            }
            other => format!("{other} {path}"),
        };
        self.emit(line);
    }

    fn trait_(&mut self, inner: &Value, path: &str) {
        let g = self.generics(&inner["generics"]);
        let w = self.where_clause(&inner["generics"]);
        let bounds = self.bounds(&inner["bounds"]);
        let bounds = if bounds.is_empty() {
            String::new()
        } else {
            format!(": {bounds}")
        };
        let unsafety = if inner["is_unsafe"] == true {
            "unsafe "
        } else {
            ""
        };
        let auto = if inner["is_auto"] == true {
            "auto "
        } else {
            ""
        };
        self.emit(format!("{unsafety}{auto}trait {path}{g}{bounds}{w}"));
        for a in ids(&inner["items"]) {
            if let Some(assoc) = self.get(a).filter(|a| !is_hidden(a)) {
                self.assoc(assoc, path, true);
            }
        }
        // Impls of this trait for types of other crates (those for this crate's types are
        // listed with the type).
        for i in ids(&inner["implementations"]) {
            let Some(imp) = self.get(i).filter(|i| !is_hidden(i)) else {
                continue;
            };
            let (_, imp) = tag(&imp["inner"]);
            if imp["is_synthetic"] == true || !imp["blanket_impl"].is_null() {
                continue;
            }
            if self.is_local_path(&imp["for"]) {
                continue;
            }
            let line = self.impl_line(imp, Some(path));
            self.emit(line);
        }
    }

    /// `<G>(&self, A, B) -> R where ..`, prefixed by `const`/`async`/`unsafe`/`extern` as
    /// the function is. Parameter names are left out: they are not part of the API.
    fn function(&self, f: &Value) -> String {
        let header = &f["header"];
        let mut quals = String::new();
        for (flag, word) in [
            ("is_const", "const"),
            ("is_async", "async"),
            ("is_unsafe", "unsafe"),
        ] {
            if header[flag] == true {
                quals.push_str(word);
                quals.push(' ');
            }
        }
        match &header["abi"] {
            Value::String(s) if s == "Rust" => {}
            Value::Null => {}
            abi => quals.push_str(&format!("extern \"{}\" ", tag(abi).0)),
        }
        let sig = &f["sig"];
        let mut params: Vec<String> = ids(&sig["inputs"])
            .map(|input| {
                let name = input[0].as_str().unwrap_or("_");
                let t = &input[1];
                if name == "self" {
                    match tag(t) {
                        ("generic", s) if s == "Self" => return "self".to_owned(),
                        ("borrowed_ref", r) if r["type"]["generic"] == "Self" => {
                            let lt = r["lifetime"]
                                .as_str()
                                .map(|l| format!("{l} "))
                                .unwrap_or_default();
                            let m = if r["is_mutable"] == true { "mut " } else { "" };
                            return format!("&{lt}{m}self");
                        }
                        _ => return format!("self: {}", self.ty(t)),
                    }
                }
                self.ty(t)
            })
            .collect();
        if sig["is_c_variadic"] == true {
            params.push("...".to_owned());
        }
        let out = if sig["output"].is_null() {
            String::new()
        } else {
            format!(" -> {}", self.ty(&sig["output"]))
        };
        let g = self.generics(&f["generics"]);
        let w = self.where_clause(&f["generics"]);
        let quals = if quals.is_empty() {
            String::new()
        } else {
            format!(" [{}]", quals.trim_end())
        };
        format!("{g}({}){out}{w}{quals}", params.join(", "))
    }

    fn generics(&self, g: &Value) -> String {
        let params: Vec<String> = ids(&g["params"])
            .filter_map(|p| {
                let name = p["name"].as_str().unwrap_or("?");
                match tag(&p["kind"]) {
                    ("lifetime", l) => {
                        let outlives: Vec<String> = ids(&l["outlives"])
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect();
                        Some(if outlives.is_empty() {
                            name.to_owned()
                        } else {
                            format!("{name}: {}", outlives.join(" + "))
                        })
                    }
                    ("type", t) => {
                        if t["is_synthetic"] == true {
                            return None; // an `impl Trait` argument, shown in place
                        }
                        let mut s = name.to_owned();
                        let bounds = self.bounds(&t["bounds"]);
                        if !bounds.is_empty() {
                            s.push_str(&format!(": {bounds}"));
                        }
                        if !t["default"].is_null() {
                            s.push_str(&format!(" = {}", self.ty(&t["default"])));
                        }
                        Some(s)
                    }
                    ("const", c) => {
                        let mut s = format!("const {name}: {}", self.ty(&c["type"]));
                        if let Some(d) = c["default"].as_str() {
                            s.push_str(&format!(" = {d}"));
                        }
                        Some(s)
                    }
                    _ => Some(name.to_owned()),
                }
            })
            .collect();
        if params.is_empty() {
            String::new()
        } else {
            format!("<{}>", params.join(", "))
        }
    }

    fn where_clause(&self, g: &Value) -> String {
        let preds: Vec<String> = ids(&g["where_predicates"])
            .map(|p| match tag(p) {
                ("bound_predicate", b) => {
                    format!(
                        "{}{}: {}",
                        self.hrtb(&b["generic_params"]),
                        self.ty(&b["type"]),
                        self.bounds(&b["bounds"])
                    )
                }
                ("lifetime_predicate", l) => {
                    let outlives: Vec<String> = ids(&l["outlives"])
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect();
                    format!(
                        "{}: {}",
                        l["lifetime"].as_str().unwrap_or("?"),
                        outlives.join(" + ")
                    )
                }
                ("eq_predicate", e) => {
                    format!("{} = {}", self.ty(&e["lhs"]), self.term(&e["rhs"]))
                }
                (other, _) => other.to_owned(),
            })
            .collect();
        if preds.is_empty() {
            String::new()
        } else {
            format!(" where {}", preds.join(", "))
        }
    }

    /// `for<'a> ` of higher-ranked bounds.
    fn hrtb(&self, params: &Value) -> String {
        let names: Vec<String> = ids(params)
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!("for<{}> ", names.join(", "))
        }
    }

    fn bounds(&self, bounds: &Value) -> String {
        join(
            ids(bounds).map(|b| match tag(b) {
                ("trait_bound", t) => {
                    let modifier = match t["modifier"].as_str() {
                        Some("maybe") => "?",
                        Some("maybe_const") => "~const ",
                        _ => "",
                    };
                    format!(
                        "{}{modifier}{}",
                        self.hrtb(&t["generic_params"]),
                        self.path(&t["trait"])
                    )
                }
                ("outlives", l) => l.as_str().unwrap_or("?").to_owned(),
                ("use", args) => {
                    let args = ids(args).map(|a| match tag(a) {
                        (_, Value::String(s)) => s.clone(),
                        (k, _) => k.to_owned(),
                    });
                    format!("use<{}>", join(args, ", "))
                }
                (other, _) => other.to_owned(),
            }),
            " + ",
        )
    }

    fn term(&self, t: &Value) -> String {
        match tag(t) {
            ("type", ty) => self.ty(ty),
            ("constant", c) => c["expr"].as_str().unwrap_or("?").to_owned(),
            (other, _) => other.to_owned(),
        }
    }

    /// A path with its generic arguments. The owner of the impl being rendered shows as its
    /// exported path; other items by their name (how the source spells the path is no part
    /// of the API), prefixed by their crate if that is neither this one nor std/core/alloc.
    fn path(&self, p: &Value) -> String {
        let args = self.args(&p["args"]);
        if let Some((id, path)) = &*self.owner.borrow()
            && &p["id"] == id
        {
            return format!("{path}{args}");
        }
        let summary = key(&p["id"]).and_then(|k| self.paths.get(&k));
        let written = p["path"].as_str().or(p["name"].as_str()).unwrap_or("");
        let mut name = written.rsplit("::").next().unwrap_or("").to_owned();
        if name.is_empty() {
            name = summary
                .and_then(|s| s["path"].as_array()?.last()?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".to_owned());
        }
        let krate = summary
            .filter(|s| s["crate_id"] != 0)
            .and_then(|s| key(&s["crate_id"]))
            .and_then(|k| self.external_crates.get(&k)?["name"].as_str());
        match krate {
            Some("std" | "core" | "alloc") | None => format!("{name}{args}"),
            Some(krate) => format!("{krate}::{name}{args}"),
        }
    }

    fn args(&self, args: &Value) -> String {
        match tag(args) {
            ("angle_bracketed", a) => {
                let mut parts: Vec<String> = ids(&a["args"])
                    .map(|arg| match tag(arg) {
                        ("lifetime", l) => l.as_str().unwrap_or("?").to_owned(),
                        ("type", t) => self.ty(t),
                        ("const", c) => c["expr"].as_str().unwrap_or("?").to_owned(),
                        _ => "_".to_owned(),
                    })
                    .collect();
                for c in ids(&a["constraints"]) {
                    let name = c["name"].as_str().unwrap_or("?");
                    let cargs = self.args(&c["args"]);
                    parts.push(match tag(&c["binding"]) {
                        ("equality", t) => format!("{name}{cargs} = {}", self.term(t)),
                        ("constraint", b) => format!("{name}{cargs}: {}", self.bounds(b)),
                        _ => name.to_owned(),
                    });
                }
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("<{}>", parts.join(", "))
                }
            }
            ("parenthesized", p) => {
                let inputs = join(ids(&p["inputs"]).map(|t| self.ty(t)), ", ");
                let out = if p["output"].is_null() {
                    String::new()
                } else {
                    format!(" -> {}", self.ty(&p["output"]))
                };
                format!("({inputs}){out}")
            }
            ("return_type_notation", _) => "(..)".to_owned(),
            _ => String::new(),
        }
    }

    /// Whether `t` is a path to an item of this crate.
    fn is_local_path(&self, t: &Value) -> bool {
        let ("resolved_path", p) = tag(t) else {
            return false;
        };
        self.get(&p["id"]).is_some_and(|t| t["crate_id"] == 0)
            || key(&p["id"])
                .and_then(|k| self.paths.get(&k))
                .is_some_and(|s| s["crate_id"] == 0)
    }

    fn ty(&self, t: &Value) -> String {
        let ty = |t: &Value| self.ty(t);
        match tag(t) {
            ("resolved_path", p) => self.path(p),
            ("generic", g) | ("primitive", g) => g.as_str().unwrap_or("?").to_owned(),
            ("borrowed_ref", r) => {
                let lt = r["lifetime"]
                    .as_str()
                    .map(|l| format!("{l} "))
                    .unwrap_or_default();
                let m = if r["is_mutable"] == true { "mut " } else { "" };
                format!("&{lt}{m}{}", ty(&r["type"]))
            }
            ("raw_pointer", r) => {
                let m = if r["is_mutable"] == true {
                    "mut"
                } else {
                    "const"
                };
                format!("*{m} {}", ty(&r["type"]))
            }
            ("slice", s) => format!("[{}]", ty(s)),
            ("array", a) => format!("[{}; {}]", ty(&a["type"]), a["len"].as_str().unwrap_or("?")),
            ("tuple", items) => {
                let items: Vec<String> = ids(items).map(ty).collect();
                if items.len() == 1 {
                    format!("({},)", items[0])
                } else {
                    format!("({})", items.join(", "))
                }
            }
            ("impl_trait", b) => format!("impl {}", self.bounds(b)),
            ("dyn_trait", d) => {
                let mut parts: Vec<String> = ids(&d["traits"])
                    .map(|pt| {
                        format!(
                            "{}{}",
                            self.hrtb(&pt["generic_params"]),
                            self.path(&pt["trait"])
                        )
                    })
                    .collect();
                if let Some(l) = d["lifetime"].as_str() {
                    parts.push(l.to_owned());
                }
                format!("dyn {}", parts.join(" + "))
            }
            ("function_pointer", f) => {
                let inputs = join(ids(&f["sig"]["inputs"]).map(|i| ty(&i[1])), ", ");
                let out = if f["sig"]["output"].is_null() {
                    String::new()
                } else {
                    format!(" -> {}", ty(&f["sig"]["output"]))
                };
                format!("{}fn({inputs}){out}", self.hrtb(&f["generic_params"]))
            }
            ("qualified_path", q) => {
                let name = q["name"].as_str().unwrap_or("?");
                let args = self.args(&q["args"]);
                let self_ty = ty(&q["self_type"]);
                let trait_written = q["trait"]["path"].as_str().unwrap_or("");
                if q["trait"].is_null() || trait_written.is_empty() {
                    // `Self::Item`, `T::Item`: written without the trait
                    format!("{self_ty}::{name}{args}")
                } else {
                    format!("<{self_ty} as {}>::{name}{args}", self.path(&q["trait"]))
                }
            }
            ("pat", p) => ty(&p["type"]),
            ("infer", _) => "_".to_owned(),
            (other, v) => format!("{other}{v}"),
        }
    }
}
