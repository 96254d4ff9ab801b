//! The server's layers, settings → services → http, hold: no module imports one above
//! it, and the catalog and the object stores know nothing of each other. Checked on the
//! source, so an import that would start a loop fails here, named, before review.

use std::collections::BTreeSet;
use std::path::Path;

/// The top-level modules `file` (under `server/src`) imports with `crate::…`.
fn imports(source: &str) -> BTreeSet<String> {
    source
        .match_indices("crate::")
        .map(|(at, _)| {
            source[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

/// Every source file under `dir`, with its top-level module's name.
fn modules(dir: &Path, top: Option<&str>, out: &mut Vec<(String, String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let module = top.map_or(name.clone(), str::to_owned);
        if path.is_dir() {
            modules(&path, Some(&module), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).unwrap();
            out.push((module, path.display().to_string(), source));
        }
    }
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&src, None, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    let above = |module: &str| -> &[&str] {
        match module {
            // The crate's roots wire the layers together.
            "main" | "lib" | "http" => &[],
            "catalog" => &["storage", "settings", "services", "http"],
            "storage" => &["catalog", "settings", "services", "http"],
            "secret" | "limits" | "stream" => {
                &["catalog", "storage", "settings", "services", "http"]
            }
            "settings" => &["services", "http"],
            _ => &["http"],
        }
    };
    let mut wrong = Vec::new();
    for (module, path, source) in &files {
        for imported in imports(source) {
            if above(module).contains(&imported.as_str()) {
                wrong.push(format!("{path} imports crate::{imported}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}
