//! Protocol crates written against futures-io, running directly over untangle's `TcpStream`:
//! WebSocket with `async-tungstenite` (no runtime feature: its futures-io side) and TLS with
//! `futures-rustls` on both ends, and the two stacked (WebSocket over TLS).

mod common;

use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use common::run;
use futures::io::AsyncWriteExt;
use futures::io::{AsyncRead, AsyncWrite};
use futures::StreamExt;
use untangle::net::{TcpListener, TcpStream};
use untangle::spawn;

/// Echoes every text and binary message until the client closes; returns how many it echoed.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) -> usize {
    let mut echoed = 0;
    while let Some(message) = ws.next().await {
        // Pings are answered and close frames acknowledged by tungstenite itself.
        if let m @ (Message::Text(_) | Message::Binary(_)) = message.unwrap() {
            ws.send(m).await.unwrap();
            echoed += 1;
        }
    }
    // The close handshake is done: as RFC 6455 asks, the server closes the connection first
    // (over TLS this sends close_notify, so the client sees a clean end).
    ws.get_mut().close().await.unwrap();
    echoed
}

/// Sends a text, a large binary and a ping, checks the echoes and the pong, then closes.
async fn exercise<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, id: usize) {
    ws.send(Message::text(format!("hello {id}"))).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::text(format!("hello {id}"))
    );
    let blob: Vec<u8> = (0..256 * 1024).map(|i| (i * 7 + id) as u8).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Pong(b"are you there".to_vec().into())
    );
    ws.close(None).await.unwrap();
    // After our close, the stream yields the server's close acknowledgement, then ends.
    while let Some(message) = ws.next().await {
        assert!(message.unwrap().is_close());
    }
}

#[test]
fn websocket_echo_server_and_clients_over_tcp_streams_with_async_tungstenite() {
    const CLIENTS: usize = 8;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let mut sessions = Vec::new();
            for _ in 0..CLIENTS {
                let (stream, _) = listener.accept().await.unwrap();
                sessions.push(spawn(async move {
                    echo(async_tungstenite::accept_async(stream).await.unwrap()).await
                }));
            }
            let mut echoed = 0;
            for session in sessions {
                echoed += session.await;
            }
            echoed
        });

        // All clients at once, each on its own connection.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| {
                spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let url = format!("ws://{addr}/chat");
                    let (mut ws, response) =
                        async_tungstenite::client_async(url, stream).await.unwrap();
                    assert_eq!(response.status(), 101);
                    exercise(&mut ws, id).await;
                })
            })
            .collect();
        for client in clients {
            client.await;
        }
        assert_eq!(server.await, CLIENTS * 2);
    });
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;

    use std::sync::Arc;

    use futures::io::AsyncReadExt;
    use futures_rustls::rustls;
    use futures_rustls::{TlsAcceptor, TlsConnector};
    use rustls_pki_types::{PrivateKeyDer, ServerName};

    /// A TLS acceptor and a connector that trusts it, for "localhost", from a fresh
    /// self-signed certificate.
    fn tls_pair() -> (TlsAcceptor, TlsConnector) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (
            TlsAcceptor::from(Arc::new(server)),
            TlsConnector::from(Arc::new(client)),
        )
    }

    /// Writes `out` and reads `expected.len()` bytes at the same time on one TLS stream, then
    /// closes it (sending close_notify) and checks the peer closed its side too.
    async fn duplex<S>(stream: S, out: Vec<u8>, expected: Vec<u8>)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (mut reader, mut writer) = stream.split();
        let write = async {
            writer.write_all(&out).await.unwrap();
            writer.flush().await.unwrap();
        };
        let read = async {
            let mut got = vec![0; expected.len()];
            reader.read_exact(&mut got).await.unwrap();
            got
        };
        let ((), got) = futures::join!(write, read);
        assert!(got == expected, "received data differs");
        writer.close().await.unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn futures_rustls_server_and_client_stream_megabytes_both_ways_at_once_over_tcp_streams() {
        const LEN: usize = 4 * 1024 * 1024;
        run(async {
            let (acceptor, connector) = tls_pair();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let to_server: Vec<u8> = (0..LEN).map(|i| (i % 253) as u8).collect();
            let to_client: Vec<u8> = (0..LEN).map(|i| (i % 241) as u8).collect();

            // Each side writes more than the socket buffers hold before reading anything back,
            // so this finishes only if the TLS streams really are full duplex on our sockets.
            let server = spawn({
                let (to_server, to_client) = (to_server.clone(), to_client.clone());
                async move {
                    let (tcp, _) = listener.accept().await.unwrap();
                    let tls = acceptor.accept(tcp).await.unwrap();
                    let protocol = tls.get_ref().1.protocol_version();
                    duplex(tls, to_client, to_server).await;
                    protocol
                }
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            duplex(tls, to_server, to_client).await;
            assert_eq!(server.await, Some(rustls::ProtocolVersion::TLSv1_3));
        });
    }

    #[test]
    fn futures_rustls_client_rejects_a_certificate_for_another_name() {
        run(async {
            let (acceptor, connector) = tls_pair();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                acceptor.accept(tcp).await.is_err()
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = ServerName::try_from("not-localhost.example").unwrap();
            let err = connector.connect(name, tcp).await.unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
            assert!(server.await, "the server sees the handshake fail too");
        });
    }

    #[test]
    fn websocket_over_futures_rustls_over_tcp_stream_echoes() {
        run(async {
            let (acceptor, connector) = tls_pair();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = acceptor.accept(tcp).await.unwrap();
                echo(async_tungstenite::accept_async(tls).await.unwrap()).await
            });
            let tcp = TcpStream::connect(addr).await.unwrap();
            let tls = connector
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let url = format!("wss://localhost:{}/", addr.port());
            let (mut ws, _) = async_tungstenite::client_async(url, tls).await.unwrap();
            exercise(&mut ws, 1).await;
            assert_eq!(server.await, 2);
        });
    }
}
