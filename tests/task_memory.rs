//! Memory per task: spawning stores the future once, plus a small fixed overhead (counted by a
//! counting global allocator on this test's own thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

/// The system allocator, counting the bytes allocated on the current thread.
struct CountingAlloc;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = ALLOCATED.try_with(|c| c.set(c.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to `System`; the counter has no effect on the
// memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Bytes allocated on this thread while `f` runs.
fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

#[test]
fn a_spawned_task_stores_its_future_once_plus_a_small_overhead() {
    const PAYLOAD: usize = 16 * 1024;
    untangle::block_on(async {
        // Warm up: the loop's queue and the first task allocate their steady-state buffers.
        untangle::spawn(async {}).await;
        let mut task = None;
        let bytes = allocated_by(|| {
            let payload = black_box([7u8; PAYLOAD]);
            task = Some(untangle::spawn(async move {
                untangle::yield_now().await;
                payload[PAYLOAD - 1]
            }));
        });
        // At least the future itself (so the counter works), at most 256 bytes beyond it.
        assert!(
            (PAYLOAD..=PAYLOAD + 256).contains(&bytes),
            "spawning a task with a {PAYLOAD}-byte future allocated {bytes} bytes"
        );
        assert_eq!(task.unwrap().await, 7);
    });
}
