//! What one event of any backend says about a source: the common form both backends translate
//! their OS events into.

/// What one event says about a source.
#[derive(Clone, Copy, Debug)]
pub(super) struct Readiness {
    pub(super) readable: bool,
    pub(super) writable: bool,
    /// The read side hung up: whatever is left to read ends in EOF.
    pub(super) read_closed: bool,
    /// TCP urgent data arrived (`EPOLLPRI`): a read stops short at the urgent mark with more
    /// data queued behind it, so a short read no longer proves the socket drained.
    pub(super) urgent: bool,
}
