//! One drift test for every binding: each function of include/dpopkit.h must be used by the
//! Python package (declared in `_native._FUNCTIONS` and called as `lib.<name>`), by the C#
//! wrapper (bindings/sqlserver/DpopKit.cs calls `NativeMethods.<name>`; the declarations
//! themselves are generated into NativeMethods.g.cs, see tests/no_peers/header.rs) and by the C++
//! header (bindings/cpp/dpopkit.hpp calls `<name>(`) — unless that binding lists it as
//! deliberately absent, with a reason, in a comment of its own file:
//!
//! ```text
//! deliberately absent: dpopkit_some_function: why this binding does not offer it
//! ```
//!
//! A listed function that the binding uses after all, or that the header no longer has,
//! fails too (the list must not go stale).
//!
//! README.md's table of "The C API in one page" is held to the same header: it must name
//! every function, and none the header lacks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The functions the header declares: every `dpopkit_name(` that starts a declaration (a
/// line of code, not a comment, whose name is followed by its parameter list).
fn header_functions(header: &str) -> BTreeSet<String> {
    crate::common::header::function_names(header).into_iter().collect()
}

/// Whether `text` holds `prefix` + `name` with no identifier character right after it
/// (so `dpopkit_http_last_status` does not count for `dpopkit_http_last_status_text`).
fn uses(text: &str, prefix: &str, name: &str, suffix: Option<char>) -> bool {
    let needle = format!("{prefix}{name}");
    text.match_indices(&needle).any(|(i, _)| {
        let after = text[i + needle.len()..].chars().next();
        match suffix {
            Some(s) => after == Some(s),
            None => !after.is_some_and(is_ident),
        }
    })
}

/// The `deliberately absent: dpopkit_x: reason` entries of a binding file. A reason of
/// fewer than 10 characters is not a reason.
fn absent_list(text: &str, file: &str) -> BTreeMap<String, String> {
    const MARK: &str = "deliberately absent:";
    let mut out = BTreeMap::new();
    for (i, _) in text.match_indices(MARK) {
        let rest = text[i + MARK.len()..].lines().next().unwrap_or("").trim_start();
        let end = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        let name = &rest[..end];
        assert!(name.starts_with("dpopkit_"), "{file}: `{MARK}` must be followed by a function name: {rest:?}");
        let reason = rest[end..].trim_start_matches([' ', ':', '-', '—', '\t']).trim();
        assert!(reason.chars().count() >= 10, "{file}: {name} is listed as deliberately absent without a reason");
        out.insert(name.to_string(), reason.to_string());
    }
    out
}

struct Binding {
    name: &'static str,
    file: &'static str,
    /// Every file whose uses count (the first one holds the absent list).
    texts: Vec<String>,
    used: fn(&str, &str) -> bool,
}

fn check(header: &BTreeSet<String>, b: &Binding) -> Vec<String> {
    let absent = absent_list(&b.texts[0], b.file);
    let mut problems = Vec::new();
    for f in header {
        let used = b.texts.iter().any(|t| (b.used)(t, f));
        match (used, absent.get(f)) {
            (false, None) => problems.push(format!(
                "{}: {f} is in include/dpopkit.h but not in {} (wrap it, or add `deliberately absent: {f}: <reason>` to a comment there)",
                b.name, b.file
            )),
            (true, Some(_)) => problems
                .push(format!("{}: {f} is listed as deliberately absent in {} but is used: remove it from the list", b.name, b.file)),
            _ => {}
        }
    }
    for f in absent.keys().filter(|f| !header.contains(*f)) {
        problems.push(format!("{}: {} lists {f} as deliberately absent, but the header has no such function", b.name, b.file));
    }
    problems
}

fn bindings() -> Vec<Binding> {
    let py_dir = repo().join("bindings/python/dpopkit");
    let mut py_files: Vec<_> =
        std::fs::read_dir(&py_dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "py")).collect();
    py_files.sort();
    // _native.py first: its docstring holds the absent list, its table the declarations.
    py_files.sort_by_key(|p| p.file_name() != Some("_native.py".as_ref()));
    let py_texts: Vec<String> = py_files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    vec![
        // Used = called as `lib.<name>` somewhere in the package (the declaration in the
        // ctypes table is checked separately).
        Binding { name: "Python", file: "bindings/python/dpopkit/_native.py", texts: py_texts, used: |t, f| uses(t, "lib.", f, None) },
        Binding {
            name: "C#",
            file: "bindings/sqlserver/DpopKit.cs",
            texts: vec![read("bindings/sqlserver/DpopKit.cs")],
            used: |t, f| uses(t, "NativeMethods.", f, None),
        },
        Binding {
            name: "C++",
            file: "bindings/cpp/dpopkit.hpp",
            texts: vec![read("bindings/cpp/dpopkit.hpp")],
            used: |t, f| uses(t, "", f, Some('(')),
        },
    ]
}

#[test]
fn every_header_function_is_in_every_binding_or_deliberately_absent() {
    let header = header_functions(&read("include/dpopkit.h"));
    assert!(header.len() >= 45, "the header parser found only {} functions: {header:?}", header.len());
    // The Python table declares every function (a call needs a declaration to be typed).
    let native = read("bindings/python/dpopkit/_native.py");
    let mut problems: Vec<String> = header
        .iter()
        .filter(|f| !uses(&native, "\"", f, Some('"')))
        .map(|f| format!("Python: {f} is not declared in _native._FUNCTIONS"))
        .collect();
    for b in bindings() {
        problems.extend(check(&header, &b));
    }
    assert!(problems.is_empty(), "the bindings drifted from include/dpopkit.h:\n  {}", problems.join("\n  "));
}

/// The checker itself: a binding that lacks a function fails, a listed one passes, a stale
/// or reasonless entry fails, and a longer name does not count for a shorter one.
#[test]
fn the_drift_checker_can_fail() {
    let header: BTreeSet<String> = ["dpopkit_a", "dpopkit_a_b"].iter().map(|s| s.to_string()).collect();
    let mk = |text: &str| Binding { name: "T", file: "t.hpp", texts: vec![text.to_string()], used: |t, f| uses(t, "", f, Some('(')) };
    assert_eq!(check(&header, &mk("dpopkit_a(); dpopkit_a_b(x);")), Vec::<String>::new());
    let p = check(&header, &mk("dpopkit_a_b(x);"));
    assert!(p.len() == 1 && p[0].contains("dpopkit_a is in include/dpopkit.h but not in t.hpp"), "{p:?}");
    assert!(check(&header, &mk("dpopkit_a_b(x); // deliberately absent: dpopkit_a: the host has no use for it")).is_empty());
    let p = check(&header, &mk("dpopkit_a(); dpopkit_a_b(); // deliberately absent: dpopkit_a: the host has no use for it"));
    assert!(p[0].contains("but is used"), "{p:?}");
    let p = check(&header, &mk("dpopkit_a(); dpopkit_a_b(); // deliberately absent: dpopkit_gone: removed from the header long ago"));
    assert!(p[0].contains("no such function"), "{p:?}");
    let r = std::panic::catch_unwind(|| absent_list("// deliberately absent: dpopkit_a", "t"));
    assert!(r.is_err(), "an entry without a reason is refused");
    let h = header_functions(
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n// dpopkit_not_a_decl(\nint dpopkit_x(int64_t h);\nuint8_t *dpopkit_y(int64_t http,\n    size_t *out_len);\n#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n",
    );
    assert_eq!(h.into_iter().collect::<Vec<_>>(), ["dpopkit_x", "dpopkit_y"]);
}

/// The functions README.md's `| object | functions |` table names. A cell lists
/// `` `dpopkit_key_new` `` in full and then `` `_load(key, text)` `` for the row's prefix
/// (`dpopkit_key`, the first two words of the row's first full name); `(...)` is dropped.
fn readme_table_functions(readme: &str) -> Result<BTreeSet<String>, String> {
    let start = readme.find("\n| object | functions |").ok_or("README.md has no `| object | functions |` table")?;
    let mut out = BTreeSet::new();
    for row in readme[start + 1..].lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells = row.split('|').map(str::trim).collect::<Vec<_>>();
        let Some(list) = cells.get(2) else { return Err(format!("a row without functions: {row}")) };
        let mut prefix: Option<String> = None;
        for span in list.split('`').skip(1).step_by(2) {
            let name = span.split('(').next().unwrap_or("").trim();
            if name.starts_with("dpopkit_") {
                if prefix.is_none() {
                    prefix = Some(name.splitn(3, '_').take(2).collect::<Vec<_>>().join("_"));
                }
                out.insert(name.to_string());
            } else if name.starts_with('_') && name.len() > 1 && name[1..].chars().all(is_ident) {
                let p = prefix.as_deref().ok_or_else(|| format!("`{name}` before any full `dpopkit_` name in: {row}"))?;
                out.insert(format!("{p}{name}"));
            }
        }
    }
    Ok(out)
}

/// Issue 25, item 9: the README's table listed 39 of the header's 49 functions.
#[test]
fn readme_c_api_table_names_every_header_function() {
    let header = header_functions(&read("include/dpopkit.h"));
    let table = readme_table_functions(&read("README.md")).unwrap_or_else(|e| panic!("{e}"));
    let missing: Vec<_> = header.difference(&table).collect();
    let unknown: Vec<_> = table.difference(&header).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's \"The C API in one page\" table drifted from include/dpopkit.h:\n  not in the table: {missing:?}\n  not in the header: {unknown:?}\n(add each to the row of its object, as `_rest_of_name` after the row's first full name)"
    );
}

/// The README table parser: full names, `_suffix` names with the row's prefix, arguments
/// dropped, only the rows of that table.
#[test]
fn the_readme_table_parser_can_fail() {
    let text = "x `dpopkit_zzz`\n\n| object | functions |\n|---|---|\n| K | `dpopkit_key_new`, `_load(key, t)` (or `pkcs11:`) |\n| any | `dpopkit_destroy`, `dpopkit_string_free` |\n\n| other | `dpopkit_http_new` |\n";
    let got = readme_table_functions(text).unwrap();
    assert_eq!(got.into_iter().collect::<Vec<_>>(), ["dpopkit_destroy", "dpopkit_key_load", "dpopkit_key_new", "dpopkit_string_free"]);
    assert!(readme_table_functions("no table").is_err());
    assert!(readme_table_functions("\n| object | functions |\n|---|---|\n| K | `_load` |\n").is_err());
}
