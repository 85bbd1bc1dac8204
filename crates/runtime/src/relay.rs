//! The launcher's wait loop: one poll over the child's pidfd, a signalfd and, with a pty,
//! the caller's stdin and the pty master. No threads, no async runtime.

use crate::pty::{Relay, sync_winsize};
use rustix::event::{PollFd, PollFlags, poll};
use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions};

/// Waits for the container's first process, relaying signals and the terminal. Returns its
/// exit status, 128+N for a death by signal N.
pub fn wait(
    pid: i32,
    pidfd: &OwnedFd,
    sigfd: &OwnedFd,
    relay: Option<Relay>,
    shares_session: bool,
) -> Result<i32, Errno> {
    let mut stdin_open = relay.is_some();
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut fds = vec![
            PollFd::new(pidfd, PollFlags::IN),
            PollFd::new(sigfd, PollFlags::IN),
        ];
        if let Some(r) = &relay {
            fds.push(PollFd::new(&r.master, PollFlags::IN));
            if stdin_open {
                fds.push(PollFd::new(&stdin, PollFlags::IN));
            }
        }
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents()).collect();
        drop(fds);
        if !ready[1].is_empty() {
            while let Some(sig) = berth_sys::signal::read_signal(sigfd)? {
                on_signal(pidfd, sig, relay.as_ref(), shares_session);
            }
        }
        if let Some(r) = &relay {
            // Output first; an error here (EIO) only means every copy of the slave is
            // closed and the command is ending, which the pidfd reports.
            if ready.get(2).is_some_and(|f| !f.is_empty()) {
                copy(&r.master, stdout, &mut buf);
            }
            if stdin_open && ready.get(3).is_some_and(|f| !f.is_empty()) {
                stdin_open = match rustix::io::read(stdin, &mut buf) {
                    Ok(0) => false,
                    Ok(n) => feed(&r.master, &buf[..n], stdout),
                    Err(Errno::INTR | Errno::AGAIN) => true,
                    Err(_) => false,
                };
                if !stdin_open {
                    // End of our input: the terminal's end-of-file character, so that a
                    // command reading the pty sees it too.
                    feed(&r.master, b"\x04", stdout);
                }
            }
        }
        if !ready[0].is_empty() {
            if let Some(r) = &relay {
                drain(&r.master, stdout, &mut buf);
            }
            let status = loop {
                match rustix::process::waitpid(
                    Some(Pid::from_raw(pid).unwrap_or(Pid::INIT)),
                    WaitOptions::empty(),
                ) {
                    Ok(Some((_, s))) => break s,
                    Ok(None) => continue,
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(e),
                }
            };
            return Ok(exit_code(status));
        }
    }
}

/// The container's init exits with the command's status (128+N for a signal); the init
/// itself dying by a signal (SIGKILL from outside) is reported the same way.
fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    status
        .exit_status()
        .or(status.terminating_signal().map(|s| 128 + s))
        .unwrap_or(125)
}

/// Passes a signal on to the container. `shares_session`: the container is in our session
/// and process group (chroot without a pty), so a terminal's ^C already reached it.
fn on_signal(
    pidfd: &OwnedFd,
    sig: berth_sys::signal::Received,
    relay: Option<&Relay>,
    shares_session: bool,
) {
    match sig.signo {
        libc::SIGCHLD => {}
        libc::SIGWINCH => {
            if let Some(r) = relay {
                sync_winsize(&r.master);
            }
        }
        // A terminal's ^C or ^\ already reached a container in our process group;
        // forwarding it would deliver it twice. Otherwise (its own session, a pty) the
        // kernel's signals, a hangup included, must be passed on.
        _ if sig.from_kernel() && shares_session => {}
        signo => {
            let _ = berth_sys::signal::pidfd_send(pidfd, signo);
        }
    }
}

/// Writes `data` to the pty master (non-blocking). When the terminal's input queue is full,
/// the command's output is let out meanwhile: a command echoing what it reads (cat, a shell)
/// would otherwise wait for us to read while we wait for it to read.
fn feed(master: &OwnedFd, mut data: &[u8], out: impl AsFd) -> bool {
    let mut spare = vec![0u8; 16 * 1024];
    while !data.is_empty() {
        match rustix::io::write(master, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => {
                let mut fds = [PollFd::new(master, PollFlags::IN | PollFlags::OUT)];
                let wait = rustix::event::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                };
                if poll(&mut fds, Some(&wait)).is_err() {
                    return false;
                }
                let revents = fds[0].revents();
                if revents.contains(PollFlags::IN) && !copy(master, &out, &mut spare) {
                    return false;
                }
                if revents.intersects(PollFlags::HUP | PollFlags::ERR) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Copies what is available from `from` to `to`; false at end-of-file or error.
fn copy(from: impl AsFd, to: impl AsFd, buf: &mut [u8]) -> bool {
    match rustix::io::read(&from, &mut *buf) {
        Ok(0) => false,
        Ok(n) => write_all(&to, &buf[..n]),
        Err(Errno::INTR | Errno::AGAIN) => true,
        Err(_) => false,
    }
}

fn write_all(to: impl AsFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match rustix::io::write(&to, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads what the command left in the pty before it exited.
fn drain(master: &OwnedFd, to: impl AsFd, buf: &mut [u8]) {
    loop {
        let mut fds = [PollFd::new(master, PollFlags::IN)];
        match poll(
            &mut fds,
            Some(&rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        ) {
            Ok(n) if n > 0 && fds[0].revents().contains(PollFlags::IN) => {}
            _ => return,
        }
        if !copy(master, &to, buf) {
            return;
        }
    }
}

/// The detach sequence of `berth console`: Ctrl-a, then q (as screen's prefix; Ctrl-a
/// Ctrl-a sends one Ctrl-a through).
const DETACH_PREFIX: u8 = 0x01;

/// Attaches the caller's terminal to a console socket until the user types Ctrl-a q, or the
/// container's console goes away. Returns true when the user detached.
pub fn console(sock: &OwnedFd) -> Result<bool, Errno> {
    let _raw = crate::pty::RawMode::enter();
    let stdin = rustix::stdio::stdin();
    let stdout = rustix::stdio::stdout();
    let mut buf = vec![0u8; 16 * 1024];
    let mut prefix = false;
    loop {
        let mut fds = [
            PollFd::new(&stdin, PollFlags::IN),
            PollFd::new(sock, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        let (input, output) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if output && !copy(sock, stdout, &mut buf) {
            return Ok(false);
        }
        if input {
            let n = match rustix::io::read(stdin, &mut buf) {
                Ok(0) => return Ok(true),
                Ok(n) => n,
                Err(Errno::INTR | Errno::AGAIN) => continue,
                Err(e) => return Err(e),
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                match (prefix, b) {
                    (true, b'q') => return Ok(true),
                    (true, DETACH_PREFIX) => {
                        out.push(DETACH_PREFIX);
                        prefix = false;
                    }
                    (true, other) => {
                        out.extend([DETACH_PREFIX, other]);
                        prefix = false;
                    }
                    (false, DETACH_PREFIX) => prefix = true,
                    (false, other) => out.push(other),
                }
            }
            if !write_all(sock, &out) {
                return Ok(false);
            }
        }
    }
}
