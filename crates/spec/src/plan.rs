//! The Plan: everything the runtime needs to launch one container, fully resolved. Its
//! fields are not optional where a default exists, so code that makes syscalls never has to
//! decide what an absent value means.

pub use crate::limits::Limits;
use std::path::PathBuf;

/// A bind mount from the host into the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    /// Host path (absolute).
    pub source: PathBuf,
    /// Path inside the container (absolute, no `..`).
    pub target: String,
    pub readonly: bool,
}

/// The user namespace's mapping: container ids `0..count` are host ids
/// `host_uid..host_uid+count` (and the same for groups).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdMap {
    pub host_uid: u32,
    pub host_gid: u32,
    pub count: u32,
}

/// Which network the container gets.
#[derive(Debug, Clone, PartialEq)]
pub enum NetMode {
    /// The host's own network namespace (chroot's behaviour, `--net host`).
    Host,
    /// A new network namespace with only the loopback interface, up.
    Loopback,
    /// A new network namespace with loopback and eth0.
    Interface(Box<Iface>),
}

/// The container's eth0 and how its host side is made.
#[derive(Debug, Clone, PartialEq)]
pub struct Iface {
    pub kind: IfaceKind,
    /// The host end of the veth (unused by a macvlan, which has none).
    pub host_name: String,
    pub mac: [u8; 6],
    /// Static addresses, set before init starts (None: the guest asks by DHCP / RA).
    pub ipv4: Option<crate::cidr::Ipv4Net>,
    pub gateway4: Option<std::net::Ipv4Addr>,
    pub ipv6: Option<crate::cidr::Ipv6Net>,
    pub gateway6: Option<std::net::Ipv6Addr>,
    /// On a managed network, the resolver the guest should use (the network's dnsmasq),
    /// written to /etc/resolv.conf before init if the guest has none of its own.
    pub dns: Option<Dns>,
    /// The config asks for this static address (not one berth reserved for a DHCP-capable
    /// guest): it is also written where the guest's network manager looks, so that the
    /// guest keeps it rather than asking DHCP.
    pub guest_static: bool,
}

/// The resolver of a managed network.
#[derive(Debug, Clone, PartialEq)]
pub struct Dns {
    pub server: std::net::IpAddr,
    pub search: String,
    /// The host's /etc/resolv.conf: a guest file identical to it is a copy made when the
    /// rootfs was built (debootstrap does that) and is replaced too.
    pub host_copy: Option<String>,
}

/// What the host end of eth0 is.
#[derive(Debug, Clone, PartialEq)]
pub enum IfaceKind {
    /// A veth whose host end is a port of this bridge.
    Bridge(String),
    /// A veth with a host route to the container's address and proxy ARP: no bridge, no
    /// MAC seen outside (OpenVZ's venet).
    Routed,
    /// A macvlan (bridge mode) on this host interface.
    Macvlan(String),
}

/// The credentials the command runs with, as numbers inside the container.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// A fully validated launch request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Short name used for the cgroup and in messages.
    pub name: String,
    /// The root filesystem directory on the host (canonical, absolute).
    pub rootfs: PathBuf,
    /// Take the rootfs with every mount below it (chroot semantics) rather than alone.
    pub rootfs_recursive: bool,
    /// Lay a tmpfs-backed overlay over the rootfs so that nothing written reaches it.
    pub ephemeral: bool,
    /// A copy-on-write instance: the rootfs (an image's) is the read-only lower layer of an
    /// overlay whose upper layer is this directory's `upper/` (and `work/`, overlayfs's
    /// scratch space). Not with `ephemeral`.
    pub overlay_rw: Option<PathBuf>,
    /// The container's own disk (`limits.disk`): an ext4 image whose filesystem holds the
    /// writable layer in place of `overlay_rw`'s directory. Attached and mounted at start,
    /// inside the container's mount namespace only.
    pub disk: Option<PathBuf>,
    /// argv; argv[0] is looked up in the container's PATH when it has no '/'.
    pub command: Vec<String>,
    /// The command was not given by the user: its absence is a rootfs error, reported
    /// before anything is created.
    pub command_is_default: bool,
    /// The complete environment of the command, as `KEY=VALUE` entries (bytes kept as
    /// they are: chroot passes the caller's environment through unchanged).
    pub env: Vec<std::ffi::OsString>,
    /// Working directory inside the container.
    pub cwd: String,
    pub user: User,
    /// None keeps the host's hostname (chroot); the uts namespace is new either way.
    pub hostname: Option<String>,
    /// Some: unprivileged, in a new user namespace with this mapping. None: privileged.
    pub id_map: Option<IdMap>,
    pub net: NetMode,
    /// A new cgroup namespace (and the cgroup hierarchy mounted read-only at /sys/fs/cgroup).
    pub cgroupns: bool,
    /// Mount /sys (read-only). chroot leaves it to the rootfs.
    pub mount_sys: bool,
    /// Mount a private /run and /tmp (tmpfs).
    pub tmpfs_run_tmp: bool,
    pub binds: Vec<Bind>,
    pub limits: Limits,
    /// Give the container a cgroup of its own (run); chroot stays in the caller's.
    pub cgroup: bool,
    /// Run the command under berth's minimal init (run, chroot) rather than as PID 1
    /// itself (a system container's own init).
    pub init_stub: bool,
    /// Start the container in a session of its own, away from the caller's terminal (run);
    /// chroot keeps the caller's session and terminal, as chroot(8) does.
    pub new_session: bool,
    /// Give the command a pty (the launcher relays it to its own terminal).
    pub terminal: bool,
    /// Mark every inherited descriptor above stderr close-on-exec (run); chroot passes them
    /// through, as chroot(8) does (a build job server may rely on them).
    pub close_fds: bool,
    /// Apply the default capability set and seccomp profile.
    pub confine: bool,
}
