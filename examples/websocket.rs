//! A WebSocket chat: every text or binary message a client sends goes to every connected
//! client (the sender included), over `untangle::http::upgrade` and async-tungstenite.
//!
//! Run: `cargo run --example websocket -- 127.0.0.1:8080`, then connect WebSocket clients to
//! `ws://127.0.0.1:8080/` (e.g. `python3 -m websockets ws://127.0.0.1:8080/`).
//!
//! The handshake uses tungstenite's own helpers (`derive_accept_key`); after the `101` the
//! upgraded connection becomes a `WebSocketStream` with `from_raw_socket`. The tests reuse
//! [`handle`] and [`Room`] (`tests/websocket.rs`, `tests/websocket_python.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

use async_tungstenite::tungstenite::handshake::derive_accept_key;
use async_tungstenite::tungstenite::protocol::Role;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures_lite::StreamExt;
use untangle::http::upgrade::{self, Upgraded};
use untangle::http::{header, Body, Request, Response, Server, StatusCode};

/// The connected clients: each one's queue of outgoing messages, by id.
#[derive(Clone, Default)]
pub struct Room {
    clients: Rc<RefCell<HashMap<u64, async_channel::Sender<Message>>>>,
    next_id: Rc<Cell<u64>>,
}

impl Room {
    /// Queues `message` for every connected client.
    fn broadcast(&self, message: &Message) {
        for sender in self.clients.borrow().values() {
            // Unbounded: a slow reader costs memory, not the others' latency. A client whose
            // queue is closed is leaving; `join` removes it.
            let _ = sender.try_send(message.clone());
        }
    }

    /// Serves one client until it closes or fails: reads its messages and broadcasts them,
    /// while a second task writes what the room sends it.
    async fn join(&self, ws: WebSocketStream<Upgraded>) {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (outgoing, queue) = async_channel::unbounded();
        self.clients.borrow_mut().insert(id, outgoing);
        let (mut sender, mut receiver) = ws.split();
        let writer = untangle::spawn(async move {
            while let Ok(message) = queue.recv().await {
                if sender.send(message).await.is_err() {
                    break;
                }
            }
        });
        while let Some(message) = receiver.next().await {
            match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => self.broadcast(&message),
                // tungstenite answers pings and the close handshake by itself; the stream
                // ends after the close.
                Ok(_) => {}
                Err(err) => {
                    log::debug!("client {id}: {err}");
                    break;
                }
            }
        }
        self.clients.borrow_mut().remove(&id);
        // Its queue closed, the writer ends; dropping both halves closes the socket.
        drop(writer);
    }
}

/// Whether `req` is a WebSocket handshake (RFC 6455 §4.2.1) we can answer.
fn is_websocket(req: &Request<Body>) -> bool {
    let has = |name: header::HeaderName, want: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(want)))
        })
    };
    has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
        && has(header::SEC_WEBSOCKET_VERSION, "13")
        && req.headers().contains_key(header::SEC_WEBSOCKET_KEY)
}

/// The chat's handler: answers a WebSocket handshake with `101` and spawns the client's task
/// (which awaits the upgraded connection, written once this handler has returned); anything
/// else gets a line of text.
pub async fn handle(room: Room, mut req: Request<Body>) -> Response<Body> {
    if !is_websocket(&req) {
        return Response::builder()
            .status(StatusCode::UPGRADE_REQUIRED)
            .header(header::UPGRADE, "websocket")
            .body(Body::from("connect with a WebSocket client\n"))
            .unwrap();
    }
    let key = req.headers()[header::SEC_WEBSOCKET_KEY].as_bytes();
    let accept = derive_accept_key(key);
    let on_upgrade = upgrade::on(&mut req);
    untangle::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                room.join(ws).await;
            }
            Err(err) => log::debug!("no upgrade: {err}"),
        }
    })
    .detach();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap()
}

/// Serves the chat on `server` until it stops.
pub async fn serve(server: Server) -> io::Result<()> {
    let room = Room::default();
    server.serve(move |req| handle(room.clone(), req)).await
}

fn main() -> io::Result<()> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    untangle::block_on(async {
        let server = Server::bind(addr.as_str()).await?;
        log::info!("WebSocket chat at ws://{}/", server.local_addr()?);
        serve(server).await
    })
}
