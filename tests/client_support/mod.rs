//! Servers nobody here wrote, for the client tests: a Node or Python script started as a
//! child process that prints its listening ports on its first line of output.
//!
//! Used through `#[path]` by `tests/http_client_real.rs` and `tests/http_client_connect.rs`.
//! With `CI` set, a missing `node` or `python3` fails the test; elsewhere it is skipped with a
//! message. The child exits when its standard input closes (this process ended) and is killed
//! when its handle is dropped, so no server outlives its test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::common::HANG_GUARD;

/// A running script server.
pub struct Script {
    child: Child,
    /// The ports it printed on its first line.
    pub ports: Vec<u16>,
}

impl Script {
    /// `http://127.0.0.1:{port}{path}` for the `index`th port.
    pub fn url(&self, index: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[index])
    }

    pub fn addr(&self, index: usize) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.ports[index]).into()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program` (`node` or `python3`) on `script` (a file in this directory) with `args`;
/// `None` (after a message) where the program is not installed and `CI` is not set.
pub fn start(program: &str, script: &str, args: &[&str]) -> Option<Script> {
    let path = format!(
        "{}/tests/client_support/{script}",
        env!("CARGO_MANIFEST_DIR")
    );
    let spawned = Command::new(program)
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            let message = format!("{program} not found");
            assert!(
                std::env::var_os("CI").is_none(),
                "{message}: required in CI"
            );
            eprintln!("{message}; skipping this test");
            return None;
        }
        Err(err) => panic!("starting {program} {path}: {err}"),
    };
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut script = Script {
        child,
        ports: Vec::new(),
    };
    let line = rx
        .recv_timeout(HANG_GUARD)
        .unwrap_or_else(|_| panic!("{program} {script} printed no ports", script = path));
    script.ports = line
        .split_whitespace()
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("bad port line {line:?}"))
        })
        .collect();
    assert!(!script.ports.is_empty(), "{program} {path} failed to start");
    Some(script)
}
