//! The typed protocol between the launcher (parent) and the container's first process
//! (child), over one SOCK_SEQPACKET pair. Phases, in order:
//!
//! 1. parent: clone3 (the child is born in its cgroups); child blocks reading the socket.
//! 2. parent: writes uid_map/gid_map, idmaps the rootfs mounts, then sends [`ToChild::Go`].
//!    Id maps come first: until they exist the child is not root in its namespace and can
//!    mount nothing.
//! 3. child: sets up mounts, pivot_root, hostname, network, then waits for
//!    [`ToChild::Ready`]. Meanwhile the parent steps out of the container's cgroup and writes
//!    its limits (in parallel with the child's mounts: both take a while), then sends Ready.
//! 4. child: credentials, capabilities, seccomp (last), then exec. Nothing of the container
//!    runs before its limits bind. The socket is CLOEXEC, so a successful exec shows up in
//!    the parent as end-of-file; a failure arrives as [`ToParent::Failed`] before the child
//!    exits.

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// Parent to child.
#[derive(Debug, PartialEq)]
pub enum ToChild {
    /// Id maps written: set up the mounts.
    Go,
    /// Limits written: drop privileges and exec.
    Ready,
}

/// Child to parent.
#[derive(Debug, PartialEq)]
pub enum ToParent {
    /// The child could not start the command. `code` is the exit status to report (125 for
    /// berth's own failures, 126 when the command cannot run, 127 when it is not found).
    Failed {
        code: u8,
        errno: i32,
        message: String,
    },
}

/// A connected SEQPACKET pair; both ends close on exec.
pub fn pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
}

pub fn send(sock: impl AsFd, msg: ToChild) -> Result<(), Errno> {
    let byte: &[u8] = match msg {
        ToChild::Go => b"G",
        ToChild::Ready => b"R",
    };
    rustix::net::send(sock, byte, SendFlags::NOSIGNAL).map(|_| ())
}

/// Waits for `expected`. Anything else, end-of-file included (the parent is gone), is an
/// error: the child must not go on.
pub fn recv(sock: impl AsFd, expected: ToChild) -> Result<(), Errno> {
    let mut buf = [0u8; 8];
    let (n, _) = retry(|| rustix::net::recv(sock.as_fd(), &mut buf, RecvFlags::empty()))?;
    let got = match &buf[..n.min(buf.len())] {
        b"G" => ToChild::Go,
        b"R" => ToChild::Ready,
        _ => return Err(Errno::PROTO),
    };
    if got == expected {
        Ok(())
    } else {
        Err(Errno::PROTO)
    }
}

pub fn send_failed(sock: impl AsFd, code: u8, errno: i32, message: &str) {
    let mut msg = vec![b'F', code];
    msg.extend_from_slice(&errno.to_le_bytes());
    msg.extend_from_slice(message.as_bytes());
    msg.truncate(4096);
    let _ = rustix::net::send(sock, &msg, SendFlags::NOSIGNAL);
}

/// Reads the child's report: None on end-of-file (the exec succeeded).
pub fn recv_report(sock: impl AsFd) -> Result<Option<ToParent>, Errno> {
    let mut buf = vec![0u8; 4096];
    let (n, _) = retry(|| rustix::net::recv(sock.as_fd(), &mut buf, RecvFlags::empty()))?;
    if n == 0 {
        return Ok(None);
    }
    let b = &buf[..n];
    if b.len() < 6 || b[0] != b'F' {
        return Err(Errno::PROTO);
    }
    Ok(Some(ToParent::Failed {
        code: b[1],
        errno: i32::from_le_bytes([b[2], b[3], b[4], b[5]]),
        message: String::from_utf8_lossy(&b[6..]).into_owned(),
    }))
}

fn retry<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trip() {
        let (a, b) = pair().expect("pair");
        send_failed(&a, 127, 2, "not found: foo");
        let got = recv_report(&b).expect("recv");
        assert_eq!(
            got,
            Some(ToParent::Failed {
                code: 127,
                errno: 2,
                message: "not found: foo".into()
            })
        );
        send(&b, ToChild::Go).expect("go");
        recv(&a, ToChild::Go).expect("go");
        send(&b, ToChild::Ready).expect("ready");
        assert_eq!(recv(&a, ToChild::Go), Err(Errno::PROTO), "out of order");
        drop(b);
        assert!(recv(&a, ToChild::Ready).is_err(), "end-of-file is no Ready");
        let (a, b) = pair().expect("pair");
        drop(a);
        assert_eq!(recv_report(&b).expect("eof"), None);
    }
}
