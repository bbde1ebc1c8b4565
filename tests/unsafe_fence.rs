//! Source rules of the crate: the crate root denies `unsafe` code, and the only place allowed to
//! use it is the one call polling makes `unsafe` (`Poller::add_with_mode`, in the portable
//! reactor backend), under a `SAFETY` comment; the crate root also denies
//! `unsafe_op_in_unsafe_fn` and warns on missing docs.

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

/// The one file allowed `unsafe`.
const FENCED: &str = "reactor/portable.rs";

#[test]
fn only_the_polling_registration_has_unsafe_code() {
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
    assert_eq!(with_unsafe, [FENCED], "unsafe code outside {FENCED}");

    let fenced = std::fs::read_to_string(src.join(FENCED)).unwrap();
    let lines: Vec<&str> = fenced.lines().collect();
    let unsafe_lines: Vec<usize> = (0..lines.len())
        .filter(|&i| has_unsafe_code(lines[i]))
        .collect();
    assert_eq!(unsafe_lines.len(), 1, "one unsafe block in {FENCED}");
    let block = unsafe_lines[0];
    assert!(
        lines[block].trim() == "unsafe {",
        "{FENCED}: {}",
        lines[block]
    );
    assert!(lines[block - 1].contains("#[allow(unsafe_code)]"));
    let comment_above = lines[..block - 1]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("//"))
        .any(|l| l.contains("SAFETY:"));
    assert!(
        comment_above,
        "the unsafe block in {FENCED} needs a SAFETY comment"
    );
}

#[test]
fn crate_root_denies_unsafe_code_and_warns_on_missing_docs() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(lib.contains("#![deny(unsafe_code)]"));
    assert!(lib.contains("#![deny(unsafe_op_in_unsafe_fn)]"));
    assert!(lib.contains("#![warn(missing_docs)]"));
}
