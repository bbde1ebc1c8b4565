//! The harness of the hyper server ports (`tests/ported_hyper_server*.rs`): hyper's `serve()`
//! and `TestService` — a handler that reads each request body whole, reports it on a channel
//! and answers a canned reply — and a blocking client that reads responses one at a time.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;

use crate::common::HANG_GUARD;
use untangle::http::{Body, IntoResponse, Request, Server, StatusCode};

/// What the handler made of each request body: all of it, or the error reading it.
pub type Bodies = mpsc::Receiver<Result<Vec<u8>, String>>;

/// Starts a server whose handler reads the whole request body, reports it (or its error) on
/// the returned channel, and answers `reply()` — or 500 after a body error, as hyper's
/// `TestService` does.
pub fn serve<C, F, R>(configure: C, reply: F) -> (SocketAddr, Bodies)
where
    C: FnOnce(Server) -> Server + Send + 'static,
    F: Fn() -> R + Send + 'static,
    R: IntoResponse,
{
    let (tx, rx) = mpsc::channel();
    let addr = crate::common::serve_in_thread(configure, move |req: Request<Body>| {
        let tx = tx.clone();
        // Built before the body is read: a reply depends on nothing in the request.
        let response = reply().into_response();
        async move {
            match req.into_body().bytes().await {
                Ok(body) => {
                    let _ = tx.send(Ok(body.to_vec()));
                    response
                }
                Err(err) => {
                    let _ = tx.send(Err(err.to_string()));
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    });
    (addr, rx)
}

pub fn body_of(bodies: &Bodies) -> Result<Vec<u8>, String> {
    bodies.recv_timeout(HANG_GUARD).expect("the handler ran")
}

/// A blocking client connection that reads responses one at a time.
pub struct Client {
    pub stream: TcpStream,
    pending: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        Client {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).expect("write");
    }

    /// Reads more; false at end of stream.
    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => false,
            Err(err) => panic!("read: {err}"),
        }
    }

    pub fn take(&mut self, n: usize) -> Vec<u8> {
        while self.pending.len() < n {
            assert!(self.fill(), "closed before {n} bytes: {:?}", self.text());
        }
        self.pending.drain(..n).collect()
    }

    /// The next response head, lower-cased, through its blank line.
    pub fn head(&mut self) -> String {
        loop {
            if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.take(end + 4);
                return String::from_utf8(head).unwrap().to_ascii_lowercase();
            }
            assert!(self.fill(), "closed inside a head: {:?}", self.text());
        }
    }

    /// One whole response: its head and the raw body bytes as framed (chunk lines included).
    pub fn response(&mut self) -> (String, Vec<u8>) {
        let head = self.head();
        if let Some(len) = header_value(&head, "content-length") {
            let len = len.parse().unwrap();
            return (head, self.take(len));
        }
        if header_value(&head, "transfer-encoding").is_some() {
            let mut raw = Vec::new();
            loop {
                while !self.pending.windows(2).any(|w| w == b"\r\n") {
                    assert!(self.fill(), "closed inside a chunk size line");
                }
                let line_end = self.pending.windows(2).position(|w| w == b"\r\n").unwrap();
                let line = self.take(line_end + 2);
                let size = usize::from_str_radix(std::str::from_utf8(&line).unwrap().trim(), 16)
                    .expect("chunk size");
                raw.extend_from_slice(&line);
                raw.extend(self.take(size + 2));
                if size == 0 {
                    return (head, raw);
                }
            }
        }
        (head, Vec::new())
    }

    /// Everything until the server closes.
    pub fn rest(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.pending)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

/// The value of `name` in a lower-cased head.
pub fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n")
        .skip(1)
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Sends `request` (which should close the connection) and returns everything the server
/// sent, lower-cased head then body, as text.
pub fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut client = Client::connect(addr);
    client.send(request);
    String::from_utf8(client.rest()).unwrap()
}

pub const CLOSE_GET: &str = "GET / HTTP/1.1\r\nHost: example.domain\r\nConnection: close\r\n\r\n";
