//! Running another HTTP implementation as an oracle for the differential tests: one process
//! reads every case (a line each) on stdin and answers a line per case on stdout.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// `bytes` as lowercase hex, `-` when empty: how the oracle scripts take a case's bytes.
pub fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An outcome line with the hex values of its `transfer-encoding=` tokens lowercased: h11
/// lowercases Transfer-Encoding values (raw or not), so the comparison does too.
pub fn lowercase_transfer_encoding(line: &str) -> String {
    let te = format!("{}=", hex(b"transfer-encoding"));
    let tokens: Vec<String> = line
        .split(' ')
        .map(|t| match t.strip_prefix(te.as_str()) {
            Some(value) if value != "-" => {
                let bytes: Vec<u8> = (0..value.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&value[i..i + 2], 16).unwrap())
                    .collect();
                format!("{te}{}", hex(&bytes.to_ascii_lowercase()))
            }
            _ => t.to_string(),
        })
        .collect();
    tokens.join(" ")
}

/// Runs `tests/support/{script}` with `program` over `input` and returns its output lines;
/// `None` when `program probe…` fails (the oracle is not installed), which is a failure under
/// `CI`. Asserts one output line per input line.
pub fn run(program: &str, probe: &[&str], script: &str, input: String) -> Option<Vec<String>> {
    let present = Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        let message = format!("`{program} {}` failed: oracle missing", probe.join(" "));
        assert!(
            std::env::var_os("CI").is_none(),
            "{message}: required in CI (.ci/run installs h11==0.16.0; node must be on PATH)"
        );
        eprintln!("{message}; skipping it");
        return None;
    }
    let script = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(program)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oracle");
    let cases = input.lines().count();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    // Read while it runs: its output is larger than a pipe holds.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    super::finish_child(child);
    writer.join().unwrap().expect("write cases to the oracle");
    let stdout = reader.join().unwrap().expect("read the oracle's output");
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), cases, "{program}: one line per case");
    Some(lines)
}
