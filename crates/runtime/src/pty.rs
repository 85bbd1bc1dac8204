//! A pseudo-terminal for the container's command, and the raw mode of the caller's own
//! terminal while it is relayed.

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;
use rustix::termios::{self, OptionalActions, Termios};

/// A pty pair: the launcher keeps the master, the child takes the slave as its stdio.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// The slave's path (/dev/pts/N). A bind mount must name its source by path in the
    /// container's own mount namespace: a descriptor opened by the launcher names the
    /// launcher's mount, which the kernel refuses as a bind source (EINVAL).
    pub slave_path: String,
}

impl Pty {
    /// Allocates a pty with the caller's window size.
    pub fn open() -> Result<Pty, Errno> {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        grantpt(&master)?;
        unlockpt(&master)?;
        let name = ptsname(&master, Vec::new())?;
        Self::finish(
            master,
            name.to_string_lossy().into_owned(),
            name.to_string_lossy().into_owned(),
        )
    }

    /// Allocates a pty from the devpts mounted at `dev`/pts (another mount namespace's,
    /// reached through /proc/PID/root): the slave's name is then valid in there.
    ///
    /// The container controls everything below its root: the path is resolved inside it
    /// without following any symlink, and what opens must be a devpts ptmx (character device
    /// 5:2), or host root would open a file of the container's choosing.
    pub fn open_at(root: &str) -> Result<Pty, Errno> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let master = rustix::fs::openat2(
            &root,
            "dev/pts/ptmx",
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?;
        let st = rustix::fs::fstat(&master)?;
        let is_ptmx = rustix::fs::FileType::from_raw_mode(st.st_mode)
            == rustix::fs::FileType::CharacterDevice
            && rustix::fs::major(st.st_rdev) == 5
            && rustix::fs::minor(st.st_rdev) == 2;
        if !is_ptmx {
            return Err(Errno::NODEV);
        }
        rustix::fs::fcntl_setfl(&master, OFlags::RDWR)?;
        rustix::pty::unlockpt(&master)?;
        // The slave straight from the master (TIOCGPTPEER): no path to resolve.
        let slave = rustix::pty::ioctl_tiocgptpeer(
            &master,
            rustix::pty::OpenptFlags::RDWR
                | rustix::pty::OpenptFlags::NOCTTY
                | rustix::pty::OpenptFlags::CLOEXEC,
        )?;
        let slave_path = rustix::pty::ptsname(&master, Vec::new())?
            .to_string_lossy()
            .into_owned();
        if let Ok(ws) = termios::tcgetwinsize(rustix::stdio::stdin()) {
            let _ = termios::tcsetwinsize(&master, ws);
        }
        Ok(Pty {
            master,
            slave,
            slave_path,
        })
    }

    fn finish(master: OwnedFd, open_path: String, slave_path: String) -> Result<Pty, Errno> {
        let slave = rustix::fs::open(
            open_path.as_str(),
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        if let Ok(ws) = termios::tcgetwinsize(rustix::stdio::stdin()) {
            let _ = termios::tcsetwinsize(&master, ws);
        }
        Ok(Pty {
            master,
            slave,
            slave_path,
        })
    }
}

impl Relay {
    /// Relays `master` to the caller's terminal, which is put in raw mode until the relay is
    /// dropped.
    pub fn new(master: OwnedFd) -> Relay {
        // Non-blocking, so that the relay never waits on the terminal while the command
        // waits on the relay (see relay::feed).
        if let Ok(flags) = rustix::fs::fcntl_getfl(&master) {
            let _ = rustix::fs::fcntl_setfl(&master, flags | rustix::fs::OFlags::NONBLOCK);
        }
        Relay {
            master,
            _raw: RawMode::enter(),
        }
    }
}

/// The launcher's side of a pty while the command runs.
pub struct Relay {
    pub master: OwnedFd,
    _raw: Option<RawMode>,
}

/// Restores the caller's terminal settings when dropped.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Raw mode on stdin when it is a terminal; None otherwise.
    pub fn enter() -> Option<RawMode> {
        let stdin = rustix::stdio::stdin();
        if !termios::isatty(stdin) {
            return None;
        }
        let saved = termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Copies the caller's window size to the pty (on SIGWINCH).
pub fn sync_winsize(master: impl AsFd) {
    if let Ok(ws) = termios::tcgetwinsize(rustix::stdio::stdin()) {
        let _ = termios::tcsetwinsize(master, ws);
    }
}
