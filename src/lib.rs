//! # untangle
//!
//! A single-threaded async runtime: network code that reads like blocking code but, where
//! blocking code would wait for the network, suspends the current task and resumes it when its
//! file descriptor is ready.
//!
//! - [`block_on`] runs the calling thread's loop until a future completes;
//! - [`spawn`] starts a task on it (no `Send` bound), [`Handle::spawn`] from other threads;
//! - [`scope`] runs child futures that borrow from the caller and all end with the scope
//!   (structured concurrency: join, cancellation and panics as a unit);
//! - [`net`] has TCP, UDP and Unix sockets implementing futures-io `AsyncRead`/`AsyncWrite`;
//! - [`time`] has sleeps, timeouts and intervals; [`unblock`] runs blocking code on a pool;
//! - `compat` (feature `hyper`) runs hyper 1.x, and through hyper-util axum and tower, on untangle.
//! - [`run_on_threads`] runs one loop per thread (thread-per-core), [`signal`] awaits Unix
//!   signals such as Ctrl-C.
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use untangle::net::{TcpListener, TcpStream};
//!
//! untangle::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     // An echo server, one task per connection.
//!     untangle::spawn(async move {
//!         while let Ok((mut conn, _)) = listener.accept().await {
//!             untangle::spawn(async move {
//!                 let mut buf = [0; 1024];
//!                 while let Ok(n @ 1..) = conn.read(&mut buf).await {
//!                     if conn.write_all(&buf[..n]).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             })
//!             .detach();
//!         }
//!     })
//!     .detach();
//!
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"hello");
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```
//!
//! See [`executor`'s scheduling guarantees](crate::block_on) and the README for the design.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
// `deny`, not `forbid`: the one `unsafe` call of the crate, polling's `Poller::add_with_mode`
// (an `unsafe fn`), is allowed where it is made, in `reactor/portable.rs`.
#![deny(unsafe_code)]

mod blocking;
mod builder;
mod clock;
mod executor;
mod handle;
mod introspect;
mod io;
mod reactor;
mod scope;
mod shared;
mod stats;
mod task;
mod task_info;
mod threads;
mod timer;
mod yield_now;

#[cfg(feature = "hyper")]
pub mod compat;
pub mod http;
pub mod net;
pub mod signal;
pub mod time;

pub use blocking::{
    unblock, IDLE_TIMEOUT as BLOCKING_IDLE_TIMEOUT, MAX_THREADS as BLOCKING_MAX_THREADS,
};
pub use builder::Builder;
pub use executor::{block_on, spawn, BUDGET};
pub use handle::Handle;
pub use introspect::{dump, stats, Dump};
pub use io::{Async, Ready};
pub use scope::{scope, Scope, ScopeFuture, ScopeTask};
pub use stats::Stats;
pub use task::Task;
pub use task_info::{TaskInfo, TaskState};
pub use threads::{run_on_threads, ThreadGroup, Threads};
pub use yield_now::{yield_now, YieldNow};

/// The number of fds registered with the calling thread's loop (for tests that check that
/// cancelled tasks release their sockets). Not part of the public API.
#[doc(hidden)]
pub fn __live_sources() -> usize {
    executor::live_sources()
}

/// The reactor backend of the calling thread's loop: `"epoll"`, `"polling"` or
/// `"polling-oneshot"` (for tests that check `UNTANGLE_REACTOR`). Not part of the public API.
#[doc(hidden)]
pub fn __reactor_backend() -> &'static str {
    executor::reactor_backend()
}
