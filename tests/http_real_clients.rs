//! The server against real clients nobody here wrote: curl, Python's `http.client` and
//! `urllib`, and Node's `http.request` and `fetch` (undici). Chunked uploads, `Expect:
//! 100-continue` answered by a handler that reads the body and by one that refuses it unread,
//! HEAD, 204 and 304 on a reused connection, keep-alive reuse, several MiB streamed (chunked
//! and with Content-Length), a client that goes away mid-response, `Connection: close` from
//! the client. (No client here pipelines; pipelining is in `tests/http_differential.rs` and
//! `tests/http_server.rs`.)
//!
//! With `CI` set a missing `curl`, `python3` or `node` fails its test; elsewhere it skips.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use untangle::http::{header, Body, Request, Response, StatusCode};

/// Bodies of `/endless` dropped so far: the server let go of a response its client left.
static ENDLESS_DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Endless;

impl Drop for Endless {
    fn drop(&mut self) {
        ENDLESS_DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

/// `n` MiB in 64 KiB chunks of a repeating byte pattern (so that a shifted byte shows).
fn mib_stream(n: usize) -> impl futures_lite::Stream<Item = std::io::Result<Bytes>> {
    let chunk = Bytes::from((0..64 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    futures_lite::stream::iter((0..n * 16).map(move |_| Ok(chunk.clone())))
}

async fn handler(req: Request<Body>) -> Response<Body> {
    let saw_expect = req.headers().contains_key(header::EXPECT);
    let query = req.uri().query().unwrap_or("").to_string();
    let mut response = match req.uri().path() {
        "/echo" => Response::new(req.into_body()),
        "/read" => {
            let body = req.into_body().bytes().await.unwrap_or_default();
            Response::new(Body::from(format!("read {} bytes", body.len())))
        }
        // Refuses without reading the body.
        "/refuse" => {
            let mut r = Response::new(Body::from("too large"));
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            r
        }
        "/204" => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        "/304" => {
            let mut r = Response::new(Body::from("never sent"));
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r.headers_mut()
                .insert(header::ETAG, "\"v1\"".parse().unwrap());
            r
        }
        "/big" => {
            let mib: usize = query.parse().unwrap_or(1);
            Response::new(Body::from_stream(mib_stream(mib)))
        }
        "/big-length" => {
            let mib: usize = query.parse().unwrap_or(1);
            let mut r = Response::new(Body::from_stream(mib_stream(mib)));
            r.headers_mut().insert(
                header::CONTENT_LENGTH,
                (mib << 20).to_string().parse().unwrap(),
            );
            r
        }
        "/endless" => {
            let guard = Endless;
            let chunk = Bytes::from(vec![b'e'; 64 * 1024]);
            let stream = futures_lite::stream::repeat_with(move || {
                let _held = &guard;
                Ok(chunk.clone())
            });
            Response::new(Body::from_stream(stream))
        }
        _ => Response::new(Body::from("hello from untangle")),
    };
    if saw_expect {
        response
            .headers_mut()
            .insert("x-saw-expect", "yes".parse().unwrap());
    }
    response
}

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| common::serve_in_thread(|s| s, handler))
}

/// Whether `program --version` runs; with `CI` set its absence fails the test.
fn have(program: &str) -> bool {
    let ok = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} not found: required in CI"
        );
        eprintln!("{program} not found; skipping");
    }
    ok
}

/// Runs a client to completion (hang guard inside); its standard output.
fn run(program: &str, args: &[&str]) -> String {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    common::finish_child(child).0
}

fn url(path: &str) -> String {
    format!("http://{}{path}", server())
}

const CURL_WRITE_OUT: &str = "%{http_code} %{num_connects} %{size_download}\n";

#[test]
fn curl_chunked_upload_and_expect_continue() {
    if !have("curl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("untangle-curl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("upload");
    // Above 1 MiB curl 7.88 sends `Expect: 100-continue` by itself (below, the body at once).
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let upload = format!("@{}", file.display());
    let small = dir.join("small");
    std::fs::write(&small, &data[..200_000]).unwrap();
    let small = format!("@{}", small.display());
    let echoed = dir.join("echoed");
    // Long enough that a missing 100 hangs (the hang guard fails the test) rather than being
    // papered over by curl's own 1 s timeout.
    let timeout = ["--expect100-timeout", "60"];

    // Chunked upload with `Expect: 100-continue`, echoed back: the response body is the
    // request body, so the server asks for it (100) before the response head.
    let mut args = vec![
        "-sS",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Expect: 100-continue",
    ];
    args.extend(timeout);
    args.extend([
        "--data-binary",
        &upload,
        "-o",
        echoed.to_str().unwrap(),
        "-D",
        "-",
        "-w",
        CURL_WRITE_OUT,
    ]);
    let echo = url("/echo");
    args.push(&echo);
    let out = run("curl", &args);
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{out}"
    );
    assert!(out.contains("transfer-encoding: chunked"), "{out}");
    assert!(out.contains("x-saw-expect: yes"), "{out}");
    assert!(!out.contains("connection: close"), "{out}");
    assert!(out.ends_with("200 1 2000000\n"), "{out}");
    assert_eq!(std::fs::read(&echoed).unwrap(), data);

    // Content-Length upload with curl's own Expect, read by the handler; then a second
    // request on the same connection.
    let mut args = vec!["-sS"];
    args.extend(timeout);
    let (read, hello) = (url("/read"), url("/hello"));
    args.extend([
        "--data-binary",
        &upload,
        "-D",
        "-",
        "-w",
        CURL_WRITE_OUT,
        &read,
        "--next",
        "-sS",
        "-w",
        CURL_WRITE_OUT,
        &hello,
    ]);
    let out = run("curl", &args);
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
        "{out}"
    );
    assert!(out.contains("x-saw-expect: yes"), "{out}");
    assert!(
        out.ends_with("read 2000000 bytes200 1 18\nhello from untangle200 0 19\n"),
        "the connection is reused after a 100-continue exchange: {out}"
    );

    // Refused unread: 413 at once (no 100) with Connection: close, and curl goes on with a new
    // connection without having sent the body.
    let mut args = vec!["-sS"];
    args.extend(timeout);
    let refuse = url("/refuse");
    args.extend([
        "--data-binary",
        &upload,
        "-D",
        "-",
        "-w",
        CURL_WRITE_OUT,
        &refuse,
        "--next",
        "-sS",
        "-w",
        CURL_WRITE_OUT,
        &hello,
    ]);
    let out = run("curl", &args);
    assert!(
        out.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{out}"
    );
    assert!(
        !out.contains("100 Continue"),
        "no 100 for a body never read: {out}"
    );
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(out.contains("too large413 1 9\n"), "{out}");
    assert!(out.ends_with("hello from untangle200 1 19\n"), "{out}");

    // Refused unread without Expect (curl sends a small body at once): the server drains the
    // body and keeps the connection (no `Connection: close`); whether curl reuses it depends on
    // whether its upload had finished when the 413 came, so that is not checked.
    let out = run(
        "curl",
        &[
            "-sS",
            "--data-binary",
            &small,
            "-D",
            "-",
            "-w",
            CURL_WRITE_OUT,
            &refuse,
            "--next",
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &hello,
        ],
    );
    assert!(
        out.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{out}"
    );
    assert!(!out.contains("connection: close"), "{out}");
    assert!(
        out.contains("too large413 1 9\nhello from untangle200 "),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn curl_head_204_304_keep_alive_and_connection_close() {
    if !have("curl") {
        return;
    }
    // One connection for all of them: a body after HEAD, 204 or 304 would break the next.
    let out = run(
        "curl",
        &[
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &url("/hello"),
            "--next",
            "-sS",
            "-I",
            "-w",
            CURL_WRITE_OUT,
            &url("/hello"),
        ],
    );
    assert!(
        out.starts_with("hello from untangle200 1 19\nHTTP/1.1 200 OK\r\n"),
        "{out}"
    );
    assert!(
        out.contains("content-length: 19\r\n"),
        "HEAD gets GET's length: {out}"
    );
    assert!(out.ends_with("200 0 0\n"), "{out}");

    let out = run(
        "curl",
        &[
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &url("/204"),
            "--next",
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &url("/304"),
            "--next",
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &url("/hello"),
        ],
    );
    assert_eq!(out, "204 1 0\n304 0 0\nhello from untangle200 0 19\n");

    // `Connection: close` from the client: answered with it, then a new connection.
    let out = run(
        "curl",
        &[
            "-sS",
            "-H",
            "Connection: close",
            "-D",
            "-",
            "-w",
            CURL_WRITE_OUT,
            &url("/hello"),
            "--next",
            "-sS",
            "-w",
            CURL_WRITE_OUT,
            &url("/hello"),
        ],
    );
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(out.ends_with("hello from untangle200 1 19\n"), "{out}");
    assert_eq!(out.matches(" 1 19\n").count(), 2, "two connections: {out}");
}

#[test]
fn curl_downloads_several_mib_streamed() {
    if !have("curl") {
        return;
    }
    let out = run(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            CURL_WRITE_OUT,
            &url("/big?8"),
            "--next",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            CURL_WRITE_OUT,
            &url("/big-length?8"),
        ],
    );
    assert_eq!(out, "200 1 8388608\n200 0 8388608\n");
}

#[test]
fn client_leaving_mid_response_drops_the_response_body() {
    if !have("curl") {
        return;
    }
    let before = ENDLESS_DROPPED.load(Ordering::SeqCst);
    let mut child = Command::new("curl")
        .args(["-sS", &url("/endless")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = vec![0u8; 256 * 1024];
    child.stdout.take().unwrap().read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&b| b == b'e'));
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + common::HANG_GUARD;
    while ENDLESS_DROPPED.load(Ordering::SeqCst) == before {
        assert!(
            Instant::now() < deadline,
            "the endless response body was never dropped after its client left"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server goes on.
    let out = run("curl", &["-sS", &url("/hello")]);
    assert_eq!(out, "hello from untangle");
}

/// Python's `http.client` and `urllib`: one line per exchange, compared exactly.
const PYTHON: &str = r#"
import http.client, sys, urllib.request

base = sys.argv[1]
host, port = base.split(":")
c = http.client.HTTPConnection(host, int(port), timeout=10)

# Expect: 100-continue, body sent at once (http.client does not wait for the 100): the
# interim 100 is skipped, and the connection is reused.
c.request("POST", "/read", body=b"x" * 5000, headers={"Expect": "100-continue"})
r = c.getresponse()
print("EXPECT", r.status, r.getheader("x-saw-expect"), r.read().decode())

c.request("GET", "/204")
r = c.getresponse()
print("204", r.status, repr(r.read()))
c.request("GET", "/304")
r = c.getresponse()
print("304", r.status, r.getheader("ETag"), repr(r.read()))
c.request("HEAD", "/big-length?3")
r = c.getresponse()
print("HEAD", r.status, r.getheader("Content-Length"), repr(r.read()))

def chunks():
    for i in range(100):
        yield bytes([i]) * 1000
c.request("POST", "/echo", body=chunks(), encode_chunked=True)
r = c.getresponse()
body = r.read()
print("CHUNKED", r.status, len(body), body == b"".join(chunks()))

c.request("GET", "/big?5")
r = c.getresponse()
total = 0
while True:
    piece = r.read(100000)
    if not piece:
        break
    total += len(piece)
print("BIG", r.status, r.getheader("Transfer-Encoding"), total)
c.close()

with urllib.request.urlopen("http://%s/big-length?4" % base, timeout=10) as r:
    data = r.read()
    print("URLLIB", r.status, r.headers["Content-Length"], len(data), data[:3] == bytes([0, 1, 2]))
"#;

#[test]
fn python_http_client_and_urllib() {
    if !have("python3") {
        return;
    }
    let out = run("python3", &["-c", PYTHON, &server().to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "EXPECT 200 yes read 5000 bytes",
            "204 204 b''",
            "304 304 \"v1\" b''",
            "HEAD 200 3145728 b''",
            "CHUNKED 200 100000 True",
            "BIG 200 chunked 5242880",
            "URLLIB 200 4194304 4194304 True",
        ]
    );
}

/// Node's `http.request` (a keep-alive agent with one socket) and `fetch` (undici).
const NODE: &str = r#"
const http = require('http');
const base = 'http://' + process.argv[1];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function request(path, options, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { agent, ...options }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ res, body: Buffer.concat(chunks), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.expect) {
      // The body only once the server asked for it.
      req.on('continue', () => req.end(body));
    } else if (Array.isArray(body)) {
      (async () => { for (const b of body) { req.write(b); await new Promise((r) => setImmediate(r)); } req.end(); })();
    } else {
      req.end(body);
    }
  });
}

(async () => {
  let r = await request('/hello', { method: 'GET' });
  console.log('GET', r.res.statusCode, r.body.toString(), r.reused);
  r = await request('/hello', { method: 'GET' });
  console.log('REUSED', r.res.statusCode, r.reused);

  const pieces = [];
  for (let i = 0; i < 50; i++) pieces.push(Buffer.alloc(3000, i));
  r = await request('/echo', { method: 'POST' }, pieces);
  console.log('CHUNKED', r.res.statusCode, r.res.headers['transfer-encoding'], r.body.length,
    r.body.equals(Buffer.concat(pieces)), r.reused);

  const big = Buffer.alloc(100000, 7);
  r = await request('/read', { method: 'POST', expect: true,
    headers: { 'Expect': '100-continue', 'Content-Length': big.length } }, big);
  console.log('EXPECT', r.res.statusCode, r.body.toString(), r.reused);

  // Refused unread: the 413 comes instead of a 100, with Connection: close.
  const refused = await new Promise((resolve, reject) => {
    const req = http.request(base + '/refuse', { agent, method: 'POST',
      headers: { 'Expect': '100-continue', 'Content-Length': big.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('continue', () => reject(new Error('100 Continue for a refused body')));
    req.on('error', reject);
  });
  console.log('REFUSED', refused.statusCode, refused.headers['connection']);

  r = await request('/big-length?2', { method: 'HEAD' });
  console.log('HEAD', r.res.statusCode, r.res.headers['content-length'], r.body.length);
  r = await request('/204', { method: 'GET' });
  console.log('204', r.res.statusCode, r.body.length, r.reused);
  r = await request('/304', { method: 'GET' });
  console.log('304', r.res.statusCode, r.body.length, r.reused);
  r = await request('/hello', { method: 'GET', headers: { 'Connection': 'close' } });
  console.log('CLOSE', r.res.statusCode, r.res.headers['connection'], r.body.toString());

  const f = await fetch(base + '/big?6');
  const data = Buffer.from(await f.arrayBuffer());
  console.log('FETCH', f.status, data.length, data[250], data[251]);
  const g = await fetch(base + '/echo', { method: 'POST', body: 'fetched body' });
  console.log('FETCH-POST', g.status, await g.text());
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
"#;

#[test]
fn node_http_request_and_fetch() {
    if !have("node") {
        return;
    }
    let out = run("node", &["-e", NODE, &server().to_string()]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "GET 200 hello from untangle false",
            "REUSED 200 true",
            "CHUNKED 200 chunked 150000 true true",
            "EXPECT 200 read 100000 bytes true",
            "REFUSED 413 close",
            "HEAD 200 2097152 0",
            "204 204 0 true",
            "304 304 0 true",
            "CLOSE 200 close hello from untangle",
            "FETCH 200 6291456 250 0",
            "FETCH-POST 200 fetched body",
        ]
    );
}
