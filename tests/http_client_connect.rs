//! Client `CONNECT`: tunnels through an HTTP proxy with [`Client::send_via`] (and to the
//! server a `CONNECT` names with [`Client::send`]), handed over as `upgrade::on(response)`.
//!
//! Proxies: our own server (its CONNECT upgrade), Node's `http` server (its `connect` event,
//! `tests/client_support/connect_proxy.js`; with `CI` set a missing `node` fails the test) and
//! a scripted one writing exact bytes. Each tunnels to an echo server.

mod common;
#[path = "client_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use common::{run, serve_in_thread};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::http::{
    header, upgrade, Body, Client, ErrorKind, Method, Request, Response, StatusCode,
};
use untangle::net::TcpStream;

const AUTH: &str = "Basic dGVzdA==";

/// A blocking TCP echo server; ends its side when the client ends its own.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut stream);
                let _ = stream.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

fn connect_request(target: &str, auth: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::CONNECT).uri(target);
    if let Some(auth) = auth {
        builder = builder.header(header::PROXY_AUTHORIZATION, auth);
    }
    builder.body(Body::empty()).unwrap()
}

/// Opens a tunnel to `echo` through `proxy`, checks the proxy's `greeting` comes first, then
/// an echo, then that a half-close ends the tunnel cleanly.
async fn echo_through(client: &Client, proxy: &str, echo: SocketAddr, greeting: &[u8]) {
    let response = client
        .send_via(proxy, connect_request(&echo.to_string(), Some(AUTH)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
    let mut tunnel = upgrade::on(response)
        .await
        .expect("a 2xx to CONNECT is a tunnel");
    let mut got = vec![0; greeting.len()];
    tunnel.read_exact(&mut got).await.unwrap();
    assert_eq!(got, greeting);
    for message in [&b"ping"[..], b"GET / HTTP/1.1\r\n\r\n", &[0u8, 255, 13, 10]] {
        tunnel.write_all(message).await.unwrap();
        let mut back = vec![0; message.len()];
        tunnel.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }
    tunnel.close().await.unwrap();
    let mut rest = Vec::new();
    tunnel.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{rest:?}");
}

/// Our own server as a proxy: CONNECT with the right `Proxy-Authorization` connects upstream
/// and answers 200 (then greets through the tunnel); without it, 407; an unreachable target,
/// 502. Anything else is answered with its request line.
fn untangle_proxy() -> SocketAddr {
    untangle_proxy_with(|s| s)
}

fn untangle_proxy_with<C>(configure: C) -> SocketAddr
where
    C: FnOnce(untangle::http::Server) -> untangle::http::Server + Send + 'static,
{
    serve_in_thread(configure, |mut req: Request<Body>| async move {
        if req.method() != Method::CONNECT {
            let line = format!("{} {}", req.method(), req.uri());
            return Response::new(Body::from(line));
        }
        if req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .map(|v| v.as_bytes())
            != Some(AUTH.as_bytes())
        {
            return Response::builder()
                .status(StatusCode::PROXY_AUTHENTICATION_REQUIRED)
                .header(header::PROXY_AUTHENTICATE, "Basic realm=\"test\"")
                .body(Body::from("auth required"))
                .unwrap();
        }
        let target = req.uri().authority().unwrap().to_string();
        let Ok(upstream) = TcpStream::connect(target).await else {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from("bad gateway"))
                .unwrap();
        };
        let on_upgrade = upgrade::on(&mut req);
        untangle::spawn(async move {
            let Ok(tunnel) = on_upgrade.await else { return };
            let (mut from_client, mut to_client) = futures_lite::io::split(tunnel);
            let (mut from_upstream, mut to_upstream) = futures_lite::io::split(upstream);
            let _ = to_client.write_all(b"via untangle\n").await;
            let up = async {
                let _ = futures_lite::io::copy(&mut from_client, &mut to_upstream).await;
                let _ = to_upstream.close().await;
            };
            let down = async {
                let _ = futures_lite::io::copy(&mut from_upstream, &mut to_client).await;
                let _ = to_client.close().await;
            };
            futures_lite::future::zip(up, down).await;
        })
        .detach();
        Response::new(Body::empty())
    })
}

#[test]
fn tunnel_through_our_own_server_as_a_proxy() {
    let echo = echo_server();
    let proxy = format!("http://{}", untangle_proxy());
    run(async {
        let client = Client::new();
        echo_through(&client, &proxy, echo, b"via untangle\n").await;
        // Twice: each tunnel has a connection of its own.
        echo_through(&client, &proxy, echo, b"via untangle\n").await;

        // Refusals are ordinary responses with their bodies, and no tunnel.
        let refused = client
            .send_via(proxy.as_str(), connect_request(&echo.to_string(), None))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        assert_eq!(
            refused.headers()[header::PROXY_AUTHENTICATE],
            "Basic realm=\"test\""
        );
        let mut refused = refused;
        assert!(upgrade::on(&mut refused).await.is_err());
        assert_eq!(refused.into_body().text().await.unwrap(), "auth required");

        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let bad = client
            .send_via(
                proxy.as_str(),
                connect_request(&closed.to_string(), Some(AUTH)),
            )
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(bad.into_body().text().await.unwrap(), "bad gateway");

        // A plain request through the proxy goes out in absolute form.
        let forwarded = client
            .send_via(
                proxy.as_str(),
                Request::get("http://example.com:8080/a?b")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            forwarded.into_body().text().await.unwrap(),
            "GET http://example.com:8080/a?b"
        );
    });
}

/// An `https://` proxy: the CONNECT goes inside TLS to the proxy, and the tunnel is a byte
/// stream over that TLS connection.
#[cfg(feature = "tls")]
#[test]
fn tunnel_through_a_tls_proxy() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let server_cert = cert.clone();
    let echo = echo_server();
    let proxy = untangle_proxy_with(move |s| s.tls(vec![server_cert], key).expect("TLS settings"));
    run(async {
        let client = Client::builder().add_root_certificate(cert).build();
        let proxy = format!("https://localhost:{}", proxy.port());
        echo_through(&client, &proxy, echo, b"via untangle\n").await;
    });
}

#[test]
fn connect_sent_with_send_goes_to_the_authority_it_names() {
    // As with hyper's client: without a proxy, the CONNECT goes to its own target, here a
    // server that is itself the tunnel's end (it echoes).
    let addr = serve_in_thread(
        |s| s,
        |mut req: Request<Body>| {
            let on_upgrade = upgrade::on(&mut req);
            let target = req.uri().to_string();
            let host = req.headers()[header::HOST].to_str().unwrap().to_string();
            untangle::spawn(async move {
                let mut io = on_upgrade.await.expect("tunnel");
                io.write_all(format!("{target} {host}\n").as_bytes())
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = io.read(&mut buf).await {
                    io.write_all(&buf[..n]).await.unwrap();
                }
            })
            .detach();
            async { StatusCode::OK }
        },
    );
    run(async {
        let client = Client::new();
        let response = client
            .send(connect_request(&addr.to_string(), None))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut tunnel = upgrade::on(response).await.unwrap();
        let greeting = format!("{addr} {addr}\n");
        let mut got = vec![0; greeting.len()];
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), greeting);
        tunnel.write_all(b"echo").await.unwrap();
        let mut back = [0u8; 4];
        tunnel.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"echo");
    });
}

#[test]
fn tunnel_through_a_node_proxy() {
    let Some(node) = support::start("node", "connect_proxy.js", &[]) else {
        return;
    };
    let proxy = node.url(0, "");
    let echo = node.addr(1);
    run(async {
        let client = Client::new();
        echo_through(&client, &proxy, echo, b"via node\n").await;

        let refused = client
            .send_via(proxy.as_str(), connect_request(&echo.to_string(), None))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        assert_eq!(refused.into_body().text().await.unwrap(), "auth required");

        let forwarded = client
            .send_via(
                proxy.as_str(),
                Request::get("http://example.com/x")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            forwarded.into_body().text().await.unwrap(),
            "GET http://example.com/x host=example.com"
        );
    });
}

/// A scripted proxy: the first connection answers 407 with keep-alive (a client that reused
/// it would get this connection's second answer, a 200 that was never meant); later ones
/// answer 100 then 200 with framing fields a tunnel must ignore, plus tunnel bytes in the
/// same write, and then echo.
#[test]
fn scripted_proxy_bytes_after_the_head_belong_to_the_tunnel() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let index = count.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8(head).unwrap();
                assert!(
                    head.starts_with("CONNECT upstream.test:443 HTTP/1.1\r\n"),
                    "{head}"
                );
                assert!(head.contains("\r\nhost: upstream.test:443\r\n"), "{head}");
                assert!(
                    !head.to_ascii_lowercase().contains("content-length"),
                    "{head}"
                );
                if index == 0 {
                    let _ = stream.write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nnope\
                          HTTP/1.1 200 OK\r\n\r\n",
                    );
                    let mut sink = [0u8; 64];
                    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                    return;
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 100 Continue\r\n\r\n\
                      HTTP/1.1 200 Connection Established\r\nContent-Length: 3\r\n\
                      Transfer-Encoding: chunked\r\n\r\nearly tunnel bytes;",
                );
                let mut reader = stream.try_clone().unwrap();
                let _ = std::io::copy(&mut reader, &mut stream);
            });
        }
    });
    run(async {
        let client = Client::new();
        let proxy = format!("http://{addr}");
        let refused = client
            .send_via(proxy.as_str(), connect_request("upstream.test:443", None))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        assert_eq!(refused.into_body().text().await.unwrap(), "nope");

        let response = client
            .send_via(
                proxy.as_str(),
                connect_request("upstream.test:443", Some(AUTH)),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a refused CONNECT's connection is not reused"
        );
        let mut tunnel = upgrade::on(response).await.unwrap();
        let early = b"early tunnel bytes;";
        let mut got = vec![0; early.len()];
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(got, early);
        tunnel.write_all(b"more").await.unwrap();
        let mut back = [0u8; 4];
        tunnel.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"more");
    });
}

#[test]
fn invalid_connect_requests_are_refused_before_anything_is_sent() {
    run(async {
        let client = Client::new();
        let proxy = "http://127.0.0.1:9";
        // No port: authority form needs one.
        let err = client
            .send_via(proxy, connect_request("example.com", None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{err}");
        // A CONNECT has no content.
        let with_body = Request::builder()
            .method(Method::CONNECT)
            .uri("example.com:443")
            .body(Body::from("data"))
            .unwrap();
        let err = client.send_via(proxy, with_body).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Request, "{err}");
        // https through a proxy would need TLS inside a tunnel.
        let https = Request::get("https://example.com/")
            .body(Body::empty())
            .unwrap();
        let err = client.send_via(proxy, https).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{err}");
        // A proxy URL must be http(s)://host[:port].
        let err = client
            .send_via("proxy.local:3128", connect_request("example.com:443", None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidUrl, "{err}");
    });
}

/// RFC 9110 §9.3.6: a client ignores `Content-Length` and `Transfer-Encoding` in a 2xx to
/// CONNECT. Even a malformed one must not fail the tunnel (hyper's client checks neither).
#[test]
fn malformed_framing_fields_in_a_2xx_to_connect_are_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: not a number\r\n\r\nok");
        let mut sink = [0u8; 64];
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    run(async {
        let response = Client::new()
            .send_via(
                format!("http://{addr}"),
                connect_request("upstream.test:443", None),
            )
            .await
            .unwrap();
        let mut tunnel = upgrade::on(response).await.unwrap();
        let mut got = [0u8; 2];
        tunnel.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ok");
    });
}
