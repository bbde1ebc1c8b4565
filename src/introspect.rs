//! Live introspection of the current thread's loop: [`stats`] (its counters) and [`dump`]
//! (every live task, as a table).

use std::fmt;

use crate::executor;
use crate::stats::Stats;
use crate::task_info::TaskInfo;

/// Every live task of the current thread's loop, from [`dump`]; its `Display` is a table.
#[derive(Debug, Clone)]
pub struct Dump {
    /// The tasks, in registry order.
    pub tasks: Vec<TaskInfo>,
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6}  {:<9}  {:>8}  {:>10}  task",
            "id", "state", "polls", "last poll"
        )?;
        for task in &self.tasks {
            let since = match task.since_last_poll {
                Some(since) => format!("{since:.1?}"),
                None => "never".to_owned(),
            };
            write!(
                f,
                "{:>6}  {:<9}  {:>8}  {:>10}  ",
                task.id, task.state, task.polls, since
            )?;
            match &task.name {
                Some(name) => writeln!(f, "{name} ({})", task.location)?,
                None => writeln!(f, "{}", task.location)?,
            }
        }
        write!(f, "{} tasks", self.tasks.len())
    }
}

/// Lists every live task of the current thread's loop: id, name or spawn location, polls, time
/// since its last poll and state (running, scheduled or idle).
///
/// A task spawned from another thread ([`Handle::spawn`](crate::Handle::spawn)) is listed from its first run on the
/// loop on. Costs one allocation per task plus a pass over the run queue; nothing is recorded
/// for it in between calls.
///
/// # Example
/// ```
/// untangle::block_on(async {
///     let idle = untangle::spawn(std::future::pending::<()>());
///     untangle::yield_now().await;
///     let dump = untangle::dump();
///     assert_eq!(dump.tasks.len(), 1);
///     assert_eq!(dump.tasks[0].state, untangle::TaskState::Idle);
///     eprintln!("{dump}");
///     drop(idle);
/// });
/// ```
pub fn dump() -> Dump {
    Dump {
        tasks: executor::snapshot(),
    }
}

/// Returns the counters of the current thread's loop (creating the loop if there is none).
///
/// Cheap: a copy of a few cells plus two lock-protected lengths (timers, sources). Nothing is
/// counted with atomics: every counter is a plain cell bumped on the loop's thread.
pub fn stats() -> Stats {
    executor::stats()
}
