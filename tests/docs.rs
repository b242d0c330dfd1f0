//! The documentation holds together: every relative link in README.md and docs/*.md names a
//! file that exists and, with `#anchor`, a heading of that file (GitHub's anchor rules); every
//! file of docs/ is linked from the README; every Rust block of docs/ is a doctest (the file is
//! included in src/lib.rs); every `console` block is in docs/cli.md, whose examples
//! tools/cookiestore/tests/cli_docs.rs runs; and the code's pointers into the docs
//! (`docs/interop.md, "LMDB format 3"` in an error's hint, in doc comments) name a file and a
//! heading that exist; and every source file the docs name (`src/redis/bulk.rs`) exists, with
//! the test or function named after it (`tests/cache.rs::name`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file of docs/, as paths relative to the repository.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("a docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| {
            p.strip_prefix(repo())
                .expect("under the repository")
                .to_path_buf()
        })
        .collect();
    docs.sort();
    docs.insert(0, PathBuf::from("README.md"));
    docs
}

fn read(doc: &Path) -> String {
    std::fs::read_to_string(repo().join(doc))
        .unwrap_or_else(|e| panic!("read {}: {e}", doc.display()))
}

/// Each line of `text` outside fenced code blocks, with its number (1-based).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
        } else if !fence {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// The info strings of the fenced code blocks of `text` (`rust`, `console`, `""`, ...).
fn fence_kinds(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut kinds = Vec::new();
    for line in text.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if !fence {
                kinds.push(info.trim().to_string());
            }
            fence = !fence;
        }
    }
    kinds
}

/// GitHub's anchor of a heading: lowercase, spaces to `-`, every other character but letters,
/// digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `text`'s headings; a repeated one gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let n = seen.entry(base.clone()).or_insert(0);
        anchors.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    anchors
}

/// The targets of the inline links `[text](target)` on `line`.
fn link_targets(line: &str) -> Vec<&str> {
    let mut targets = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                targets.push(&after[..end]);
                rest = &after[end..];
            }
            None => break,
        }
    }
    targets
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = read(&doc);
        let dir = doc.parent().unwrap_or(Path::new("")).to_path_buf();
        for (number, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
                let linked = if file.is_empty() {
                    doc.clone()
                } else {
                    dir.join(file)
                };
                let where_ = format!("{}:{number}: `{target}`", doc.display());
                if !repo().join(&linked).exists() {
                    broken.push(format!("{where_}: no file {}", linked.display()));
                    continue;
                }
                if anchor.is_empty() {
                    continue;
                }
                if linked.extension().is_none_or(|e| e != "md") {
                    broken.push(format!(
                        "{where_}: an anchor into a file that is not Markdown"
                    ));
                } else if !anchors(&read(&linked)).contains(anchor) {
                    broken.push(format!(
                        "{where_}: {} has no heading with the anchor #{anchor}",
                        linked.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_file_of_docs_is_linked_from_the_readme() {
    let readme = read(Path::new("README.md"));
    let linked: HashSet<&str> = prose_lines(&readme)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .map(|t| t.split('#').next().unwrap_or(t))
        .collect();
    for doc in documents().into_iter().skip(1) {
        let doc = doc.to_str().expect("a UTF-8 path").to_string();
        assert!(
            linked.contains(doc.as_str()),
            "README.md does not link {doc}"
        );
    }
}

#[test]
fn every_rust_block_is_a_doctest_and_every_console_block_is_run() {
    let lib = read(Path::new("src/lib.rs"));
    for doc in documents() {
        let kinds = fence_kinds(&read(&doc));
        let name = doc.to_str().expect("a UTF-8 path");
        if kinds.iter().any(|k| k.starts_with("rust")) {
            assert!(
                lib.contains(&format!("#[doc = include_str!(\"../{name}\")]")),
                "{name} has Rust blocks: include it in src/lib.rs as a doctest"
            );
        }
        if name != "docs/cli.md" {
            assert!(
                !kinds.iter().any(|k| k == "console"),
                "{name} has a `console` block, which no test runs: move it to docs/cli.md \
                 (tools/cookiestore/tests/cli_docs.rs runs those), or make it `text`"
            );
        }
    }
}

#[test]
fn anchors_follow_github() {
    assert_eq!(
        slug(" LMDB format 3 (zlmdb 26, LMDB 1.0)"),
        "lmdb-format-3-zlmdb-26-lmdb-10"
    );
    assert_eq!(slug("The `cookiestore` tool"), "the-cookiestore-tool");
    assert_eq!(slug("Processes and fork()"), "processes-and-fork");
    assert_eq!(
        slug("Migrating off `cookies.dat`"),
        "migrating-off-cookiesdat"
    );
    let repeated = anchors("# A\n\n```sh\n# not a heading\n```\n\n## A\n\n### b_c-d\n");
    let expected: HashSet<String> = ["a", "a-1", "b_c-d"].map(String::from).into();
    assert_eq!(repeated, expected);
    assert_eq!(
        link_targets("see [x](a.md#b) and [y](#c), `[z]` (not a link)"),
        ["a.md#b", "#c"]
    );
}

/// The Rust files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `text` with string continuations (`\` at a line's end), escaped quotes and comment
/// markers at line starts taken out, so that a pointer broken over lines reads as one.
fn joined(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let line = ["//!", "///", "//"]
            .iter()
            .find_map(|m| line.strip_prefix(m))
            .unwrap_or(line)
            .trim();
        match line.strip_suffix('\\') {
            Some(continued) => out.push_str(continued.trim_end()),
            None => out.push_str(line),
        }
        if lines.peek().is_some() {
            out.push(' ');
        }
    }
    out.replace("\\\"", "\"")
}

/// Each `docs/NAME.md` the code names, with the heading quoted right after it
/// (`docs/NAME.md, "Heading"` or `docs/NAME.md ("Heading"`), if any.
fn pointers(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("docs/") {
        rest = &rest[i..];
        let name_len = rest["docs/".len()..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .map_or(rest.len(), |n| n + "docs/".len());
        let file = rest[..name_len].trim_end_matches('.').to_string();
        let after = &rest[file.len()..];
        let heading = [", \"", " (\""]
            .iter()
            .find_map(|p| after.strip_prefix(p))
            .and_then(|q| q.find('"').map(|end| q[..end].to_string()));
        if file.ends_with(".md") {
            found.push((file, heading));
        }
        rest = &rest["docs/".len()..];
    }
    found
}

#[test]
fn the_codes_pointers_into_the_docs_resolve() {
    let mut files = Vec::new();
    for dir in [
        "src",
        "tests",
        "tools/cookiestore/src",
        "tools/cookiestore/tests",
    ] {
        rust_files(&repo().join(dir), &mut files);
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in files {
        if file.ends_with("tests/docs.rs") {
            continue;
        }
        let text = joined(&std::fs::read_to_string(&file).expect("read a Rust file"));
        for (doc, heading) in pointers(&text) {
            checked += 1;
            let where_ = format!("{}: {doc}", file.display());
            let Ok(doc_text) = std::fs::read_to_string(repo().join(&doc)) else {
                broken.push(format!("{where_}: no such file"));
                continue;
            };
            if let Some(heading) = heading {
                let found = prose_lines(&doc_text).iter().any(|(_, line)| {
                    line.starts_with('#')
                        && line.trim_start_matches('#').trim().starts_with(&heading)
                });
                if !found {
                    broken.push(format!("{where_}: no heading starting \"{heading}\""));
                }
            }
        }
    }
    assert!(checked >= 5, "only {checked} pointers into docs/ found");
    assert!(broken.is_empty(), "broken pointers:\n{}", broken.join("\n"));
}

#[test]
fn pointers_are_read_across_lines() {
    let source = "hint: \"built beside cookiestore; docs/interop.md, \\\"LMDB \\\n    format 3\\\")\"\n\
                  /// see docs/operations.md (\"Redis: faults\n/// and durability\").";
    assert_eq!(
        pointers(&joined(source)),
        [
            (
                "docs/interop.md".to_string(),
                Some("LMDB format 3".to_string())
            ),
            (
                "docs/operations.md".to_string(),
                Some("Redis: faults and durability".to_string())
            ),
        ]
    );
}

/// Each Rust file path the text names (`tests/cache.rs`, `src/redis/bulk.rs`), with the
/// function named right after it (`tests/cache.rs::name`), if any.
fn source_pointers(text: &str) -> Vec<(String, Option<String>)> {
    let path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.');
    let mut found = Vec::new();
    for (end, _) in text.match_indices(".rs") {
        let after = &text[end + ".rs".len()..];
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue; // `.rst`, `.rs_x`: not a Rust file
        }
        let start = text[..end]
            .rfind(|c: char| !path_char(c))
            .map_or(0, |i| i + 1);
        let path = &text[start..end + ".rs".len()];
        let roots = [
            "src/",
            "tests/",
            "benches/",
            "examples/",
            "tools/",
            "python/",
            "fuzz/",
        ];
        if !roots.iter().any(|root| path.starts_with(root)) {
            continue;
        }
        let function = after.strip_prefix("::").map(|f| {
            f.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        });
        found.push((path.to_string(), function.filter(|f| !f.is_empty())));
    }
    found
}

#[test]
fn every_source_file_and_test_the_docs_name_exists() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        for (number, line) in read(&doc).lines().enumerate() {
            for (path, function) in source_pointers(line) {
                checked += 1;
                let where_ = format!("{}:{}: {path}", doc.display(), number + 1);
                let Ok(source) = std::fs::read_to_string(repo().join(&path)) else {
                    broken.push(format!("{where_}: no such file"));
                    continue;
                };
                if let Some(function) = function
                    && !source.contains(&format!("fn {function}("))
                    && !source.contains(&format!("fn {function}<"))
                {
                    broken.push(format!("{where_}: no fn {function}"));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} source paths found in the docs"
    );
    assert!(
        broken.is_empty(),
        "docs name what is not there:\n{}",
        broken.join("\n")
    );
}

#[test]
fn source_pointers_are_paths_under_the_repository() {
    assert_eq!(
        source_pointers("see `tests/cache.rs::a_hit` and src/redis/bulk.rs, not lib.rs or x.rst"),
        [
            ("tests/cache.rs".to_string(), Some("a_hit".to_string())),
            ("src/redis/bulk.rs".to_string(), None),
        ]
    );
}
