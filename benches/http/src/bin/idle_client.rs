//! Client for the idle-connections test (idle.sh): opens N keep-alive connections to a server,
//! makes one request on each, holds them idle while the script measures the server's memory,
//! then makes a second request on every connection to prove all are still served.
//!
//! Usage: `idle_client ADDR N`. Source addresses are spread over 127.0.0.0/8 (bind before
//! connect), so that N is not capped by one address's ephemeral ports. Protocol with the
//! script on stdin/stdout: prints `opened N`, waits for a line on stdin, makes the second round,
//! prints `served N`, waits for another line, then exits (closing everything).
use std::io::{BufRead, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Instant;

use rustix::net::{AddressFamily, SocketType};

const REQUEST: &[u8] = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n";
/// Connections per source address; well below the ephemeral port range (about 28,000).
const PER_SOURCE: usize = 10_000;

fn connect(server: SocketAddr, i: usize) -> std::io::Result<TcpStream> {
    let n = (i / PER_SOURCE) as u32 + 1;
    // 127.1.x.y: never 127.0.0.1, so the server's own address stays out of the way.
    let source = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + n);
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    rustix::net::bind(&fd, &SocketAddrV4::new(source, 0))?;
    rustix::net::connect(&fd, &server)?;
    Ok(TcpStream::from(fd))
}

/// Sends one request and reads its whole response (`content-length: 13`, then 13 bytes).
fn exchange(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    stream.write_all(REQUEST)?;
    let mut got = 0;
    loop {
        let n = stream.read(&mut buf[got..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
        if let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") {
            if got >= end + 4 + 13 {
                return Ok(());
            }
        }
    }
}

fn wait_for_line() {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let server: SocketAddr = args.next().expect("ADDR").parse().expect("ADDR");
    let n: usize = args.next().expect("N").parse().expect("N");
    let mut buf = vec![0u8; 4096];
    let mut conns = Vec::with_capacity(n);
    let start = Instant::now();
    for i in 0..n {
        let mut stream = connect(server, i).unwrap_or_else(|e| panic!("connection {i}: {e}"));
        stream.set_nodelay(true).ok();
        exchange(&mut stream, &mut buf).unwrap_or_else(|e| panic!("request 1 on {i}: {e}"));
        conns.push(stream);
    }
    eprintln!(
        "opened {n} connections in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    println!("opened {n}");
    std::io::stdout().flush().unwrap();
    wait_for_line();
    let start = Instant::now();
    let mut served = 0;
    for (i, stream) in conns.iter_mut().enumerate() {
        match exchange(stream, &mut buf) {
            Ok(()) => served += 1,
            Err(e) => eprintln!("request 2 on connection {i}: {e}"),
        }
    }
    eprintln!("second round in {:.1} s", start.elapsed().as_secs_f64());
    println!("served {served}");
    std::io::stdout().flush().unwrap();
    wait_for_line();
}
