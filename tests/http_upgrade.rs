//! The server's upgrade rules on raw sockets (`untangle::http::upgrade`): a 2xx to CONNECT is
//! a tunnel without framing fields, after which nothing is parsed as HTTP; a 101 where no
//! switch may happen is a 500 that closes. The WebSocket side is in `tests/websocket.rs`.

mod common;

use common::{exchange_raw, parse_responses, serve_in_thread};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use untangle::http::{upgrade, Body, Request, Response, StatusCode};

#[test]
fn a_2xx_to_connect_is_a_tunnel_without_framing_and_nothing_after_it_is_parsed() {
    let addr = serve_in_thread(
        |s| s,
        |mut req: Request<Body>| {
            let on_upgrade = upgrade::on(&mut req);
            untangle::spawn(async move {
                let mut io = on_upgrade.await.expect("tunnel");
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = io.read(&mut buf).await {
                    io.write_all(&buf[..n]).await.unwrap();
                }
            })
            .detach();
            async { (StatusCode::OK, "this body is dropped") }
        },
    );
    // The "request" behind the head is tunnel data, echoed back as bytes; the client's
    // half-close ends the echo, and dropping the tunnel closes the connection.
    let out = exchange_raw(
        addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    );
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(!head.contains("content-length") && !head.contains("transfer-encoding"));
    assert_eq!(&out[end..], b"GET / HTTP/1.1\r\n\r\n");
}

/// RFC 9110 §7.8: an upgrade request with content is not upgraded (its OnUpgrade fails), and
/// a 101 where no switch may happen becomes a 500 that closes the connection.
#[test]
fn a_101_to_a_request_with_a_body_or_without_upgrade_is_500_and_closes() {
    let addr = serve_in_thread(
        |s| s,
        |mut req: Request<Body>| {
            let on_upgrade = upgrade::on(&mut req);
            async move {
                assert!(on_upgrade.await.is_err(), "no upgrade offered");
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "x")
                    .body(Body::empty())
                    .unwrap()
            }
        },
    );
    for request in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 2\r\n\r\nhi"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut bytes = request.to_vec();
        bytes.extend_from_slice(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        let responses = parse_responses(&exchange_raw(addr, &bytes));
        assert_eq!(responses.len(), 1, "{responses:?}");
        assert_eq!(responses[0].status, 500);
        assert_eq!(responses[0].header("connection"), Some("close"));
    }
}
