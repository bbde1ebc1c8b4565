//! The client against servers nobody here wrote: Node's `http.createServer` (llhttp; chunked
//! by default for streamed responses; its own keep-alive timeout) and Python's `http.server`
//! (HTTP/1.0 by default, and HTTP/1.1). The scripts are in `tests/client_support/`.
//!
//! With `CI` set a missing `node` or `python3` fails the test; elsewhere it is skipped with a
//! message. Timing appears only as hang guards and short configured client timeouts.

mod common;
#[path = "client_support/mod.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::run;
use futures_lite::StreamExt;
use untangle::http::{header, Body, Client, ErrorKind, Method, Request, Response, StatusCode};

use support::Script;

fn node(keep_alive_ms: u64) -> Option<Script> {
    support::start("node", "node_server.js", &[&keep_alive_ms.to_string()])
}

async fn text(response: Response<Body>) -> String {
    response.into_body().text().await.unwrap()
}

/// The value of `key=` in a `/echo` answer.
fn field<'a>(echo: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    echo.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {echo:?}"))
}

fn request(method: Method, url: String, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(body.into())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------------

#[test]
fn node_framings_are_read_and_the_connection_kept() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        let first = text(client.get(node.url(0, "/conn")).await.unwrap()).await;

        let streamed = client.get(node.url(0, "/stream")).await.unwrap();
        assert_eq!(streamed.headers()[header::TRANSFER_ENCODING], "chunked");
        assert_eq!(text(streamed).await, "one,two,three");

        let trailers = client.get(node.url(0, "/trailers")).await.unwrap();
        assert_eq!(text(trailers).await, "abc");

        // 103 Early Hints with its own header, then the final response (without the hint's
        // field).
        let hinted = client.get(node.url(0, "/hints")).await.unwrap();
        assert_eq!(hinted.status(), StatusCode::OK);
        assert_eq!(hinted.headers()["x-final"], "yes");
        assert!(hinted.headers().get(header::LINK).is_none());
        assert_eq!(text(hinted).await, format!("final:{first}"));

        // Bodiless answers with a Content-Length: nothing waited for, the connection kept.
        let head = client
            .send(request(Method::HEAD, node.url(0, "/head"), Body::empty()))
            .await
            .unwrap();
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "100");
        assert_eq!(text(head).await, "");
        for (code, length) in [(204, ""), (304, "&length=42")] {
            let url = node.url(0, &format!("/status?code={code}{length}"));
            let response = client.get(url).await.unwrap();
            assert_eq!(response.status().as_u16(), code);
            assert_eq!(response.headers()["x-conn"], first.as_str());
            assert_eq!(text(response).await, "");
        }
        let full = text(client.get(node.url(0, "/head")).await.unwrap()).await;
        assert_eq!(full, "x".repeat(100));

        // All of it on one connection.
        let last = text(client.get(node.url(0, "/conn")).await.unwrap()).await;
        assert_eq!(last, first);
    });
}

#[test]
fn node_requests_arrive_as_sent() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        let echo = text(
            client
                .send(request(Method::POST, node.url(0, "/echo?q=1"), "a=1&b=2"))
                .await
                .unwrap(),
        )
        .await;
        assert!(echo.starts_with("POST\n/echo?q=1\n"), "{echo}");
        assert_eq!(field(&echo, "body"), "a=1&b=2");
        assert_eq!(field(&echo, "clen"), "7");
        assert_eq!(field(&echo, "host"), format!("127.0.0.1:{}", node.ports[0]));
        // No compression is asked for (the client decodes none).
        assert_eq!(field(&echo, "ae"), "-");

        // A stream of unknown length goes chunked; llhttp decodes it.
        let chunks = futures_lite::stream::iter(
            ["x", "yy", "zzz"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
        );
        let echo = text(
            client
                .send(request(
                    Method::PUT,
                    node.url(0, "/echo"),
                    Body::from_stream(chunks),
                ))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(field(&echo, "body"), "xyyzzz");
        assert_eq!(field(&echo, "te"), "chunked");

        // Expect: 100-continue: Node answers 100 itself, then reads the body.
        let mut post = request(Method::POST, node.url(0, "/echo"), vec![b'e'; 100_000]);
        post.headers_mut()
            .insert(header::EXPECT, "100-continue".parse().unwrap());
        let echo = text(client.send(post).await.unwrap()).await;
        assert_eq!(field(&echo, "body").len(), 100_000);

        // Empty POST: Content-Length 0, and a DELETE without one.
        let echo = text(
            client
                .send(request(Method::POST, node.url(0, "/echo"), Body::empty()))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((field(&echo, "clen"), field(&echo, "te")), ("0", "-"));
        let echo = text(
            client
                .send(request(Method::DELETE, node.url(0, "/echo"), Body::empty()))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((field(&echo, "clen"), field(&echo, "te")), ("-", "-"));
    });
}

#[test]
fn node_closing_idle_keep_alive_connections_does_not_fail_the_next_request() {
    // Node closes idle connections after its keep-alive timeout (here 50 ms; Node adds its
    // own margin).
    let Some(node) = node(50) else { return };
    run(async {
        let client = Client::new();
        let watcher = Client::builder().pool_max_idle_per_host(0).build();
        // Two requests at once: two pooled connections.
        let (a, b) = futures_lite::future::zip(
            client.get(node.url(0, "/conn")),
            client.get(node.url(0, "/conn")),
        )
        .await;
        let ids = [text(a.unwrap()).await, text(b.unwrap()).await];
        assert_ne!(ids[0], ids[1]);
        // Wait (hang guard only) until Node has closed both.
        for id in &ids {
            loop {
                let url = node.url(0, &format!("/closed?id={id}"));
                if text(watcher.get(url).await.unwrap()).await == "yes" {
                    break;
                }
                untangle::time::sleep(Duration::from_millis(10)).await;
            }
        }
        // Even a POST (never retried) goes out on a live connection.
        let post = request(Method::POST, node.url(0, "/echo"), "after idle close");
        let echo = text(client.send(post).await.unwrap()).await;
        assert_eq!(field(&echo, "body"), "after idle close");
        assert!(!ids.iter().any(|id| id == field(&echo, "conn")), "{echo}");
    });
}

/// `req.pipe(res)`: Node answers while the body is still arriving; the client keeps uploading
/// as the response is read (a client that wrote everything first would deadlock once both
/// directions' socket buffers are full).
#[test]
fn node_full_duplex_echo_streams_both_ways() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        let chunks =
            (0..512u32).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i as u8; 64 * 1024])));
        let put = request(
            Method::PUT,
            node.url(0, "/duplex"),
            Body::from_stream(futures_lite::stream::iter(chunks)),
        );
        let response = client.send(put).await.unwrap();
        assert_eq!(response.headers()[header::TRANSFER_ENCODING], "chunked");
        let mut body = response.into_body();
        let mut at = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            assert!(chunk
                .iter()
                .enumerate()
                .all(|(i, &b)| b == ((at + i) / (64 * 1024)) as u8));
            at += chunk.len();
        }
        assert_eq!(at, 512 * 64 * 1024);
        // Done both ways: the connection is kept.
        let id = text(client.get(node.url(0, "/conn")).await.unwrap()).await;
        let again = text(client.get(node.url(0, "/conn")).await.unwrap()).await;
        assert_eq!(id, again);
    });
}

/// Ping-pong inside one exchange: each chunk of the request body is produced only once the
/// echo of the previous one has been read from the response body.
#[test]
fn node_full_duplex_ping_pong_in_one_exchange() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let (tx, rx) = async_channel::unbounded::<std::io::Result<Bytes>>();
        tx.send(Ok(Bytes::from("ping 0;"))).await.unwrap();
        let put = request(Method::PUT, node.url(0, "/duplex"), Body::from_stream(rx));
        let response = Client::new().send(put).await.unwrap();
        let mut body = response.into_body();
        let mut echoed = String::new();
        for i in 1..=5 {
            // Chunks may be split or merged on the way: read up to this ping's end.
            while !echoed.ends_with(&format!("ping {};", i - 1)) {
                let chunk = body.next().await.unwrap().unwrap();
                echoed.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            if i < 5 {
                tx.send(Ok(Bytes::from(format!("ping {i};"))))
                    .await
                    .unwrap();
            }
        }
        drop(tx);
        assert!(body.next().await.is_none());
        assert_eq!(echoed, "ping 0;ping 1;ping 2;ping 3;ping 4;");
    });
}

/// Node answers 413 and closes without reading the upload: that answer is the result, not
/// the write's broken pipe.
#[test]
fn node_refusing_an_upload_mid_way_is_the_answer() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        let post = request(Method::POST, node.url(0, "/reject"), vec![b'u'; 16 << 20]);
        let response = client.send(post).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(response).await, "too large");
    });
}

#[test]
fn node_connection_close_is_not_pooled() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        let a = text(client.get(node.url(0, "/close")).await.unwrap()).await;
        let b = text(client.get(node.url(0, "/conn")).await.unwrap()).await;
        let c = text(client.get(node.url(0, "/conn")).await.unwrap()).await;
        assert_ne!(a, b);
        assert_eq!(b, c);
    });
}

#[test]
fn node_faults_are_errors_not_truncated_bodies() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        for path in ["/destroy", "/destroy-chunked"] {
            let response = client.get(node.url(0, path)).await.unwrap();
            let err = response.into_body().bytes().await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Io, "{path}: {err}");
        }
        // A head over the 64 KiB limit: an error, and nothing buffered without bound.
        let err = client
            .get(node.url(0, "/big-header?n=200000"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BadResponse, "{err}");
        // Just under it is fine.
        let big = client
            .get(node.url(0, "/big-header?n=60000"))
            .await
            .unwrap();
        assert_eq!(big.headers()["x-big"].len(), 60_000);
        assert_eq!(text(big).await, "ok");

        // Node's own limit on request heads (16 KiB): its 431 is the answer, on a connection
        // that is not reused.
        let big = Request::builder()
            .uri(node.url(0, "/conn"))
            .header("x-big", "b".repeat(20_000))
            .body(Body::empty())
            .unwrap();
        let response = client.send(big).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let _ = text(response).await;
        assert!(client.get(node.url(0, "/conn")).await.is_ok());

        let timed = Client::builder()
            .timeout(Duration::from_millis(200))
            .build();
        let err = timed.get(node.url(0, "/silent")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Timeout);
        let mut body = timed
            .get(node.url(0, "/stall-body"))
            .await
            .unwrap()
            .into_body();
        assert_eq!(body.next().await.unwrap().unwrap(), "part");
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    });
}

#[test]
fn node_obs_text_header_values_arrive_as_bytes() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let response = Client::new().get(node.url(0, "/latin")).await.unwrap();
        // Node writes the string as UTF-8: bytes above 0x7f (obs-text), kept as they came.
        assert_eq!(
            response.headers()["x-latin"].as_bytes(),
            "café ÿ".as_bytes()
        );
        assert!(response.headers()["x-latin"].to_str().is_err());
    });
}

#[test]
fn node_redirects_follow_the_method_and_body_rules() {
    let Some(node) = node(30_000) else { return };
    run(async {
        let client = Client::new();
        // GET through every redirect status, with a relative Location.
        for code in [301, 302, 303, 307, 308] {
            let url = node.url(0, &format!("/redirect?code={code}&to=echo%3Fr%3D{code}"));
            let response = client.get(url).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{code}");
            let echo = text(response).await;
            assert!(
                echo.starts_with(&format!("GET\n/echo?r={code}\n")),
                "{echo}"
            );
        }
        // 303 turns a POST into a bodiless GET.
        let post = request(
            Method::POST,
            node.url(0, "/redirect?code=303&to=/echo"),
            "form",
        );
        let echo = text(client.send(post).await.unwrap()).await;
        assert!(echo.starts_with("GET\n"), "{echo}");
        assert_eq!((field(&echo, "body"), field(&echo, "clen")), ("", "-"));
        // A 301 or 302 turns a POST into a bodiless GET too; a 307 or 308 sends it again, body
        // and all (see `Client`).
        for code in [301, 302] {
            let url = node.url(0, &format!("/redirect?code={code}&to=/echo"));
            let echo = text(client.send(request(Method::POST, url, "x")).await.unwrap()).await;
            assert!(echo.starts_with("GET\n"), "{code}: {echo}");
            assert_eq!((field(&echo, "body"), field(&echo, "clen")), ("", "-"));
        }
        for code in [307, 308] {
            let url = node.url(0, &format!("/redirect?code={code}&to=/echo"));
            let echo = text(client.send(request(Method::POST, url, "x")).await.unwrap()).await;
            assert!(echo.starts_with("POST\n"), "{code}: {echo}");
            assert_eq!((field(&echo, "body"), field(&echo, "clen")), ("x", "1"));
        }
        // A loop ends with TooManyRedirects.
        let err = client.get(node.url(0, "/loop")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooManyRedirects);

        // Credentials stay on their origin: dropped for the other listener, kept on this one.
        let credentials = |url: String| {
            Request::builder()
                .uri(url)
                .header(header::AUTHORIZATION, "Bearer secret")
                .header(header::COOKIE, "session=1")
                .body(Body::empty())
                .unwrap()
        };
        let other = format!("http://127.0.0.1:{}/echo", node.ports[1]);
        let echo = text(
            client
                .send(credentials(
                    node.url(0, &format!("/redirect?code=302&to={other}")),
                ))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((field(&echo, "auth"), field(&echo, "cookie")), ("-", "-"));
        assert_eq!(field(&echo, "host"), format!("127.0.0.1:{}", node.ports[1]));
        let echo = text(
            client
                .send(credentials(node.url(0, "/redirect?code=307&to=/echo")))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(field(&echo, "auth"), "Bearer secret");
    });
}

// ---------------------------------------------------------------------------------------------
// Python
// ---------------------------------------------------------------------------------------------

fn python(protocol: &str) -> Option<Script> {
    support::start("python3", "py_server.py", &[protocol])
}

#[test]
fn python_http10_server_closes_after_each_response() {
    let Some(py) = python("HTTP/1.0") else { return };
    run(async {
        let client = Client::new();
        let a = client.get(py.url(0, "/port")).await.unwrap();
        assert_eq!(a.version(), untangle::http::Version::HTTP_10);
        let a = text(a).await;
        let b = text(client.get(py.url(0, "/port")).await.unwrap()).await;
        assert_ne!(
            a, b,
            "an HTTP/1.0 response without keep-alive is never reused"
        );
        // No Content-Length: the body ends with the connection.
        let open = client.get(py.url(0, "/nolength")).await.unwrap();
        assert!(open.headers().get(header::CONTENT_LENGTH).is_none());
        assert_eq!(text(open).await, "until close");
        // send_error's HTML page, and a POST body.
        let missing = client.get(py.url(0, "/missing")).await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(text(missing).await.contains("404"));
        let post = request(Method::POST, py.url(0, "/echo"), "posted");
        assert_eq!(text(client.send(post).await.unwrap()).await, "posted");
    });
}

#[test]
fn python_http11_server_keeps_the_connection() {
    let Some(py) = python("HTTP/1.1") else { return };
    run(async {
        let client = Client::new();
        let a = text(client.get(py.url(0, "/port")).await.unwrap()).await;
        let head = client
            .send(request(Method::HEAD, py.url(0, "/port"), Body::empty()))
            .await
            .unwrap();
        assert!(head.headers().contains_key(header::CONTENT_LENGTH));
        assert_eq!(text(head).await, "");
        // Python answers `Expect: 100-continue` with a 100 before reading the body.
        let mut post = request(Method::POST, py.url(0, "/echo"), vec![b'p'; 50_000]);
        post.headers_mut()
            .insert(header::EXPECT, "100-continue".parse().unwrap());
        assert_eq!(text(client.send(post).await.unwrap()).await.len(), 50_000);
        let b = text(client.get(py.url(0, "/port")).await.unwrap()).await;
        assert_eq!(a, b, "one connection throughout");

        // HTTP/1.1 without a length: close-delimited, then a new connection.
        let open = client.get(py.url(0, "/nolength")).await.unwrap();
        assert_eq!(text(open).await, "until close");
        let c = text(client.get(py.url(0, "/port")).await.unwrap()).await;
        assert_ne!(b, c);
    });
}
