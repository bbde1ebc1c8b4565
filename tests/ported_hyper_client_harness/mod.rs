//! The scripted server of the hyper client ports (`tests/ported_hyper_client*.rs`): hyper's
//! `test!` harness, a std thread that expects exact request bytes and answers exact bytes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use untangle::http::{Body, Client, Method, Request, Response};

use super::common::run;

/// The `user-agent` line the client adds.
pub fn ua() -> String {
    format!("user-agent: untangle/{}\r\n", env!("CARGO_PKG_VERSION"))
}

/// One accepted connection of a scripted server.
pub struct Sock(pub TcpStream);

impl Sock {
    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: &str) {
        let mut buf = vec![0; expected.len()];
        let mut n = 0;
        while n < buf.len() {
            match self.0.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(err) => panic!("reading the request ({:?} so far): {err}", s(&buf[..n])),
            }
        }
        assert_eq!(s(&buf[..n]), expected, "the request's bytes");
    }

    pub fn reply(&mut self, bytes: impl AsRef<[u8]>) {
        self.0.write_all(bytes.as_ref()).expect("write the reply");
    }
}

pub fn s(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

/// Starts a server thread on 127.0.0.1:0 that runs `script` with its listener's accept.
pub fn scripted<F>(script: F) -> (SocketAddr, thread::JoinHandle<()>)
where
    F: FnOnce(&mut dyn FnMut() -> Sock, SocketAddr) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut accept = || {
            let (sock, _) = listener.accept().expect("accept");
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            sock.set_write_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            Sock(sock)
        };
        script(&mut accept, addr);
    });
    (addr, handle)
}

/// One exchange, hyper's `test!`: the server expects `expected` (`{addr}` and `{ua}`
/// replaced), answers `reply` and closes; returns the response with its body read.
pub fn exchange(
    expected: &str,
    reply: impl AsRef<[u8]> + Send + 'static,
    request: impl FnOnce(SocketAddr) -> Request<Body>,
) -> Result<(Response<()>, Bytes), untangle::http::Error> {
    let expected = expected.to_owned();
    let (addr, server) = scripted(move |accept, addr| {
        let mut sock = accept();
        let expected = expected
            .replace("{addr}", &addr.to_string())
            .replace("{ua}", &ua());
        sock.expect(&expected);
        sock.reply(reply);
    });
    let request = request(addr);
    let result = run(async {
        let response = Client::new().send(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.bytes().await?;
        Ok((Response::from_parts(parts, ()), body))
    });
    server.join().expect("the scripted server failed");
    result
}

pub fn req(method: Method, url: String) -> http::request::Builder {
    Request::builder().method(method).uri(url)
}

pub const REPLY_OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

pub fn stream_of(text: &'static str) -> Body {
    Body::from_stream(futures_lite::stream::iter([Ok::<_, std::io::Error>(
        Bytes::from_static(text.as_bytes()),
    )]))
}

pub fn get_err(
    path: &'static str,
    reply: impl AsRef<[u8]> + Send + 'static,
) -> untangle::http::Error {
    let expected = format!("GET {path} HTTP/1.1\r\nhost: {{addr}}\r\n{{ua}}\r\n");
    exchange(&expected, reply, |a| {
        req(Method::GET, format!("http://{a}{path}"))
            .body(Body::empty())
            .unwrap()
    })
    .expect_err("a response that must fail")
}

pub fn get_ok(
    path: &'static str,
    reply: impl AsRef<[u8]> + Send + 'static,
) -> (Response<()>, Bytes) {
    let expected = format!("GET {path} HTTP/1.1\r\nhost: {{addr}}\r\n{{ua}}\r\n");
    exchange(&expected, reply, |a| {
        req(Method::GET, format!("http://{a}{path}"))
            .body(Body::empty())
            .unwrap()
    })
    .unwrap()
}
