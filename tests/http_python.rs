//! The server driven by Python's standard `http.client`: a client nobody here wrote.
//!
//! Skipped, with a message, where `python3` is not installed.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;

use untangle::http::{Body, Request, Response, Server};

/// Prints one line per exchange; the test compares them exactly.
const SCRIPT: &str = r#"
import http.client, sys

port = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

c.request("GET", "/hello")
r = c.getresponse()
print("GET", r.status, r.reason, r.getheader("Content-Length"), r.read().decode())

c.request("POST", "/echo", body=b"posted body", headers={"Content-Type": "text/plain"})
r = c.getresponse()
print("POST", r.status, r.getheader("Content-Length"), r.read().decode())

c.request("POST", "/echo", body=iter([b"chunked ", b"upload"]), encode_chunked=True)
r = c.getresponse()
print("CHUNKED", r.status, r.getheader("Transfer-Encoding"), r.read().decode())

c.request("HEAD", "/hello")
r = c.getresponse()
print("HEAD", r.status, r.getheader("Content-Length"), repr(r.read()))

c.request("GET", "/peer")
r = c.getresponse()
first = r.read().decode()
c.request("GET", "/peer")
r = c.getresponse()
second = r.read().decode()
print("KEEPALIVE", first == second, r.will_close)

c.request("GET", "/hello", headers={"Connection": "close"})
r = c.getresponse()
print("CLOSE", r.status, r.getheader("Connection"), r.will_close, r.read().decode())
c.close()
"#;

async fn handler(req: Request<Body>) -> Response<Body> {
    match req.uri().path() {
        "/echo" => Response::new(req.into_body()),
        "/peer" => {
            let peer = req.extensions().get::<SocketAddr>().copied();
            Response::new(Body::from(format!("{peer:?}")))
        }
        _ => Response::new(Body::from("hello from untangle")),
    }
}

#[test]
fn python_http_client_talks_to_the_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener)?;
            Server::from_listener(listener)
                .peer_addr_extension(true)
                .serve(handler)
                .await
        })
        .unwrap();
    });

    let child = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(addr.port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            eprintln!("python3 not found; skipping the http.client test");
            return;
        }
        Err(err) => panic!("starting python3: {err}"),
    };
    // Hang guard inside: the script's own timeouts should fire long before it.
    let (stdout, stderr) = common::finish_child(child);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "GET 200 OK 19 hello from untangle",
            "POST 200 11 posted body",
            "CHUNKED 200 chunked chunked upload",
            "HEAD 200 19 b''",
            "KEEPALIVE True False",
            "CLOSE 200 close True hello from untangle",
        ],
        "stderr:\n{stderr}"
    );
}
