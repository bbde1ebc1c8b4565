//! The WebSocket chat of `examples/websocket.rs` driven by Python's `websockets` package: a
//! client nobody here wrote. `.ci/run` installs the package; with `CI` set the test fails if
//! Python or the package is missing, elsewhere it skips with a message.

mod common;

#[path = "../examples/websocket.rs"]
#[allow(dead_code)]
mod chat;

use std::process::{Command, Stdio};
use std::thread;

use untangle::http::Server;

/// Two clients: text and binary to everyone, a ping, and the close handshake. Prints one line
/// per check; the test compares them exactly.
const SCRIPT: &str = r#"
import sys
from websockets.sync.client import connect

url = "ws://127.0.0.1:%s/chat" % sys.argv[1]
with connect(url, open_timeout=10, close_timeout=10) as a, connect(url, open_timeout=10) as b:
    a.send("hello from python")
    print("A", a.recv(timeout=10))
    print("B", b.recv(timeout=10))
    b.send(bytes(range(256)) * 300)
    got = a.recv(timeout=10)
    print("BINARY", type(got).__name__, len(got), got == bytes(range(256)) * 300)
    print("B-OWN", len(b.recv(timeout=10)))
    b.ping().wait(timeout=10)
    print("PING ok")
    a.close()
    print("CLOSE", a.close_code)
"#;

fn python_has_websockets() -> bool {
    Command::new("python3")
        .args(["-c", "import websockets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn python_websockets_client_talks_to_the_chat() {
    if !python_has_websockets() {
        let message = "python3 with the `websockets` package not found \
                       (python3 -m pip install websockets)";
        assert!(
            std::env::var_os("CI").is_none(),
            "{message}: required in CI"
        );
        eprintln!("{message}; skipping the WebSocket interop test");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener)?;
            chat::serve(Server::from_listener(listener)).await
        })
        .unwrap();
    });
    let child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(addr.port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    // Hang guard inside: the script's own timeouts should fire long before it.
    let (stdout, stderr) = common::finish_child(child);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "A hello from python",
            "B hello from python",
            "BINARY bytes 76800 True",
            "B-OWN 76800",
            "PING ok",
            "CLOSE 1000",
        ],
        "stderr:\n{stderr}"
    );
}
