//! UDP behaviour as tokio's `tests/udp.rs`, async-io's `udp_send_recv` and async-net test it,
//! ported to untangle's API: connected and unconnected exchanges, a refused peer, sharing one
//! socket between tasks, many concurrent receivers, datagram boundaries, zero-length and large
//! datagrams, truncation, IPv6 loopback and socket options.

mod common;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

use common::run;
use untangle::net::UdpSocket;
use untangle::{spawn, yield_now};

const MSG: &[u8] = b"hello";

async fn bound() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn settle() {
    for _ in 0..4 {
        yield_now().await;
    }
}

#[test]
fn connected_send_recv_and_peek_in_both_directions() {
    run(async {
        let (a, b) = (bound().await, bound().await);
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        let mut buf = [0; 32];
        assert_eq!(a.send(MSG).await.unwrap(), MSG.len());
        let n = b.peek(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], MSG);
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], MSG);
        b.send_to(b"back", a.local_addr().unwrap()).await.unwrap();
        let (n, from) = a.peek_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], b.local_addr().unwrap()));
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"back"[..], b.local_addr().unwrap()));
    });
}

#[test]
fn an_unconnected_socket_has_no_peer() {
    run(async {
        let a = bound().await;
        let err = a.peer_addr().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{err:?}");
        let err = a.send(MSG).await.unwrap_err();
        // Linux: EDESTADDRREQ.
        assert_ne!(err.kind(), ErrorKind::WouldBlock, "{err:?}");
    });
}

/// tokio's `send_to_recv_closed_returns_err`: the ICMP port-unreachable for a datagram sent to
/// a closed port makes the connected socket's next receive fail instead of waiting forever.
#[test]
fn receiving_after_sending_to_a_closed_port_fails() {
    run(async {
        let sender = bound().await;
        let receiver = bound().await;
        let addr = receiver.local_addr().unwrap();
        drop(receiver);
        sender.connect(addr).await.unwrap();
        sender.send(MSG).await.unwrap();
        let err = sender.recv(&mut [0; 32]).await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
    });
}

#[test]
fn a_connected_socket_receives_only_from_its_peer() {
    run(async {
        let (a, b, stranger) = (bound().await, bound().await, bound().await);
        b.connect(a.local_addr().unwrap()).await.unwrap();
        stranger
            .send_to(b"stranger", b.local_addr().unwrap())
            .await
            .unwrap();
        a.send_to(b"peer", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 16];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"peer");
    });
}

/// tokio's `split`: one socket shared by a sending task and a receiving task.
#[test]
fn one_socket_shared_by_a_sender_and_a_receiver() {
    run(async {
        let socket = Rc::new(bound().await);
        let addr = socket.local_addr().unwrap();
        let sender = socket.clone();
        spawn(async move {
            settle().await;
            sender.send_to(MSG, addr).await.unwrap();
        })
        .detach();
        let mut buf = [0; 32];
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (MSG, addr));
    });
}

/// tokio's `split_chan`: an echo server whose receiving and sending tasks share the socket.
#[test]
fn echo_through_a_channel_between_tasks_sharing_one_socket() {
    run(async {
        let server = Rc::new(bound().await);
        let addr = server.local_addr().unwrap();
        let (tx, rx) = async_channel::bounded::<(Vec<u8>, SocketAddr)>(16);
        let s = server.clone();
        let echo = spawn(async move {
            while let Ok((bytes, to)) = rx.recv().await {
                s.send_to(&bytes, to).await.unwrap();
            }
        });
        let r = server.clone();
        let recv = spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..10 {
                let (n, from) = r.recv_from(&mut buf).await.unwrap();
                tx.send((buf[..n].to_vec(), from)).await.unwrap();
            }
        });
        let client = bound().await;
        let mut buf = [0; 64];
        for i in 0..10u8 {
            client.send_to(&[i; 3], addr).await.unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&[i; 3][..], addr));
        }
        recv.await;
        echo.await;
    });
}

#[test]
fn many_tasks_receiving_on_one_socket_each_get_a_datagram() {
    run(async {
        const N: usize = 16;
        let socket = Rc::new(bound().await);
        let addr = socket.local_addr().unwrap();
        let receivers: Vec<_> = (0..N)
            .map(|_| {
                let socket = socket.clone();
                spawn(async move {
                    let mut buf = [0; 8];
                    let n = socket.recv(&mut buf).await.unwrap();
                    buf[0..n].to_vec()
                })
            })
            .collect();
        settle().await;
        let sender = bound().await;
        for i in 0..N as u8 {
            sender.send_to(&[i], addr).await.unwrap();
        }
        let mut got: Vec<u8> = Vec::new();
        for r in receivers {
            let d = r.await;
            assert_eq!(d.len(), 1);
            got.push(d[0]);
        }
        got.sort_unstable();
        assert_eq!(got, (0..N as u8).collect::<Vec<_>>());
    });
}

#[test]
fn datagram_boundaries_are_kept_and_long_datagrams_are_truncated() {
    run(async {
        let (a, b) = (bound().await, bound().await);
        let to = b.local_addr().unwrap();
        a.send_to(b"one", to).await.unwrap();
        a.send_to(b"two two", to).await.unwrap();
        a.send_to(b"", to).await.unwrap();
        a.send_to(b"after", to).await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(b.recv_from(&mut buf).await.unwrap().0, 3);
        assert_eq!(&buf[..3], b"one");
        // A buffer shorter than the datagram gets its start; the rest is discarded.
        let mut small = [0; 3];
        assert_eq!(b.recv_from(&mut small).await.unwrap().0, 3);
        assert_eq!(&small, b"two");
        // A zero-length datagram is a datagram.
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((n, from), (0, a.local_addr().unwrap()));
        let n = b.recv_from(&mut buf).await.unwrap().0;
        assert_eq!(&buf[..n], b"after");
    });
}

#[test]
fn the_largest_ipv4_datagram_goes_through_and_a_larger_one_fails() {
    run(async {
        let (a, b) = (bound().await, bound().await);
        // 65535 - 20 (IP header) - 8 (UDP header).
        let big: Vec<u8> = (0..65_507).map(|i| (i % 251) as u8).collect();
        assert_eq!(
            a.send_to(&big, b.local_addr().unwrap()).await.unwrap(),
            big.len()
        );
        let mut buf = vec![0; 70_000];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &big[..]);
        let too_big = vec![0u8; 65_508];
        let err = a
            .send_to(&too_big, b.local_addr().unwrap())
            .await
            .unwrap_err();
        assert_ne!(err.kind(), ErrorKind::WouldBlock, "{err:?}");
    });
}

#[test]
fn ipv6_loopback_send_recv() {
    run(async {
        let a = match UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await {
            Ok(a) => a,
            Err(err) => {
                eprintln!("skipped: no IPv6 loopback on this machine ({err})");
                return;
            }
        };
        let b = UdpSocket::bind("[::1]:0").await.unwrap();
        assert!(a.local_addr().unwrap().is_ipv6());
        a.connect(b.local_addr().unwrap()).await.unwrap();
        a.send(MSG).await.unwrap();
        let mut buf = [0; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (MSG, a.local_addr().unwrap()));
    });
}

#[test]
fn ttl_and_broadcast_round_trip() {
    run(async {
        let a = bound().await;
        a.set_ttl(42).unwrap();
        assert_eq!(a.ttl().unwrap(), 42);
        assert!(!a.broadcast().unwrap());
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_broadcast(false).unwrap();
        assert!(!a.broadcast().unwrap());
    });
}

#[test]
fn a_cancelled_recv_loses_no_datagram() {
    run(async {
        let (a, b) = (bound().await, bound().await);
        let b = Rc::new(b);
        let waiting = b.clone();
        let recv = spawn(async move { waiting.recv_from(&mut [0; 8]).await.unwrap().0 });
        settle().await;
        assert!(recv.cancel().await.is_none());
        a.send_to(b"kept", b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0; 8];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"kept");
    });
}

#[test]
fn multicast_options_round_trip() {
    run(async {
        let a = bound().await;
        assert!(a.multicast_loop_v4().unwrap());
        a.set_multicast_loop_v4(false).unwrap();
        assert!(!a.multicast_loop_v4().unwrap());
        assert_eq!(a.multicast_ttl_v4().unwrap(), 1);
        a.set_multicast_ttl_v4(8).unwrap();
        assert_eq!(a.multicast_ttl_v4().unwrap(), 8);
        if let Ok(v6) = UdpSocket::bind("[::1]:0").await {
            v6.set_multicast_loop_v6(false).unwrap();
            assert!(!v6.multicast_loop_v6().unwrap());
            v6.set_multicast_loop_v6(true).unwrap();
            assert!(v6.multicast_loop_v6().unwrap());
        }
    });
}

#[test]
fn joining_and_leaving_a_multicast_group() {
    run(async {
        let group = Ipv4Addr::new(239, 255, 42, 99);
        let member = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        member
            .join_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap();
        // Joining twice on one interface is refused.
        assert!(member
            .join_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .is_err());
        member
            .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap();
        // Leaving a group not joined is an error.
        assert!(member
            .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .is_err());
        // Not a multicast address.
        assert!(member
            .join_multicast_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::LOCALHOST)
            .is_err());
    });
}
