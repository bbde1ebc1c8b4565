//! What a server's accept loop and its connections share: the connection count, the
//! connections' tasks, and the graceful-shutdown state with its waiters.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::Task;

/// What the accept loop and the connections share: connection count, the connections' tasks,
/// and shutdown state.
///
/// Two waiter lists: `waiters` (the accept loop at its connection limit, and `serve` waiting
/// for the last connection) are woken whenever a connection ends; `shutdown_waiters` (idle
/// connections) only when a graceful shutdown starts, so that a closing connection does not
/// wake every idle one.
#[derive(Default)]
pub(crate) struct ServerState {
    pub(super) active: Cell<usize>,
    /// The running connections' tasks, so that dropping `serve` cancels them: a connection
    /// takes its own out (and detaches it) as it ends. One pointer per connection.
    tasks: RefCell<Slab<Task<()>>>,
    pub(super) shutting_down: Cell<bool>,
    waiters: RefCell<Slab<Option<Waker>>>,
    pub(super) shutdown_waiters: RefCell<Slab<Option<Waker>>>,
}

impl ServerState {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.get()
    }

    /// Completes once a graceful shutdown has started. Meant to be kept and polled again and
    /// again (it is `Unpin`): it registers once and stays registered until dropped.
    pub(crate) fn shutdown_waiter(&self) -> impl Future<Output = ()> + Unpin + '_ {
        WaitUntil {
            list: &self.shutdown_waiters,
            condition: || self.shutting_down.get(),
            slot: None,
        }
    }

    /// Keeps the task of the connection counted under `key` (see [`ConnGuard`]).
    pub(super) fn hold(&self, key: usize, task: Task<()>) {
        let held = self.tasks.borrow_mut().insert(task);
        debug_assert_eq!(
            held, key,
            "a connection's task is held under its guard's key"
        );
    }

    pub(super) fn notify_all(&self) {
        notify(&self.waiters);
    }

    pub(super) fn wait_until<'a>(
        &'a self,
        condition: impl Fn() -> bool + 'a,
    ) -> impl Future<Output = ()> + 'a {
        WaitUntil {
            list: &self.waiters,
            condition,
            slot: None,
        }
    }
}

/// Wakes every waiter of `list`.
pub(super) fn notify(list: &RefCell<Slab<Option<Waker>>>) {
    let wakers: Vec<Waker> = list
        .borrow_mut()
        .iter_mut()
        .filter_map(|(_, w)| w.take())
        .collect();
    for waker in wakers {
        waker.wake();
    }
}

struct WaitUntil<'a, C> {
    list: &'a RefCell<Slab<Option<Waker>>>,
    condition: C,
    slot: Option<usize>,
}

impl<C: Fn() -> bool> Future for WaitUntil<'_, C> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.condition)() {
            return Poll::Ready(());
        }
        let mut waiters = this.list.borrow_mut();
        match this.slot {
            Some(key) => {
                if let Some(slot) = waiters.get_mut(key) {
                    // A waiter polled again by the same task keeps its waker: no clone.
                    match slot {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => *slot = Some(cx.waker().clone()),
                    }
                }
            }
            None => this.slot = Some(waiters.insert(Some(cx.waker().clone()))),
        }
        Poll::Pending
    }
}

impl<C> Drop for WaitUntil<'_, C> {
    fn drop(&mut self) {
        if let Some(key) = self.slot.take() {
            self.list.borrow_mut().try_remove(key);
        }
    }
}

// `WaitUntil` holds no self-references, whatever the condition closure is.
impl<C> Unpin for WaitUntil<'_, C> {}

/// Counts a live connection; wakes the accept loop and shutdown waiters when it ends. Lives in
/// the connection's task, whose handle `ServerState::tasks` holds under `key`.
pub(super) struct ConnGuard {
    state: Rc<ServerState>,
    pub(super) key: usize,
}

impl ConnGuard {
    pub(super) fn new(state: Rc<ServerState>) -> ConnGuard {
        state.active.set(state.active.get() + 1);
        // The key the task will be held under: it is inserted before any other connection
        // is accepted, on this one thread.
        let key = state.tasks.borrow().vacant_key();
        ConnGuard { state, key }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        // A connection that ends by itself lets go of its own handle; detaching (not dropping)
        // it, since the task is the one running. Cancelled ones find theirs already gone.
        let task = self.state.tasks.borrow_mut().try_remove(self.key);
        if let Some(task) = task {
            task.detach();
        }
        self.state.active.set(self.state.active.get() - 1);
        self.state.notify_all();
    }
}

/// Cancels the connections still held when `serve`'s future ends or is dropped.
pub(super) struct CancelOnDrop(pub(super) Rc<ServerState>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        // Taken out first: dropping a `Task` cancels it, and its future is dropped later, by
        // the loop, when its guard finds the slab empty.
        let tasks = std::mem::take(&mut *self.0.tasks.borrow_mut());
        drop(tasks);
    }
}
