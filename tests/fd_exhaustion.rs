//! fd exhaustion: with `RLIMIT_NOFILE` lowered and the fd table full, the accept loop backs
//! off instead of spinning (the process stays near idle), existing connections are still
//! served, and new connections are accepted again once fds are freed.
//!
//! The server runs in a child process (this test binary re-run with `UNTANGLE_FD_CHILD=1`,
//! filtered to the child's test), so that lowering the limit and filling the table do not
//! disturb other tests. Parent and child talk over the child's stdin and stdout.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "UNTANGLE_FD_CHILD";

/// The child's side: lower the limit, serve, then fill and free the fd table on command.
#[test]
fn child_process_role_for_the_fd_exhaustion_test() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // Only meaningful as the child of the test below.
    }
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: None,
        },
    )
    .or_else(|_| {
        let hard = rustix::process::getrlimit(Resource::Nofile).maximum;
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(256),
                maximum: hard,
            },
        )
    })
    .expect("lower RLIMIT_NOFILE");
    common::install_capture_logger();
    let addr = common::serve_in_thread(
        |s| s,
        |req: untangle::http::Request<untangle::http::Body>| async move {
            format!("ok {}", req.uri().path())
        },
    );
    println!("CHILD addr {addr}");
    let mut held: Vec<std::fs::File> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        match line.expect("command").as_str() {
            "fill" => {
                loop {
                    match std::fs::File::open("/dev/null") {
                        Ok(file) => held.push(file),
                        Err(err) => {
                            assert_eq!(err.raw_os_error(), Some(24), "EMFILE expected: {err}");
                            break;
                        }
                    }
                }
                println!("CHILD filled {}", held.len());
            }
            "free" => {
                held.clear();
                println!("CHILD freed {}", common::logged("accept failed"));
            }
            _ => return,
        }
    }
}

struct ChildServer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl ChildServer {
    fn start() -> (ChildServer, SocketAddr) {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process_role_for_the_fd_exhaustion_test",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let mut server = ChildServer {
            lines: BufReader::new(child.stdout.take().expect("piped stdout")).lines(),
            child,
        };
        let addr = server.expect("addr").parse().unwrap();
        (server, addr)
    }

    /// The rest of the next line with `CHILD <word>` (libtest may print its own text
    /// before it on the same line).
    fn expect(&mut self, word: &str) -> String {
        let marker = format!("CHILD {word}");
        for line in &mut self.lines {
            let line = line.expect("child output");
            if let Some(at) = line.find(&marker) {
                return line[at + marker.len()..].trim().to_string();
            }
        }
        panic!("child exited before printing `{word}`");
    }

    fn command(&mut self, command: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// User + system CPU time of the child so far.
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split(' ').collect();
        // Fields 14 and 15 of stat (utime, stime), counted from 1 including pid and comm.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz = rustix::param::clock_ticks_per_second();
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(stream: &mut TcpStream, path: &str) -> common::RawResponse {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // Read one response: head plus its content-length body.
    loop {
        let n = stream.read(&mut chunk).expect("response");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if buf.len() >= end + 4 + len {
                return common::parse_responses(&buf).remove(0);
            }
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(common::HANG_GUARD)).unwrap();
    stream
}

#[test]
fn accept_loop_backs_off_when_out_of_fds_keeps_serving_and_recovers() {
    let _guard = common::watchdog("fd exhaustion");
    let (mut child, addr) = ChildServer::start();

    let mut existing = connect(addr);
    assert_eq!(request(&mut existing, "/before").body, b"ok /before");

    child.command("fill");
    let filled: usize = child.expect("filled").parse().unwrap();
    assert!(filled > 0);

    // The kernel completes this handshake, but the server cannot accept it: EMFILE.
    let mut waiting = connect(addr);
    write!(waiting, "GET /waiting HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();

    // The accept loop backs off instead of spinning on the pending connection: over a
    // second the child uses a small fraction of a CPU (a busy loop would use all of it).
    std::thread::sleep(Duration::from_millis(100));
    let before = child.cpu_time();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = child.cpu_time() - before;
    let wall = started.elapsed();
    assert!(
        used < wall / 5,
        "the child used {used:?} of CPU in {wall:?} while out of fds: the accept loop spins"
    );

    // Existing connections are still served.
    assert_eq!(request(&mut existing, "/during").body, b"ok /during");

    // Once fds are free, the waiting connection is accepted and answered.
    child.command("free");
    assert_eq!(
        child.expect("freed"),
        "true",
        "running out of fds was not logged"
    );
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(9).any(|w| w == b"ok /waiti") {
        let n = waiting
            .read(&mut chunk)
            .expect("the waiting connection is answered");
        assert!(n > 0, "the waiting connection was closed unanswered");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(request(&mut connect(addr), "/after").body, b"ok /after");
    eprintln!("child CPU while out of fds: {used:?} in {wall:?} ({filled} fds filled)");
}
