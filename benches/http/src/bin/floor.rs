//! The floor: a raw edge-triggered epoll loop, no executor, the same response bytes.
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

use rustix::event::epoll;
use untangle_http_bench::{addr, Exchange};

struct Conn {
    stream: TcpStream,
    exchange: Exchange,
}

fn main() {
    let listener = TcpListener::bind(addr()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let in_et = epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::ET;
    epoll::add(
        &ep,
        listener.as_fd(),
        epoll::EventData::new_u64(0),
        epoll::EventFlags::IN,
    )
    .unwrap();
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut next = 1u64;
    let mut events = Vec::with_capacity(1024);
    loop {
        events.clear();
        epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), None).unwrap();
        for ev in events.iter() {
            let key = ev.data.u64();
            if key == 0 {
                while let Ok((stream, _)) = listener.accept() {
                    stream.set_nonblocking(true).unwrap();
                    stream.set_nodelay(true).unwrap();
                    epoll::add(&ep, stream.as_fd(), epoll::EventData::new_u64(next), in_et)
                        .unwrap();
                    conns.insert(
                        next,
                        Conn {
                            stream,
                            exchange: Exchange::default(),
                        },
                    );
                    next += 1;
                }
                continue;
            }
            let mut close = false;
            if let Some(c) = conns.get_mut(&key) {
                loop {
                    let spare = c.exchange.spare();
                    let space = spare.len();
                    match c.stream.read(spare) {
                        Ok(0) => {
                            close = true;
                            break;
                        }
                        Ok(n) => {
                            if c.stream.write_all(c.exchange.received(n)).is_err() {
                                close = true;
                                break;
                            }
                            // A short read drained the socket: edge-triggered, no EAGAIN read.
                            if n < space {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if close {
                if let Some(c) = conns.remove(&key) {
                    let _ = epoll::delete(&ep, c.stream.as_fd());
                }
            }
        }
    }
}
