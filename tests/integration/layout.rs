//! The source tree is the architecture: these checks keep it so. Folders are layers, a file's
//! name says what it holds in its layer, dependencies point down, and one composition root
//! chooses the deployed or local parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::helpers::root;

/// The Lambda functions: their modules (`src/lambda/`, `src/bin/`) may share the function's
/// name with its use case.
const FUNCTIONS: &[&str] = &["ingest", "sender", "webhook", "admin"];

/// What may stand at the root of `src/`.
const ROOT_FILES: &[&str] = &["lib.rs", "telemetry.rs", "wiring.rs"];

/// The most lines a file holds before its tests.
const MAX_LINES: usize = 600;

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

fn tree() -> Vec<(String, String)> {
    let src = root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(&src)
                .expect("under src")
                .display()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("readable source");
            (relative, text)
        })
        .collect()
}

/// The layer a file belongs to: its first folder under `src/`, or `root`.
fn layer(relative: &str) -> &str {
    relative.split_once('/').map_or("root", |(first, _)| first)
}

#[test]
fn the_src_root_holds_only_the_crate_root_the_composition_root_and_telemetry() {
    let at_root: BTreeSet<String> = tree()
        .into_iter()
        .map(|(relative, _)| relative)
        .filter(|relative| !relative.contains('/'))
        .collect();
    let expected: BTreeSet<String> = ROOT_FILES.iter().map(|f| f.to_string()).collect();
    assert_eq!(at_root, expected);
}

#[test]
fn no_two_layers_hold_a_file_of_the_same_name() {
    let mut layers_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (relative, _) in tree() {
        let stem = Path::new(&relative)
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        if stem == "mod" || stem == "lib" || stem == "tests" {
            continue;
        }
        let layer = layer(&relative);
        // A function's own modules are named for it.
        if FUNCTIONS.contains(&stem.as_str()) && (layer == "lambda" || layer == "bin") {
            continue;
        }
        layers_of.entry(stem).or_default().insert(layer.to_owned());
    }
    let shared: Vec<_> = layers_of
        .into_iter()
        .filter(|(_, layers)| layers.len() > 1)
        .collect();
    assert!(shared.is_empty(), "names shared across layers: {shared:?}");
}

#[test]
fn every_module_says_what_it_is_for_and_stays_short_before_its_tests() {
    for (relative, text) in tree() {
        assert!(
            text.starts_with("//!"),
            "src/{relative} does not open with a `//!` line"
        );
        // A folder's `tests.rs` is its tests, beside the code they test.
        let code = if relative.ends_with("/tests.rs") {
            0
        } else {
            text.lines()
                .take_while(|line| !line.starts_with("#[cfg(test)]"))
                .count()
        };
        assert!(
            code <= MAX_LINES,
            "src/{relative} has {code} lines before its tests (at most {MAX_LINES})"
        );
    }
}

#[test]
fn dependencies_point_down_and_only_wiring_chooses_adapters() {
    // What each layer may not name: the layers above it, and the adapters for all but the
    // entry points and the composition root.
    let forbidden: &[(&str, &[&str])] = &[
        (
            "domain",
            &[
                "crate::app",
                "crate::ports",
                "crate::adapters",
                "crate::wiring",
                "crate::lambda",
                "crate::cli",
                "crate::config",
            ],
        ),
        (
            "ports",
            &[
                "crate::app",
                "crate::adapters",
                "crate::wiring",
                "crate::lambda",
                "crate::cli",
            ],
        ),
        (
            "app",
            &[
                "crate::adapters",
                "crate::wiring",
                "crate::lambda",
                "crate::cli",
            ],
        ),
        (
            "adapters",
            &["crate::app", "crate::wiring", "crate::lambda", "crate::cli"],
        ),
        (
            "config",
            &[
                "crate::app",
                "crate::adapters",
                "crate::wiring",
                "crate::lambda",
                "crate::cli",
            ],
        ),
        ("lambda", &["crate::cli"]),
    ];
    for (relative, text) in tree() {
        let layer = layer(&relative);
        let Some((_, names)) = forbidden.iter().find(|(l, _)| *l == layer) else {
            continue;
        };
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for name in *names {
                assert!(
                    !line.contains(name),
                    "src/{relative} ({layer}) names {name}: `{}`",
                    line.trim()
                );
            }
        }
    }
    // The composition is decided in one file: nothing else builds a store, a transport or an
    // alert sink from the environment.
    for (relative, text) in tree() {
        if relative == "wiring.rs" {
            continue;
        }
        for decision in [
            "FileOutbox::new(",
            "SnsAlerts::new(",
            "SqsVisibility::new(",
            "Sesv2Accounts::from_config(",
            "CloudWatchReputation::from_config(",
            "SesFiguresFile::new(",
            "DynamoStore::new(",
            "SqliteStore::open(",
            "SnsHttp::new(",
            "aws_config::load",
        ] {
            let outside_tests = text.split("#[cfg(test)]").next().unwrap_or_default();
            let in_adapter = relative.starts_with("adapters/");
            assert!(
                in_adapter || !outside_tests.contains(decision),
                "src/{relative} builds `{decision}`: only src/wiring.rs composes"
            );
        }
    }
}

/// The module path of a file below `src/` (`domain/reputation/rules.rs` →
/// `["domain", "reputation", "rules"]`; a `mod.rs` is its folder's module).
fn module_of(relative: &str) -> Vec<String> {
    let mut segments: Vec<String> = relative
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
        segments.pop();
    }
    segments
}

/// The paths a `use` tree names, braces expanded: `a::{b, c::{d, e as f}}` → `a::b`,
/// `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let mut tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    for token in ["::", "{", "}", ","] {
        tree = tree
            .replace(&format!(" {token}"), token)
            .replace(&format!("{token} "), token);
    }
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(&tree).to_owned()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|part| !part.is_empty())
        .flat_map(expand_use)
        .map(|path| format!("{prefix}{path}"))
        .collect()
}

/// A file's code: what comes before its tests, without comment lines.
fn code_of(text: &str) -> String {
    text.split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths `code` names: in its `use` trees (whose statements start with `use` or `pub use`),
/// and written out (`crate::…`, `super::…`).
fn paths_in(code: &str) -> Vec<(bool, String)> {
    let mut paths = Vec::new();
    for statement in code.split(';') {
        if let Some((before, tree)) = statement.split_once("use ") {
            let exported = before.trim_end().ends_with("pub") || before.contains("pub(");
            paths.extend(expand_use(tree).into_iter().map(|p| (exported, p)));
        }
    }
    for (at, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let path: String = code[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push((false, path));
    }
    paths
}

/// `path`, named in the module `here`, as segments from the crate root; `None` when it names
/// something outside the crate.
fn absolute(
    path: &str,
    here: &[String],
    modules: &BTreeMap<Vec<String>, String>,
) -> Option<Vec<String>> {
    let mut parts = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut segments: Vec<String> = match parts.peek().copied()? {
        "crate" => {
            parts.next();
            Vec::new()
        }
        "super" | "self" => here.to_vec(),
        // A path from a child module (`use child::Item` in its parent).
        first if modules.contains_key(&[here, &[first.to_owned()]].concat()) => here.to_vec(),
        _ => return None,
    };
    for part in parts {
        match part {
            "super" => {
                segments.pop();
            }
            "self" => {}
            name => segments.push(name.to_owned()),
        }
    }
    Some(segments)
}

/// The file that defines what `segments` names: the deepest module it reaches, or, for an item
/// a folder re-exports from one of its children, that child.
fn defining_file<'a>(
    segments: &[String],
    modules: &'a BTreeMap<Vec<String>, String>,
    reexports: &'a BTreeMap<(Vec<String>, String), String>,
) -> Option<&'a String> {
    let depth = (1..=segments.len())
        .rev()
        .find(|n| modules.contains_key(&segments[..*n]))?;
    let module = &segments[..depth];
    segments
        .get(depth)
        .and_then(|item| reexports.get(&(module.to_vec(), item.clone())))
        .or_else(|| modules.get(module))
}

/// The files under `src/` each file's code (before its tests) depends on, through `use` and
/// through `crate::`/`super::` paths, each item followed to the file that defines it. A folder's
/// `mod.rs` re-exporting its own children is its interface, not a dependency.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let files = tree();
    let modules: BTreeMap<Vec<String>, String> = files
        .iter()
        .map(|(relative, _)| (module_of(relative), relative.clone()))
        .collect();
    // (folder, item) → the child file a folder's `pub use child::Item` takes it from.
    let mut reexports = BTreeMap::new();
    for (relative, text) in &files {
        let here = module_of(relative);
        for (exported, path) in paths_in(&code_of(text)) {
            let Some(segments) = absolute(&path, &here, &modules).filter(|_| exported) else {
                continue;
            };
            let (Some(item), Some(child)) = (segments.last(), segments.get(here.len())) else {
                continue;
            };
            let child_module = [here.as_slice(), std::slice::from_ref(child)].concat();
            if segments.starts_with(&here) && modules.contains_key(&child_module) {
                reexports.insert((here.clone(), item.clone()), modules[&child_module].clone());
            }
        }
    }
    let mut graph = BTreeMap::new();
    for (relative, text) in &files {
        let here = module_of(relative);
        let folder = relative.strip_suffix("mod.rs");
        let named: BTreeSet<String> = paths_in(&code_of(text))
            .into_iter()
            .filter_map(|(_, path)| absolute(&path, &here, &modules))
            .filter_map(|segments| defining_file(&segments, &modules, &reexports))
            .filter(|target| *target != relative)
            .filter(|target| folder.is_none_or(|folder| !target.starts_with(folder)))
            .cloned()
            .collect();
        graph.insert(relative.clone(), named);
    }
    graph
}

/// A cycle of imports through `start`, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut path = vec![start.to_owned()];
    let mut seen = BTreeSet::new();
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        let here = path.last().expect("a path").clone();
        for next in graph.get(&here).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    walk(graph, start, &mut path, &mut seen).then_some(path)
}

#[test]
fn the_use_tree_expands_as_rust_reads_it() {
    assert_eq!(
        expand_use("crate::a::{b, c::{d, e as f}}"),
        ["crate::a::b", "crate::a::c::d", "crate::a::c::e"]
    );
    assert_eq!(expand_use("super::X as Y"), ["super::X"]);
}

#[test]
fn no_two_files_import_each_other_through_any_path() {
    // A cycle between files is a module that cannot be read (or moved) without the other:
    // each cycle gets a leaf both depend on instead. `cargo test --test integration layout`
    // names the cycle.
    let graph = imports();
    assert!(
        graph["lambda/admin.rs"].contains("lambda/session.rs"),
        "the import graph sees `use` lines: {:?}",
        graph["lambda/admin.rs"]
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|file| cycle_through(&graph, file))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// The most lines the README holds: it is the front door, the reference is in `docs/`.
const README_LINES: usize = 250;

#[test]
fn the_readme_is_a_front_door_and_architecture_names_every_module() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= README_LINES,
        "README.md has {lines} lines (at most {README_LINES}): move reference material to docs/"
    );
    let architecture =
        std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let unnamed: Vec<String> = tree()
        .into_iter()
        .map(|(relative, _)| relative)
        .filter(|relative| !relative.ends_with("/tests.rs"))
        .filter(|relative| {
            let named = match relative.strip_suffix("mod.rs") {
                Some(folder) => architecture.contains(folder),
                None => architecture.contains(relative.as_str()),
            };
            !named
        })
        .collect();
    assert!(
        unnamed.is_empty(),
        "docs/ARCHITECTURE.md does not name these modules (by their path below src/): {unnamed:?}"
    );
}

#[test]
fn every_relative_link_in_the_readme_and_docs_leads_to_a_file() {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/") {
        pages.push(entry.expect("entry").path());
    }
    let mut broken = Vec::new();
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(page).expect("a page");
        let folder = page.parent().expect("a folder");
        for (at, _) in text.match_indices("](") {
            let target: String = text[at + 2..].chars().take_while(|c| *c != ')').collect();
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            if !folder.join(path).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
}

/// The most lines a function outside tests holds, from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// Functions longer than [`MAX_FUNCTION_LINES`] in `text` (before its tests): name and length.
fn long_functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("#[cfg(test)]"))
        .collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let indent = line.len() - code.len();
        let signature = code
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .trim_start_matches("const ")
            .trim_start_matches("async ");
        let Some(rest) = signature.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A declaration without a body (a trait's) ends with `;` before any `{`.
        let declaration = lines[start..]
            .iter()
            .find(|l| l.contains('{') || l.trim_end().ends_with(';'))
            .is_some_and(|l| !l.contains('{'));
        if declaration {
            continue;
        }
        let end = lines[start + 1..].iter().position(|l| {
            l.len() > indent && l.starts_with(&" ".repeat(indent)) && l[indent..].starts_with('}')
        });
        if let Some(end) = end.filter(|end| end + 2 > MAX_FUNCTION_LINES) {
            found.push((name, end + 2));
        }
    }
    found
}

#[test]
fn no_function_outside_tests_runs_over_eighty_lines() {
    let sample = "trait T {\n    fn declared(&self);\n}\nfn short() {\n    1\n}\n#[cfg(test)]\nfn ignored() {}\n";
    assert!(long_functions(sample).is_empty());
    let long = format!(
        "fn long() {{\n{}}}\n",
        "    x();\n".repeat(MAX_FUNCTION_LINES)
    );
    assert_eq!(
        long_functions(&long),
        [("long".to_owned(), MAX_FUNCTION_LINES + 2)]
    );
    let over: Vec<String> = tree()
        .into_iter()
        .filter(|(relative, _)| !relative.ends_with("/tests.rs"))
        .flat_map(|(relative, text)| {
            long_functions(&text)
                .into_iter()
                .map(move |(name, n)| format!("src/{relative}: {name} ({n} lines)"))
        })
        .collect();
    assert!(
        over.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: {over:#?}"
    );
}
