//! may_minihttp (stackful coroutines on `may`) with one worker thread, the same body and
//! content-type as the other servers. may_minihttp writes its own head, which cannot be made
//! byte-identical: status line `HTTP/1.1 200 Ok`, then `Server: M`, `Date`, `Content-Length`
//! (capitalised, in that order) before any header the service adds, so its response is 7 bytes
//! shorter than the others' (`Server: M` against `server: untangle`). `bench.py` compares it
//! header by header instead (see `check_responses`).
use std::io;

use may_minihttp::{HttpServer, HttpService, Request, Response};
use untangle_http_bench::addr;

#[derive(Clone)]
struct Hello;

impl HttpService for Hello {
    fn call(&mut self, _req: Request, rsp: &mut Response) -> io::Result<()> {
        // Lower case like the other servers' headers; the ones may_minihttp writes stay as they are.
        rsp.header("content-type: text/plain");
        rsp.body("Hello, World!");
        Ok(())
    }
}

fn main() {
    // One worker (event loop) thread, like the single-threaded peers; may also runs a timer
    // thread, which refreshes the cached Date twice a second. No pinning of its own: it would pin
    // the worker to the first allowed core, which is what `taskset` in bench.py already decides.
    may::config().set_workers(1);
    may::config().set_worker_pin(false);
    let server = HttpServer(Hello).start(addr()).unwrap();
    server.join().unwrap();
}
