//! Helpers shared by the integration tests: hang guards and panic-payload inspection.
//!
//! Each test binary uses only some of these.
#![allow(dead_code)]

pub mod oracle;

use std::any::Any;
use std::future::Future;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The generous upper bound every test gets before it is declared hung.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// Runs `future` inside the loop's own timer-based hang guard.
///
/// Timers are served by the same loop, so this cannot catch a loop that never wakes up at all
/// (a timer would wake it and hide a lost wake-up); tests of wake-ups use [`watchdog`] instead.
pub async fn within<F: Future>(future: F) -> F::Output {
    untangle::time::timeout(HANG_GUARD, future)
        .await
        .expect("test did not finish within the 30 s hang guard")
}

/// `block_on(within(future))`.
pub fn run<F: Future>(future: F) -> F::Output {
    untangle::block_on(within(future))
}

/// A thread that aborts the whole test process if it is not dropped within [`HANG_GUARD`].
///
/// Unlike [`within`] it does not rely on the loop waking up, so it catches lost wake-ups and
/// starved timers. Aborting is the only way another thread can end a hung test.
pub struct Watchdog {
    _done: mpsc::Sender<()>,
}

pub fn watchdog(test: &'static str) -> Watchdog {
    let (done, wait) = mpsc::channel::<()>();
    thread::Builder::new()
        .name(format!("watchdog-{test}"))
        .spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG_GUARD) {
                eprintln!("watchdog: `{test}` still running after {HANG_GUARD:?}: hung, aborting");
                std::process::abort();
            }
        })
        .expect("spawn watchdog thread");
    Watchdog { _done: done }
}

/// The message of a panic payload (`&str` or `String`), or an empty string.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::new()
    }
}

/// Sets a shared flag when dropped: shows that a future's destructors ran.
pub struct DropFlag(pub std::rc::Rc<std::cell::Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// Starts an HTTP server with `configure`d settings on its own thread (its own loop); returns
/// the address, bound before this returns. The thread serves until the process ends.
pub fn serve_in_thread<C, H, Fut, R>(configure: C, handler: H) -> std::net::SocketAddr
where
    C: FnOnce(untangle::http::Server) -> untangle::http::Server + Send + 'static,
    H: Fn(untangle::http::Request<untangle::http::Body>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: untangle::http::IntoResponse,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    thread::spawn(move || {
        let result = untangle::block_on(async move {
            let listener = untangle::net::TcpListener::try_from(listener)?;
            configure(untangle::http::Server::from_listener(listener))
                .serve(handler)
                .await
        });
        if let Err(err) = result {
            eprintln!("server thread ended: {err}");
        }
    });
    addr
}

/// One response as read off the wire by [`read_responses`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits everything a server sent on one connection into responses (1xx skipped), framed by
/// Content-Length, chunked, or until the end. Panics on bytes that are not valid responses:
/// a test server must never send those.
pub fn parse_responses(mut data: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let end = find(data, b"\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "incomplete response head: {:?}",
                String::from_utf8_lossy(data)
            )
        });
        let head = std::str::from_utf8(&data[..end]).expect("response head is UTF-8");
        data = &data[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "bad status line {status_line:?}"
        );
        let status: u16 = status_line[9..12].parse().expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line has a colon");
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            continue;
        }
        if let Some(len) = response.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            assert!(data.len() >= len, "response body cut short");
            response.body = data[..len].to_vec();
            data = &data[len..];
        } else if response
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            loop {
                let line_end = find(data, b"\r\n").expect("chunk size line");
                let size = usize::from_str_radix(
                    std::str::from_utf8(&data[..line_end]).unwrap().trim(),
                    16,
                )
                .expect("chunk size");
                data = &data[line_end + 2..];
                if size == 0 {
                    assert!(data.starts_with(b"\r\n"), "trailers after last chunk");
                    data = &data[2..];
                    break;
                }
                response.body.extend_from_slice(&data[..size]);
                data = &data[size + 2..];
            }
        } else if !(status == 204 || status == 304) {
            response.body = data.to_vec();
            data = &[];
        }
        out.push(response);
    }
    out
}

/// Sends `bytes` on a new connection to `addr`, half-closes, and reads until the server
/// closes (or `HANG_GUARD` passes: then panics). Returns the raw bytes received.
pub fn exchange_raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    // The server may close before reading everything (a rejected request): then the write
    // fails, which is fine; the response is already on its way.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(err) => panic!("reading responses: {err} (after {} bytes)", out.len()),
        }
    }
}

/// Raises this process's soft `RLIMIT_NOFILE` to its hard limit; returns the new soft limit
/// (`u64::MAX` for unlimited).
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The number of open fds of this process.
pub fn open_fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
        - 1 // the directory handle of read_dir itself
}

/// The number of open sockets of this process: unlike [`open_fd_count`], it does not move when
/// another test's thread exits and its loop closes its poller fds (epoll, eventfd, timerfd).
pub fn open_socket_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Waits for a child process (a Python client) under the [`HANG_GUARD`] (killing it past
/// that), asserts that it succeeded and returns its standard output and error.
pub fn finish_child(mut child: std::process::Child) -> (String, String) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "child process failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Records `log` messages at `warn` and `error` level for tests that check what the library
/// reports (install once per test binary with [`install_capture_logger`]).
pub struct CaptureLogger;

pub static CAPTURED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

impl log::Log for CaptureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            CAPTURED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

pub fn install_capture_logger() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CaptureLogger).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Whether a captured log line contains `needle`.
pub fn logged(needle: &str) -> bool {
    CAPTURED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|l| l.contains(needle))
}

/// A blocking client connection whose reads give up after [`HANG_GUARD`].
pub fn connect(addr: std::net::SocketAddr) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream
}
