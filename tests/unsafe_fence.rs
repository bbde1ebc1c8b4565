//! Source rules of the crate: no `unsafe` code at all (the crate root forbids it, and no module
//! may bring it back), and the crate root denies `unsafe_op_in_unsafe_fn` and warns on missing
//! docs.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether a line has the `unsafe` keyword outside a comment (a string mentioning it is
/// not expected in this crate).
fn has_unsafe_code(line: &str) -> bool {
    let code = line.split("//").next().unwrap_or("");
    code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|word| word == "unsafe")
}

#[test]
fn no_module_has_unsafe_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let with_unsafe: Vec<_> = files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .any(has_unsafe_code)
        })
        .map(|f| f.strip_prefix(&src).unwrap().display().to_string())
        .collect();
    assert!(with_unsafe.is_empty(), "unsafe code in: {with_unsafe:?}");
}

#[test]
fn crate_root_forbids_unsafe_code_and_warns_on_missing_docs() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(lib.contains("#![forbid(unsafe_code)]"));
    assert!(lib.contains("#![deny(unsafe_op_in_unsafe_fn)]"));
    assert!(lib.contains("#![warn(missing_docs)]"));
}
