//! The server's upgrade rules on raw sockets (`untangle::http::upgrade`): a 2xx to CONNECT is
//! a tunnel without framing fields, after which nothing is parsed as HTTP; a 101 where no
//! switch may happen, or any other 1xx as a final response, is a 500 that closes. The
//! WebSocket side is in `tests/websocket.rs`.

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

/// RFC 9110 §15.2: a 1xx is interim, never the final response; a handler that returns one gets
/// a 500 and the connection closes, so no client waits for a response that never comes.
#[test]
fn an_informational_status_as_the_final_response_is_500_and_closes() {
    for status in [100u16, 103] {
        let addr = serve_in_thread(
            |s| s,
            move |_req: Request<Body>| async move {
                Response::builder()
                    .status(status)
                    .body(Body::empty())
                    .unwrap()
            },
        );
        let responses = parse_responses(&exchange_raw(
            addr,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n",
        ));
        assert_eq!(responses.len(), 1, "{status}: {responses:?}");
        assert_eq!(responses[0].status, 500);
        assert_eq!(responses[0].header("connection"), Some("close"));
    }
}

/// A client that pipelines its requests and then shuts down its sending side (`nc -N`, a
/// scripted client) still reads: the requests before its FIN are answered, and the responses
/// already written are delivered, not thrown away with the connection. Only the last one,
/// whose handler is still running when the FIN arrives, counts as abandoned — unless
/// `half_close(true)`.
#[test]
fn requests_pipelined_before_a_half_close_are_answered() {
    for half_close in [false, true] {
        let addr = serve_in_thread(
            move |s| s.half_close(half_close),
            move |req: Request<Body>| async move {
                // Pending once, so the server watches the connection while the handler runs.
                untangle::yield_now().await;
                // Without `half_close`, the last request's handler waits until the client's
                // FIN drops it (whenever the FIN arrives); with it, the handler answers.
                if req.uri().path() == "/three" && !half_close {
                    futures_lite::future::pending::<()>().await;
                }
                req.uri().path().to_string()
            },
        );
        let responses = parse_responses(&exchange_raw(
            addr,
            b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n\r\n",
        ));
        let bodies: Vec<String> = responses
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        let expected: &[&str] = if half_close {
            &["/one", "/two", "/three"]
        } else {
            &["/one", "/two"]
        };
        assert_eq!(bodies, expected, "half_close({half_close})");
    }
}
