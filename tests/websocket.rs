//! Protocol upgrades on the server (`untangle::http::upgrade`), driven through the WebSocket
//! chat of `examples/websocket.rs`: handshake, text and binary frames both ways, a first frame
//! in the handshake's packet, the close handshake, many clients at once, a client vanishing
//! mid-frame, a refused upgrade, and a graceful shutdown with upgraded connections open.
//!
//! Timing appears only as hang guards: every wait is for a condition.

mod common;

#[path = "../examples/websocket.rs"]
#[allow(dead_code)]
mod chat;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::Role;
use async_tungstenite::tungstenite::{Message, WebSocket};
use futures::StreamExt;
use untangle::http::{header, upgrade, Body, Client, Request, Response, Server};
use untangle::net::TcpStream;

use common::{run, HANG_GUARD};

/// The chat on its own thread, plus `GET /sources`: the number of fds registered with the
/// server's loop (listener and connections, the probe's own included), to check for leaks.
/// `returned` hears when `serve` has returned.
fn start_with(
    configure: impl FnOnce(Server) -> Server + Send + 'static,
    returned: Option<mpsc::Sender<()>>,
) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        untangle::block_on(async move {
            let server = configure(Server::from_listener(
                untangle::net::TcpListener::try_from(listener).unwrap(),
            ));
            let room = chat::Room::default();
            server
                .serve(move |req: Request<Body>| {
                    let room = room.clone();
                    async move {
                        if req.uri().path() == "/sources" {
                            Response::new(Body::from(untangle::__live_sources().to_string()))
                        } else {
                            chat::handle(room, req).await
                        }
                    }
                })
                .await
        })
        .unwrap();
        if let Some(returned) = returned {
            let _ = returned.send(());
        }
        // Upgraded connections outlive `serve`: keep the loop turning for them.
        untangle::block_on(std::future::pending::<()>());
    });
    addr
}

fn start() -> SocketAddr {
    start_with(|s| s, None)
}

const HANDSHAKE: &str = "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A masked client frame (RFC 6455 §5.2) with a payload under 126 bytes.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Sends `bytes` (the handshake and maybe more) on a blocking socket and reads the response
/// head; returns the socket, the head, and what arrived after it.
fn raw_handshake(addr: SocketAddr, bytes: &[u8]) -> (StdTcpStream, String, Vec<u8>) {
    let mut stream = StdTcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let rest = buf[end + 4..].to_vec();
            return (stream, head, rest);
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The live-source count of the server's loop, polled until it equals `want` (hang guard).
fn wait_sources(addr: SocketAddr, want: usize) {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let (mut stream, _, mut body) = raw_handshake(
            addr,
            b"GET /sources HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        stream.read_to_end(&mut body).unwrap();
        let count: usize = String::from_utf8(body).unwrap().parse().unwrap();
        if count == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sources stay at {count}, want {want}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

fn sources(addr: SocketAddr) -> usize {
    let (mut stream, _, mut body) = raw_handshake(
        addr,
        b"GET /sources HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    stream.read_to_end(&mut body).unwrap();
    String::from_utf8(body).unwrap().parse().unwrap()
}

type Ws = async_tungstenite::WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr) -> Ws {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, response) = async_tungstenite::client_async(format!("ws://{addr}/chat"), tcp)
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// The next data message (pings and pongs skipped).
async fn next_data<S>(ws: &mut async_tungstenite::WebSocketStream<S>) -> Message
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    loop {
        let message = ws.next().await.expect("stream ended").expect("read");
        if let Message::Text(_) | Message::Binary(_) = message {
            return message;
        }
    }
}

#[test]
fn handshake_answers_101_with_the_accept_key_and_no_framing() {
    let (_stream, head, rest) = raw_handshake(start(), HANDSHAKE.as_bytes());
    let lower = head.to_ascii_lowercase();
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    // RFC 6455 §1.3's example key and accept value.
    assert!(
        lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(lower.contains("connection: upgrade\r\n") && lower.contains("upgrade: websocket\r\n"));
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"));
    assert!(rest.is_empty());
}

#[test]
fn text_and_binary_frames_echo_both_ways() {
    let addr = start();
    run(async move {
        let mut ws = connect(addr).await;
        ws.send(Message::text("hello")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("hello"));
        let binary: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        ws.send(Message::binary(binary.clone())).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::binary(binary));
        ws.close(None).await.unwrap();
    });
}

#[test]
fn first_frame_in_the_handshake_packet_is_not_lost() {
    let mut bytes = HANDSHAKE.as_bytes().to_vec();
    bytes.extend_from_slice(&client_frame(0x1, b"right behind the head"));
    let (stream, head, rest) = raw_handshake(start(), &bytes);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let mut ws = WebSocket::from_partially_read(stream, rest, Role::Client, None);
    assert_eq!(ws.read().unwrap(), Message::text("right behind the head"));
}

#[test]
fn close_handshake_completes_and_the_server_closes_the_socket() {
    let addr = start();
    let (stream, _, rest) = raw_handshake(addr, HANDSHAKE.as_bytes());
    let mut ws = WebSocket::from_partially_read(stream, rest, Role::Client, None);
    ws.close(None).unwrap();
    // The server answers the close frame, then ends the connection.
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(async_tungstenite::tungstenite::Error::ConnectionClosed) => break,
            Err(err) => panic!("unexpected: {err}"),
        }
    }
    let mut stream = ws.into_inner();
    let mut left = Vec::new();
    assert_eq!(stream.read_to_end(&mut left).unwrap(), 0, "server closed");
}

#[test]
fn fifty_clients_each_get_every_message() {
    const CLIENTS: usize = 50;
    let addr = start();
    run(async move {
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(connect(addr).await);
        }
        // Each client joined the room (its task was woken when its 101 was written) before
        // the server's loop can see any of these frames.
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(Message::text(format!("from {i}"))).await.unwrap();
        }
        for ws in clients.iter_mut() {
            let mut got: Vec<String> = Vec::new();
            while got.len() < CLIENTS {
                got.push(next_data(ws).await.into_text().unwrap().to_string());
            }
            got.sort();
            let mut want: Vec<String> = (0..CLIENTS).map(|i| format!("from {i}")).collect();
            want.sort();
            assert_eq!(got, want);
        }
        for mut ws in clients {
            ws.close(None).await.unwrap();
        }
    });
}

#[test]
fn a_client_vanishing_mid_frame_leaves_no_socket_behind() {
    let addr = start();
    let baseline = sources(addr);
    for _ in 0..5 {
        let (mut stream, head, _) = raw_handshake(addr, HANDSHAKE.as_bytes());
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        // A masked binary frame announcing 1000 bytes, cut after a few.
        stream
            .write_all(&[0x82, 0x80 | 126, 0x03, 0xe8, 1, 2, 3, 4, 9, 9])
            .unwrap();
        drop(stream);
    }
    wait_sources(addr, baseline);
}

#[test]
fn a_refused_upgrade_is_a_normal_response_and_the_connection_stays_http() {
    let addr = start();
    // No Sec-WebSocket-Key: the chat refuses (426), and the next request is served.
    let refused =
        "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let (mut stream, head, mut body) = raw_handshake(addr, refused.as_bytes());
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")
                .map(|v| v.parse().unwrap())
        })
        .unwrap();
    let mut more = vec![0u8; length - body.len()];
    stream.read_exact(&mut more).unwrap();
    body.extend_from_slice(&more);
    assert_eq!(body, b"connect with a WebSocket client\n");
    stream
        .write_all(b"GET /sources HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut second = Vec::new();
    stream.read_to_end(&mut second).unwrap();
    let second = String::from_utf8(second).unwrap();
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second}");
}

#[test]
fn graceful_shutdown_does_not_wait_for_upgraded_connections() {
    let (stop, stopped) = mpsc::channel::<()>();
    let (served, serve_returned) = mpsc::channel::<()>();
    let addr = start_with(
        move |server| {
            server.with_graceful_shutdown(async move {
                // Polled on the server's loop: wait for the test's signal without blocking.
                untangle::unblock(move || stopped.recv_timeout(HANG_GUARD))
                    .await
                    .expect("stop signal");
            })
        },
        Some(served),
    );
    run(async move {
        let mut ws = connect(addr).await;
        ws.send(Message::text("before")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("before"));
        stop.send(()).unwrap();
        // `serve` returns although the WebSocket is open…
        untangle::unblock(move || serve_returned.recv_timeout(HANG_GUARD))
            .await
            .expect("signal");
        // …and the upgraded connection still works.
        ws.send(Message::text("after")).await.unwrap();
        assert_eq!(next_data(&mut ws).await, Message::text("after"));
        ws.close(None).await.unwrap();
    });
}

#[test]
fn a_websocket_client_on_http_client_talks_to_the_chat() {
    use async_tungstenite::tungstenite::handshake::client::generate_key;
    use async_tungstenite::tungstenite::handshake::derive_accept_key;
    let addr = start();
    run(async move {
        let client = Client::new();
        let key = generate_key();
        let request = Request::builder()
            .uri(format!("http://{addr}/chat"))
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .header(header::SEC_WEBSOCKET_KEY, &key)
            .body(Body::empty())
            .unwrap();
        let mut response = client.send(request).await.unwrap();
        assert_eq!(response.status(), 101);
        assert_eq!(
            response.headers()[header::SEC_WEBSOCKET_ACCEPT],
            derive_accept_key(key.as_bytes()).as_str()
        );
        let upgraded = upgrade::on(&mut response)
            .await
            .expect("upgraded connection");
        // Taken once: a second `on` finds nothing.
        assert!(upgrade::on(&mut response).await.is_err());
        let mut ws =
            async_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
        ws.send(Message::text("via untangle's client"))
            .await
            .unwrap();
        assert_eq!(
            next_data(&mut ws).await,
            Message::text("via untangle's client")
        );
        ws.send(Message::binary(vec![0u8, 1, 2, 255]))
            .await
            .unwrap();
        assert_eq!(
            next_data(&mut ws).await,
            Message::binary(vec![0u8, 1, 2, 255])
        );
        ws.close(None).await.unwrap();
        // The upgraded connection never went to the pool: plain HTTP still works.
        let plain = client.get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(plain.status(), 426);
    });
}
