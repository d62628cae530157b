//! The floor plan of the crate, enforced: every `crate::<module>` reference in `src/` (in `use`
//! lines and in paths, tests included, comments and strings not) must point down the floors, and
//! the top-level modules must import each other without a circle. Also the size rule: no `.rs`
//! file under `src/` or `tests/` over 800 lines.
//!
//! The floors, bottom up (a module may import only modules on lower floors, so the modules of one
//! floor never import each other):
//!
//! 0. ground: `canonical_json`, `telemetry` — utilities with no safedeploy types;
//! 1. `api` — the custom resources, their labels and the readings of a spec every wing shares
//!    (the typed duration, the workload, the health gates and the pods they judge);
//! 2. the pure wings: `core` (the rollout decision), `analysis` (canary analysis), `attest`
//!    (attestations);
//! 3. the I/O layer: `controller` (the operator), `plugin` (the kubectl verbs), `emitter` (the
//!    test/demo metrics service: it imports nothing of the crate and is started only by the CLI,
//!    so it sits with the other things a subcommand runs);
//! 4. `cli` — the command line, which dispatches to the I/O layer (and to the attest tools it
//!    holds itself);
//! 5. `main` — the binary, which may name only `cli`.
//!
//! No cluster is needed: the test reads the source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module and its floor.
const FLOORS: &[(&str, u8)] = &[
    ("canonical_json", 0),
    ("telemetry", 0),
    ("api", 1),
    ("core", 2),
    ("analysis", 2),
    ("attest", 2),
    ("controller", 3),
    ("plugin", 3),
    ("emitter", 3),
    ("cli", 4),
    ("main", 5),
];

/// Arrows that break the floor plan, each with the reason it is tolerated. An entry that no
/// longer occurs fails the test too, so the list only shrinks; it is empty since the typed
/// duration and the health readings (`api::duration`, `api::health`) moved down to `api`.
const TOLERATED: &[(&str, &str, &str)] = &[];

/// The longest a source file may be, tests included.
const MAX_LINES: usize = 800;

fn floor(module: &str) -> Option<u8> {
    FLOORS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, floor)| *floor)
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file under `src/`: `core/config.rs` → `[core, config]`, `cli/mod.rs` →
/// `[cli]`, `main.rs` → `[main]`, `lib.rs` → `[]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts
}

/// The source with comments removed and string and character literals emptied, so that only
/// code is searched.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string r"…" or r#"…"#: skip to the quote followed by as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                match chars.get(j) {
                    None => break,
                    Some('"') if (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) => {
                        j += 1 + hashes;
                        break;
                    }
                    Some(_) => j += 1,
                }
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal such as '\n' or '\u{7f}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn identifier_at(code: &str, at: usize) -> Option<&str> {
    let rest = code.get(at..)?;
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The first identifier of every item of a `{…}` group starting at `at` (just after the `{`).
fn group_heads(code: &str, at: usize) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut item_start = at;
    for (offset, c) in code[at..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                heads.extend(identifier_at(code, skip_space(code, item_start)));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                heads.extend(identifier_at(code, skip_space(code, item_start)));
                item_start = at + offset + 1;
            }
            _ => {}
        }
    }
    heads
}

fn skip_space(code: &str, at: usize) -> usize {
    code[at..]
        .find(|c: char| !c.is_whitespace())
        .map_or(code.len(), |offset| at + offset)
}

/// The top-level modules a file's code names: `crate::<module>` (also inside `crate::{…}`),
/// `super::` chains that climb out of the file's top-level module, and in `main.rs` the
/// library's `safedeploy::<module>`.
fn references(module: &[String], code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let root = if module.first().is_some_and(|m| m == "main") {
        "safedeploy::"
    } else {
        "crate::"
    };
    for (at, _) in code.match_indices(root) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let after = skip_space(code, at + root.len());
        if code[after..].starts_with('{') {
            found.extend(group_heads(code, after + 1).into_iter().map(str::to_owned));
        } else if let Some(name) = identifier_at(code, after) {
            found.insert(name.to_owned());
        }
    }
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with("super::") {
            continue; // counted from the start of its chain
        }
        let mut climbed = 1;
        let mut next = at + "super::".len();
        while code[next..].starts_with("super::") {
            climbed += 1;
            next += "super::".len();
        }
        if climbed >= module.len()
            && let Some(name) = identifier_at(code, next)
            && floor(name).is_some()
        {
            found.insert(name.to_owned());
        }
    }
    found
}

/// Every arrow between top-level modules, with the files it comes from.
fn import_graph() -> BTreeMap<(String, String), Vec<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let module = module_path(&src, &file);
        let Some(top) = module.first() else {
            continue; // lib.rs only declares the modules
        };
        let source = std::fs::read_to_string(&file).expect("readable source");
        for target in references(&module, &code_only(&source)) {
            if &target != top {
                let shown = file
                    .strip_prefix(&src)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                graph.entry((top.clone(), target)).or_default().push(shown);
            }
        }
    }
    graph
}

fn cycles(arrows: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        arrows: &BTreeSet<(String, String)>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for (_, to) in arrows.iter().filter(|(from, _)| from == node) {
            visit(to, arrows, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for (from, _) in arrows {
        visit(from, arrows, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn every_import_points_down_the_floors_and_none_runs_in_a_circle() {
    let graph = import_graph();
    let mut problems = Vec::new();
    println!("import graph (module -> module: files):");
    for ((from, to), files) in &graph {
        println!("  {from} -> {to}: {}", files.join(", "));
        let (Some(from_floor), Some(to_floor)) = (floor(from), floor(to)) else {
            problems.push(format!(
                "{from} -> {to}: a top-level module missing from FLOORS in tests/layering.rs; \
                 give it a floor"
            ));
            continue;
        };
        let tolerated = TOLERATED.iter().any(|(f, t, _)| f == from && t == to);
        if to_floor >= from_floor && !tolerated {
            problems.push(format!(
                "{from} (floor {from_floor}) imports {to} (floor {to_floor}), which is not below \
                 it, in {}",
                files.join(", ")
            ));
        }
    }
    for (from, to, _) in TOLERATED {
        if !graph.contains_key(&(from.to_string(), to.to_string())) {
            problems.push(format!(
                "{from} -> {to} no longer occurs: remove it from TOLERATED in tests/layering.rs"
            ));
        }
    }
    let arrows: BTreeSet<(String, String)> = graph.keys().cloned().collect();
    for cycle in cycles(&arrows) {
        problems.push(format!("a circle: {}", cycle.join(" -> ")));
    }
    assert!(
        problems.is_empty(),
        "the floor plan is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn no_source_file_is_over_800_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut offenders = Vec::new();
    for dir in ["src", "tests"] {
        for file in rust_files(&root.join(dir)) {
            let lines = std::fs::read_to_string(&file)
                .expect("readable source")
                .lines()
                .count();
            if lines > MAX_LINES {
                let shown = file
                    .strip_prefix(root)
                    .unwrap_or(&file)
                    .display()
                    .to_string();
                offenders.push(format!("{shown}: {lines} lines"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "over {MAX_LINES} lines (split by concern):\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn the_reader_sees_code_and_not_comments_or_strings() {
    let code = code_only(
        "use crate::api::X; // crate::core\n/* crate::attest */ let s = \"crate::plugin\";\n\
         let r = r#\"crate::cli \"quoted\"\"#; let c = '\"'; let l: &'static str = x;\n\
         use crate::{core::a, analysis::{b, c}};",
    );
    let found = references(&["controller".to_owned()], &code);
    let found: Vec<&str> = found.iter().map(String::as_str).collect();
    assert_eq!(found, ["analysis", "api", "core"]);
    let escaped = references(&["telemetry".to_owned()], "use super::api::Y;");
    assert!(escaped.contains("api"));
    let inside = references(
        &["core".to_owned(), "config".to_owned()],
        "use super::revision;",
    );
    assert!(inside.is_empty());
}
