//! The few socket calls that differ by platform: creating and accepting sockets that are
//! non-blocking and close-on-exec from the start where the OS can (`SOCK_NONBLOCK`, `accept4`
//! on Linux and the BSDs), or right after with `ioctl(FIONBIO)` and `fcntl(FD_CLOEXEC)` where it
//! cannot (Apple's systems, among others); and stream writes that never raise `SIGPIPE`.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags,
    SocketAddrAny, SocketType,
};

/// `MSG_NOSIGNAL` where it exists. Apple's systems have no such flag; there every socket this
/// crate creates has `SO_NOSIGPIPE` instead (as std's do).
#[cfg(not(any(target_vendor = "apple", target_os = "redox", target_os = "vita")))]
const NO_SIGPIPE: SendFlags = SendFlags::NOSIGNAL;
#[cfg(any(target_vendor = "apple", target_os = "redox", target_os = "vita"))]
const NO_SIGPIPE: SendFlags = SendFlags::empty();

/// The most buffers one `readv`/`writev`/`sendmsg`/`recvmsg` takes (`IOV_MAX`: 1024 on Linux,
/// the BSDs and Apple's systems). Vectored calls pass at most this many, as std does: more
/// would fail with `EMSGSIZE`/`EINVAL`.
pub(crate) const IOV_MAX: usize = 1024;

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
mod imp {
    use super::*;
    use rustix::net::SocketFlags;

    const FLAGS: SocketFlags = SocketFlags::NONBLOCK.union(SocketFlags::CLOEXEC);

    pub(super) fn socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
        Ok(rustix::net::socket_with(family, kind, FLAGS, None)?)
    }

    pub(super) fn accept(listener: impl AsFd) -> io::Result<(OwnedFd, Option<SocketAddrAny>)> {
        Ok(rustix::net::acceptfrom_with(listener, FLAGS)?)
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
)))]
mod imp {
    use super::*;
    use rustix::io::FdFlags;

    /// Between the call and these flags another thread's `exec` could inherit the fd; no
    /// atomic alternative exists on these systems.
    fn set_flags(fd: OwnedFd) -> io::Result<OwnedFd> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC)?;
        #[cfg(target_vendor = "apple")]
        rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
        Ok(fd)
    }

    pub(super) fn socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
        set_flags(rustix::net::socket(family, kind, None)?)
    }

    pub(super) fn accept(listener: impl AsFd) -> io::Result<(OwnedFd, Option<SocketAddrAny>)> {
        let (fd, addr) = rustix::net::acceptfrom(listener)?;
        Ok((set_flags(fd)?, addr))
    }
}

/// A new socket, non-blocking and close-on-exec.
pub(crate) fn socket(family: AddressFamily, kind: SocketType) -> io::Result<OwnedFd> {
    imp::socket(family, kind)
}

/// Accepts a connection as a non-blocking, close-on-exec socket, with the peer's address when
/// the OS reports it.
pub(crate) fn accept(listener: impl AsFd) -> io::Result<(OwnedFd, Option<SocketAddrAny>)> {
    imp::accept(listener)
}

/// Sends on a connected stream socket. A plain `write(2)` on a socket whose peer is gone (or
/// after our own `shutdown(Write)`) raises `SIGPIPE`, which kills a process that did not ignore
/// it (Rust's `main` ignores it, a C program embedding this crate may not); std's `write` on a
/// `TcpStream` passes `MSG_NOSIGNAL`, but its `write_vectored` and everything on a `UnixStream`
/// use `write`/`writev`. With the flag the write fails with `EPIPE` instead.
pub(crate) fn send(socket: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    Ok(rustix::net::send(socket, buf, NO_SIGPIPE)?)
}

/// [`send`] for several buffers: one `sendmsg`.
pub(crate) fn send_vectored(socket: impl AsFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    let mut control = SendAncillaryBuffer::default();
    Ok(rustix::net::sendmsg(
        socket,
        bufs,
        &mut control,
        NO_SIGPIPE,
    )?)
}

/// Reads from a connected Unix stream socket; returns the byte count and whether the kernel
/// discarded ancillary data (`MSG_CTRUNC`: a peer passed file descriptors, which this crate
/// does not receive; the kernel closes them). A read stops at the end of such a message even
/// when more data is queued, so such a short read does not mean the socket is drained.
pub(crate) fn recv_stream(
    socket: impl AsFd,
    bufs: &mut [IoSliceMut<'_>],
) -> io::Result<(usize, bool)> {
    let mut control = RecvAncillaryBuffer::new(&mut []);
    let msg = rustix::net::recvmsg(socket, bufs, &mut control, RecvFlags::empty())?;
    Ok((msg.bytes, msg.flags.contains(ReturnFlags::CTRUNC)))
}
