//! [`Builder`]: spawning a task with a name, shown by [`dump`](crate::dump).

use std::future::Future;
use std::panic::Location;

use crate::executor;
use crate::handle::Handle;
use crate::task::Task;
use crate::task_info::Origin;

/// Spawns a task with a name, shown by [`dump`](crate::dump).
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let task = untangle::Builder::new().name("answer").spawn(async { 42 });
///     assert!(untangle::dump().to_string().contains("answer"));
///     assert_eq!(task.await, 42);
/// });
/// ```
#[derive(Debug, Default)]
pub struct Builder {
    name: Option<String>,
}

impl Builder {
    /// A builder for an unnamed task (a dump shows its spawn location only).
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    #[track_caller]
    fn origin(self) -> Origin {
        let location = Location::caller();
        match self.name {
            None => Origin::At(location),
            Some(name) => Origin::Named(Box::new((name, location))),
        }
    }

    /// Starts `future` on the current thread's loop, like [`spawn`](crate::spawn).
    ///
    /// # Panics
    /// Outside a running loop, like [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        executor::spawn_with(future, self.origin())
    }

    /// Starts `future` on `handle`'s loop from any thread, like [`Handle::spawn`].
    ///
    /// # Example
    /// ```
    /// untangle::block_on(async {
    ///     let handle = untangle::Handle::current();
    ///     let task = untangle::Builder::new().name("remote").spawn_on(&handle, async { 5 });
    ///     assert_eq!(task.await, 5);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(self, handle: &Handle, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        handle.spawn_with(future, self.origin())
    }
}
