//! hyper 1.x, hyper-util's tower adapter and axum on untangle (feature `hyper`): an
//! `axum::Router` served by hyper's HTTP/1 server over [`HyperIo`], hyper's client talking to
//! it, our timer enforcing hyper's timeouts, upgraded connections handed to futures-io code,
//! HTTPS through futures-rustls, and HTTP/2 streams spawned by [`HyperExecutor`].
//!
//! Run with `cargo test --features hyper --test hyper`.
#![cfg(feature = "hyper")]

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::routing::{get, post};
use axum::Router;
use common::run;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::service::TowerToHyperService;
use untangle::compat::{HyperExecutor, HyperIo, HyperTimer};
use untangle::net::{TcpListener, TcpStream};
use untangle::{spawn, Handle};

/// The application under test: plain text, a path parameter, a body, shared state.
fn app(hits: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route("/", get(|| async { "hello from axum" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move { format!("user {id}") }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { (StatusCode::CREATED, body) }),
        )
        .route(
            "/hits",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                (hits.fetch_add(1, Ordering::SeqCst) + 1).to_string()
            }),
        )
        // axum's default 2 MiB request body limit, raised for the large-body test.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(hits)
}

/// Serves `router` with hyper's HTTP/1 server on `listener`, one task per connection, counting
/// the connections accepted.
fn serve(listener: TcpListener, router: Router, accepted: Rc<Cell<usize>>) {
    spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepted.set(accepted.get() + 1);
            let service = TowerToHyperService::new(router.clone());
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .serve_connection(HyperIo::new(stream), service);
            spawn(async move {
                if let Err(err) = conn.await {
                    panic!("server connection failed: {err}");
                }
            })
            .detach();
        }
    })
    .detach();
}

/// One hyper client connection over our `TcpStream`, driven by a spawned task.
async fn connect(addr: std::net::SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
        .await
        .unwrap();
    spawn(async move {
        conn.await.unwrap();
    })
    .detach();
    sender
}

/// Sends one request and returns its status and whole body.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> (StatusCode, Bytes) {
    sender.ready().await.unwrap();
    let response: Response<Incoming> = sender.send_request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

fn request(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(body.into()))
        .unwrap()
}

#[test]
fn axum_router_answers_several_hyper_client_requests_on_one_connection() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Rc::new(Cell::new(0));
        let hits = Arc::new(AtomicUsize::new(0));
        serve(listener, app(hits.clone()), accepted.clone());

        let mut sender = connect(addr).await;
        let (status, body) = send(&mut sender, request("GET", "/", "")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::OK, &b"hello from axum"[..])
        );

        let (status, body) = send(&mut sender, request("GET", "/users/42", "")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"user 42"[..]));

        let (status, body) = send(&mut sender, request("POST", "/echo", "posted body")).await;
        assert_eq!(
            (status, &body[..]),
            (StatusCode::CREATED, &b"posted body"[..])
        );

        let (status, body) = send(&mut sender, request("GET", "/no/such/route", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.is_empty());

        // A wrong method on a known path is axum's 405, not a 404.
        let (status, _) = send(&mut sender, request("DELETE", "/", "")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

        for expected in 1..=3 {
            let (_, body) = send(&mut sender, request("GET", "/hits", "")).await;
            assert_eq!(body, expected.to_string());
        }
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // Every request above went over the single keep-alive connection.
        assert_eq!(accepted.get(), 1);
    });
}

#[test]
fn hyper_io_carries_a_body_larger_than_the_socket_buffers_both_ways() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        serve(listener, app(Arc::default()), Rc::new(Cell::new(0)));
        let data: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let mut sender = connect(addr).await;
        let (status, body) = send(&mut sender, request("POST", "/echo", data.clone())).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(body == data, "echoed body differs");
    });
}

#[test]
fn header_read_timeout_on_our_timer_closes_a_connection_that_never_sends_its_head() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(app(Arc::default()));
            hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .header_read_timeout(TIMEOUT)
                .serve_connection(HyperIo::new(stream), service)
                .await
        });

        let start = Instant::now();
        let mut client = TcpStream::connect(addr).await.unwrap();
        // Half a request head, then silence.
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: loc")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = client.read_to_end(&mut rest).await;
        // The server closed the connection (possibly after a 408), and not before the timeout.
        assert!(read.is_ok() || read.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset);
        assert!(start.elapsed() >= TIMEOUT);
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            rest.is_empty() || rest.starts_with("HTTP/1.1 408"),
            "got {rest:?}"
        );
        let err = server.await.expect_err("hyper reports the timeout");
        assert!(err.is_timeout(), "expected a timeout error, got {err}");
    });
}

#[test]
fn hyper_upgrade_hands_the_connection_to_futures_io_code_through_hyper_io() {
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A server that upgrades to a raw echo protocol and echoes with futures::io::copy over
        // the upgraded connection wrapped back into futures-io.
        spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                let on_upgrade = hyper::upgrade::on(&mut req);
                spawn(async move {
                    let upgraded = HyperIo::new(on_upgrade.await.unwrap());
                    let (reader, mut writer) = upgraded.split();
                    futures::io::copy(reader, &mut writer).await.unwrap();
                    writer.close().await.unwrap();
                })
                .detach();
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "echo")
                    .body(Full::<Bytes>::default())
            });
            hyper::server::conn::http1::Builder::new()
                .serve_connection(HyperIo::new(stream), service)
                .with_upgrades()
                .await
                .unwrap();
        })
        .detach();

        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .unwrap();
        spawn(async move { conn.with_upgrades().await.unwrap() }).detach();
        let mut req = request("GET", "/", "");
        req.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        req.headers_mut().insert("upgrade", "echo".parse().unwrap());
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let mut upgraded = HyperIo::new(hyper::upgrade::on(response).await.unwrap());
        upgraded
            .write_all(b"ping over the upgraded connection")
            .await
            .unwrap();
        let mut reply = [0; 33];
        upgraded.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ping over the upgraded connection");
    });
}

#[test]
fn hyper_connection_is_send_and_runs_on_another_threads_loop_via_handle_spawn() {
    let _watchdog = common::watchdog("hyper_connection_runs_on_another_loop");
    // A second loop on its own thread, kept alive until the test ends.
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let worker = std::thread::spawn(move || {
        untangle::block_on(async move {
            handle_tx.send(Handle::current()).unwrap();
            let _ = stop_rx.recv().await;
        })
    });
    let worker_handle: Handle = handle_rx.recv().unwrap();
    let worker_thread = worker.thread().id();

    run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ran_on = Arc::new(std::sync::Mutex::new(None));
        spawn({
            let ran_on = ran_on.clone();
            async move {
                let (stream, _) = listener.accept().await.unwrap();
                let service = TowerToHyperService::new(app(Arc::default()));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(HyperTimer::new())
                    .serve_connection(HyperIo::new(stream), service);
                // Accepted here, served there: the connection future is `Send`.
                worker_handle
                    .spawn(async move {
                        *ran_on.lock().unwrap() = Some(std::thread::current().id());
                        conn.await
                    })
                    .await
                    .unwrap();
            }
        })
        .detach();

        let mut sender = connect(addr).await;
        for _ in 0..3 {
            let (status, body) = send(&mut sender, request("GET", "/users/7", "")).await;
            assert_eq!((status, &body[..]), (StatusCode::OK, &b"user 7"[..]));
        }
        assert_eq!(*ran_on.lock().unwrap(), Some(worker_thread));
    });
    stop_tx.send_blocking(()).unwrap();
    worker.join().unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn hyper_serves_axum_over_futures_rustls_on_hyper_io_https() {
    use futures_rustls::rustls;
    use rustls_pki_types::{PrivateKeyDer, ServerName};

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(server_config));
    let connector = futures_rustls::TlsConnector::from(Arc::new(client_config));

    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            // TLS over our socket, hyper over TLS: HyperIo takes any futures-io stream.
            let tls = acceptor.accept(tcp).await.unwrap();
            hyper::server::conn::http1::Builder::new()
                .timer(HyperTimer::new())
                .serve_connection(
                    HyperIo::new(tls),
                    TowerToHyperService::new(app(Arc::default())),
                )
                .await
                .unwrap();
        })
        .detach();

        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(tls))
            .await
            .unwrap();
        spawn(async move { conn.await.unwrap() }).detach();
        let (status, body) = send(&mut sender, request("GET", "/users/443", "")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"user 443"[..]));
        let (status, body) = send(&mut sender, request("POST", "/echo", "secret")).await;
        assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"secret"[..]));
    });
}

#[test]
fn http2_runs_concurrent_streams_of_a_non_send_service_on_hyper_executor() {
    const STREAMS: usize = 16;
    run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // `Rc` state: neither the service nor its futures are `Send`, and HyperExecutor spawns
        // hyper's per-stream tasks on this loop all the same.
        let served = Rc::new(Cell::new(0));
        // Every handler waits here until all STREAMS requests are being handled at once: this
        // only completes if the streams really run concurrently on one connection.
        let all_in = Rc::new(async_lock::Barrier::new(STREAMS));
        spawn({
            let served = served.clone();
            async move {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (served, all_in) = (served.clone(), all_in.clone());
                    async move {
                        served.set(served.get() + 1);
                        all_in.wait().await;
                        let path = Bytes::from(req.uri().path().to_owned());
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(path)))
                    }
                });
                hyper::server::conn::http2::Builder::new(HyperExecutor::new())
                    .timer(HyperTimer::new())
                    .serve_connection(HyperIo::new(stream), service)
                    .await
                    .unwrap();
            }
        })
        .detach();

        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor::new())
            .timer(HyperTimer::new())
            .handshake::<_, Full<Bytes>>(HyperIo::new(stream))
            .await
            .unwrap();
        spawn(async move { conn.await.unwrap() }).detach();
        let requests = (0..STREAMS).map(|i| {
            let mut sender = sender.clone();
            async move {
                let request = Request::get(format!("http://localhost/stream/{i}"))
                    .body(Full::default())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.version(), hyper::Version::HTTP_2);
                let body = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body, format!("/stream/{i}"));
            }
        });
        futures::future::join_all(requests).await;
        assert_eq!(served.get(), STREAMS);
    });
}
