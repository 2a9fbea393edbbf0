//! No import cycle inside any crate of the workspace, read from the source files.
//!
//! Each file under a crate's `src/` is a module (`lib.rs` the root, `a/mod.rs` and `a.rs` the
//! module `a`; a binary's `main.rs` is its own crate and is skipped). Module `A` depends on
//! module `B` when `A`'s code names `B` in a path: `use crate::b::…`, `super::…`, `self::…`, a
//! `crate::b::Item` written inline, or a child module's name (`child::item`). Comments
//! (doc links included) and `#[cfg(test)]` modules are left out: they are not imports of the
//! code that ships. A module naming one of its own descendants is containment (a parent that
//! declares and assembles its children: a router, a dispatcher), not an import, and is not an
//! edge; a child naming its parent (`super::Ctx`) is.
//!
//! Two graphs must be acyclic: the modules themselves, and the top-level modules (every module
//! folded into its first path segment), so that two top-level modules never reach each other
//! through their children either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source folders, relative to the workspace root.
const CRATES: [&str; 5] = [
    "src",
    "jobs/src",
    "intake/src",
    "workers/src",
    "testkit/src",
];

type Module = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Path,
    Punct(char),
}

/// Identifiers, `::` and single punctuation; comments, string and char literals are skipped.
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('"' | '#')) {
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            i += 2 + hashes;
            while i < chars.len()
                && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|c| *c == '#'))
            {
                i += 1;
            }
            i += 1 + hashes;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{5d0}'), else a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && next == Some(':') {
            out.push(Token::Path);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Drops every `#[cfg(test)] mod name { … }`.
fn without_test_modules(tokens: Vec<Token>) -> Vec<Token> {
    let cfg_test = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".into()),
        Token::Punct('('),
        Token::Ident("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    let (mut out, mut i) = (Vec::new(), 0);
    while i < tokens.len() {
        let is_test_mod = tokens[i..].starts_with(&cfg_test)
            && tokens.get(i + 7) == Some(&Token::Ident("mod".into()))
            && tokens.get(i + 9) == Some(&Token::Punct('{'));
        if !is_test_mod {
            out.push(tokens[i].clone());
            i += 1;
            continue;
        }
        let mut depth = 0;
        i += 9;
        while i < tokens.len() {
            match tokens[i] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => depth -= 1,
                _ => {}
            }
            i += 1;
            if depth == 0 {
                break;
            }
        }
    }
    out
}

/// Every path named by `use` trees (groups expanded) and inline `a::b::c` paths.
fn paths(tokens: &[Token]) -> Vec<Vec<String>> {
    fn use_tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
        let mut path = prefix.to_vec();
        loop {
            match tokens.get(*i) {
                Some(Token::Ident(s)) if s == "as" => {
                    *i += 2;
                    break;
                }
                Some(Token::Ident(s)) => path.push(s.clone()),
                Some(Token::Path) => {}
                Some(Token::Punct('*')) => {
                    *i += 1;
                    break;
                }
                Some(Token::Punct('{')) => {
                    *i += 1;
                    loop {
                        match tokens.get(*i) {
                            None => return,
                            Some(Token::Punct('}')) => {
                                *i += 1;
                                return;
                            }
                            Some(Token::Punct(',')) => *i += 1,
                            _ => {
                                let before = *i;
                                use_tree(tokens, i, &path, out);
                                *i = (*i).max(before + 1);
                            }
                        }
                    }
                }
                _ => break,
            }
            *i += 1;
        }
        out.push(path);
    }
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if token == &Token::Ident("use".into()) {
            // `use ::name::…` is an outside crate even when a child module has its name.
            let global = tokens.get(i + 1) == Some(&Token::Path);
            let prefix = if global {
                vec!["::".to_owned()]
            } else {
                vec![]
            };
            let mut at = i + 1;
            use_tree(tokens, &mut at, &prefix, &mut out);
        } else if let Token::Ident(first) = token {
            let starts = i == 0 || tokens[i - 1] != Token::Path;
            // `crate::{…}` is a `use` group, read above.
            let group = matches!(tokens.get(i + 2), Some(Token::Punct('{' | '*')));
            if starts && tokens.get(i + 1) == Some(&Token::Path) && !group {
                let mut path = vec![first.clone()];
                let mut at = i + 1;
                while let (Some(Token::Path), Some(Token::Ident(s))) =
                    (tokens.get(at), tokens.get(at + 1))
                {
                    path.push(s.clone());
                    at += 2;
                }
                out.push(path);
            }
        }
    }
    out
}

/// The crate's modules, each with its file.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("under src")
                .with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module == ["main"] {
                continue;
            }
            if module == ["lib"] || module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            out.insert(module, path);
        }
    }
    out
}

/// `module`'s dependencies within its crate (descendants left out).
fn dependencies(
    module: &Module,
    source: &str,
    all: &BTreeMap<Module, PathBuf>,
) -> BTreeSet<Module> {
    let mut out = BTreeSet::new();
    for path in paths(&without_test_modules(tokens(source))) {
        let (mut base, mut rest) = (module.clone(), path.as_slice());
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("self" | "super") => {
                while let Some(head) = rest.first().map(String::as_str) {
                    match head {
                        "super" => drop(base.pop()),
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            Some(child) if all.contains_key(&[module.as_slice(), &[child.to_owned()]].concat()) => {
            }
            _ => continue,
        }
        for segment in rest {
            base.push(segment.clone());
            if !all.contains_key(&base) {
                base.pop();
                break;
            }
        }
        if !base.starts_with(module) {
            out.insert(base);
        }
    }
    out
}

/// The strongly connected components of `graph` with more than one module: each is a set of
/// modules that all reach one another, i.e. one or more cycles (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    #[derive(Default)]
    struct Walk {
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit(node: &Module, graph: &BTreeMap<Module, BTreeSet<Module>>, walk: &mut Walk) {
        let at = walk.index.len();
        walk.index.insert(node.clone(), at);
        walk.low.insert(node.clone(), at);
        walk.stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if !walk.index.contains_key(next) {
                visit(next, graph, walk);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node.clone(), low);
            } else if walk.stack.contains(next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node.clone(), low);
            }
        }
        if walk.low[node] == at {
            let start = walk.stack.iter().position(|m| m == node).unwrap_or(0);
            let component: Vec<Module> = walk.stack.drain(start..).collect();
            if component.len() > 1 {
                walk.found.push(component);
            }
        }
    }
    let mut walk = Walk::default();
    for node in graph.keys() {
        if !walk.index.contains_key(node) {
            visit(node, graph, &mut walk);
        }
    }
    walk.found
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for src in CRATES {
        let all = modules(&root.join(src));
        assert!(all.contains_key(&Vec::new()), "{src} has no lib.rs");
        let graph: BTreeMap<Module, BTreeSet<Module>> = all
            .iter()
            .map(|(module, file)| {
                let source = std::fs::read_to_string(file).expect("read a source file");
                (module.clone(), dependencies(module, &source, &all))
            })
            .collect();
        let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
        for (from, tos) in &graph {
            let from = from.iter().take(1).cloned().collect::<Module>();
            for to in tos {
                let to = to.iter().take(1).cloned().collect::<Module>();
                if from != to && !from.is_empty() {
                    top.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        for (level, graph) in [("modules", &graph), ("top-level modules", &top)] {
            for component in cycles(graph) {
                let names: Vec<String> = component.iter().map(name).collect();
                found.push(format!("{src}, {level}: {}", names.join(" ⇄ ")));
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_reader_finds_uses_groups_inline_paths_and_skips_comments_and_tests() {
    let all: BTreeMap<Module, PathBuf> = [vec![], vec!["a".to_owned()], vec!["b".into()]]
        .into_iter()
        .chain([vec!["a".to_owned(), "c".to_owned()], vec!["d".into()]])
        .map(|m| (m, PathBuf::new()))
        .collect();
    let source = r#"
        //! [`crate::d`] in a doc comment is no import.
        use crate::{b::Item, a::c as other};
        use super::d::{self, X};
        fn f() -> c::Y { let s = "crate::d::Z"; let c = '{'; c::make() }
        #[cfg(test)]
        mod tests { use crate::d::Helper; }
    "#;
    let deps = dependencies(&vec!["a".to_owned()], source, &all);
    let names: Vec<String> = deps.iter().map(name).collect();
    // `a::c` is a's own child (containment), `d` is named only by super::d.
    assert_eq!(names, ["b", "d"]);
    let graph: BTreeMap<Module, BTreeSet<Module>> = [
        (vec!["b".to_owned()], BTreeSet::from([vec!["d".to_owned()]])),
        (vec!["d".to_owned()], BTreeSet::from([vec!["b".to_owned()]])),
    ]
    .into_iter()
    .collect();
    let found: Vec<Vec<String>> = cycles(&graph)
        .iter()
        .map(|c| c.iter().map(name).collect())
        .collect();
    assert_eq!(found, [["b", "d"]]);
}
