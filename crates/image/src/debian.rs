//! Debian images, built with debootstrap from the configured Debian mirror and made ready to
//! boot as a container: systemd, its network daemon set to DHCP on eth0, root logged in on
//! the console, and nothing that fails for want of hardware.
//!
//! `debian/RELEASE` names build themselves on first use (see [`auto_options`]). Ubuntu builds
//! the same way from an Ubuntu mirror (`--mirror`, with an Ubuntu release name).

use crate::{Error, Images, Metadata};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Packages every image gets: an init that boots in a container, and what its network needs.
const BASE_PACKAGES: &[&str] = &["systemd-sysv", "dbus", "iproute2", "netbase"];

/// Releases a `debian/NAME` alias builds by itself.
pub const RELEASES: &[&str] = &["bookworm", "trixie", "bullseye", "sid"];

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub release: String,
    /// `minbase` (Essential packages and apt) or `standard` (debootstrap's default set).
    pub variant: String,
    /// More packages.
    pub include: Vec<String>,
    pub mirror: String,
    pub alias: Option<String>,
    /// "debian" or "ubuntu" (for the image's metadata).
    pub os: String,
}

impl Options {
    /// Checks every value before anything runs.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Error::Bad(format!("debian/{}", self.release), what);
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !word(&self.release) {
            return Err(bad(format!(
                "invalid release {:?}: e.g. bookworm",
                self.release
            )));
        }
        if self.variant != "minbase" && self.variant != "standard" {
            return Err(bad(format!(
                "invalid variant {:?}: minbase or standard",
                self.variant
            )));
        }
        for p in &self.include {
            let ok = p.len() >= 2
                && p.as_bytes()[0].is_ascii_alphanumeric()
                && p.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
                });
            if !ok {
                return Err(bad(format!("invalid package name {p:?}")));
            }
        }
        let url_ok = (self.mirror.starts_with("http://") || self.mirror.starts_with("https://"))
            && !self
                .mirror
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
        if !url_ok {
            return Err(bad(format!(
                "invalid mirror {:?}: an http(s) URL",
                self.mirror
            )));
        }
        if let Some(a) = &self.alias {
            berth_spec::validate::image_name(a)?;
        }
        Ok(())
    }
}

/// The options a name such as `debian/bookworm` stands for, if it is one berth builds by
/// itself.
pub fn auto_options(name: &str) -> Option<Options> {
    let release = name.strip_prefix("debian/")?;
    RELEASES.contains(&release).then(|| Options {
        release: release.to_string(),
        variant: "minbase".into(),
        include: Vec::new(),
        mirror: configured_mirror(),
        alias: Some(name.to_string()),
        os: "debian".into(),
    })
}

/// The Debian mirror: BERTH_DEBIAN_MIRROR, else the host's apt sources (the first Debian
/// archive that is not the security one), else deb.debian.org.
pub fn configured_mirror() -> String {
    if let Ok(m) = std::env::var("BERTH_DEBIAN_MIRROR")
        && !m.is_empty()
    {
        return m;
    }
    let mut texts = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = dir.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f.to_string_lossy();
            if (name.ends_with(".list") || name.ends_with(".sources"))
                && let Ok(t) = std::fs::read_to_string(&f)
            {
                texts.push(t);
            }
        }
    }
    texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("URIs:")
                .map(|u| u.split_whitespace().next().unwrap_or(""))
                .or_else(|| {
                    let mut w = l.split_whitespace();
                    (w.next() == Some("deb")).then(|| w.find(|x| !x.starts_with('[')).unwrap_or(""))
                })
        })
        .find(|u| u.starts_with("http") && u.trim_end_matches('/').ends_with("/debian"))
        .map(str::to_string)
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// Builds the image, showing progress on `out` (a line redrawn in place on a terminal,
/// plain lines otherwise).
pub fn build(
    images: &Images,
    opts: &Options,
    out: &mut dyn Write,
    tty: bool,
) -> Result<crate::Image, Error> {
    opts.validate()?;
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err(Error::Bad(
            format!("{}/{}", opts.os, opts.release),
            "debootstrap is not installed: apt-get install debootstrap".into(),
        ));
    }
    let mut meta = Metadata::new(
        "debootstrap",
        &format!(
            "{} {} ({}) from {}",
            opts.os, opts.release, opts.variant, opts.mirror
        ),
    );
    meta.os = Some(opts.os.clone());
    meta.release = Some(opts.release.clone());
    images.build(opts.alias.as_deref(), meta, |rootfs| {
        debootstrap(opts, rootfs, out, tty)?;
        prepare(rootfs)?;
        Ok(None)
    })
}

fn debootstrap(opts: &Options, rootfs: &Path, out: &mut dyn Write, tty: bool) -> Result<(), Error> {
    let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
    packages.extend(opts.include.iter().cloned());
    // In mount and pid namespaces of its own: the proc and sys mounts debootstrap makes in
    // the target, and every process it starts, go when it ends or when berth is killed
    // (nothing stays mounted under a build directory that a sweep removes). Signatures
    // are checked (--force-check-gpg): an unsigned archive is refused, never installed as
    // root.
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
    ])
    .arg("debootstrap")
    .arg("--force-check-gpg");
    if opts.variant == "minbase" {
        cmd.arg("--variant=minbase");
    }
    cmd.arg(format!("--include={}", packages.join(",")))
        .arg(&opts.release)
        .arg(rootfs)
        .arg(&opts.mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // stderr into a file, read at the end: no pipe to drain (and no thread: a `berth run` of
    // the image goes on to create namespaces, which a threaded process cannot).
    let mut errfile = tempfile::tempfile().map_err(Error::io(
        "create a temporary file in",
        &std::env::temp_dir(),
    ))?;
    cmd.stderr(
        errfile
            .try_clone()
            .map_err(Error::io("open", Path::new("stderr file")))?,
    );
    berth_sys::proc::die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(Error::io("run", Path::new("debootstrap")))?;
    let mut progress = Progress::default();
    let mut last_lines: Vec<String> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if progress.take(&line) {
                progress.show(out, tty);
            }
            last_lines.push(line);
            if last_lines.len() > 20 {
                last_lines.remove(0);
            }
        }
    }
    let status = child
        .wait()
        .map_err(Error::io("wait for", Path::new("debootstrap")))?;
    let mut errors = String::new();
    {
        use std::io::{Read, Seek};
        let _ = errfile.seek(std::io::SeekFrom::Start(0));
        let _ = (&mut errfile).take(1 << 20).read_to_string(&mut errors);
    }
    if tty {
        let _ = writeln!(out);
    }
    if !status.success() {
        let why = errors
            .lines()
            .chain(last_lines.iter().map(String::as_str))
            .rfind(|l| l.starts_with("E:") || l.contains("rror"))
            .unwrap_or("see the lines above")
            .to_string();
        return Err(Error::Bad(
            format!("{}/{}", opts.os, opts.release),
            format!("debootstrap failed: {why}"),
        ));
    }
    Ok(())
}

/// Counts of debootstrap's work, from its `I:` lines.
#[derive(Debug, Default, PartialEq)]
struct Progress {
    fetched: usize,
    unpacked: usize,
    configured: usize,
}

impl Progress {
    /// Takes one line of debootstrap's output; true when a count moved.
    fn take(&mut self, line: &str) -> bool {
        let counter = if line.starts_with("I: Retrieving ")
            && !line.contains("Release")
            && !line.contains("Packages")
        {
            &mut self.fetched
        } else if line.starts_with("I: Unpacking ") || line.starts_with("I: Extracting ") {
            &mut self.unpacked
        } else if line.starts_with("I: Configuring ") {
            &mut self.configured
        } else {
            return false;
        };
        *counter += 1;
        true
    }

    fn show(&self, out: &mut dyn Write, tty: bool) {
        let text = format!(
            "packages: {} fetched, {} unpacked, {} configured",
            self.fetched, self.unpacked, self.configured
        );
        if tty {
            let _ = write!(out, "\r{text}");
            let _ = out.flush();
        } else if (self.fetched + self.unpacked + self.configured) % 25 == 1 {
            let _ = writeln!(out, "{text}");
        }
    }
}

/// Makes a debootstrapped tree a container image.
fn prepare(rootfs: &Path) -> Result<(), Error> {
    let write = |rel: &str, text: &str| -> Result<(), Error> {
        let p = rootfs.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        // Never through a symlink the tree holds: replace what is there.
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, text).map_err(Error::io("write", &p))
    };
    let link = |rel: &str, target: &str| -> Result<(), Error> {
        let p = rootfs.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        let _ = std::fs::remove_file(&p);
        std::os::unix::fs::symlink(target, &p).map_err(Error::io("link", &p))
    };
    write("etc/hostname", "debian\n")?;
    write(
        "etc/hosts",
        "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n",
    )?;
    // DHCP on the container's interface, by systemd-networkd (part of systemd); it waits
    // for eth0 quietly when there is none, and nothing waits for it to be online.
    write(
        "etc/systemd/network/80-container-eth0.network",
        "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n",
    )?;
    link(
        "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
        "/lib/systemd/system/systemd-networkd.service",
    )?;
    link(
        "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
        "/lib/systemd/system/systemd-networkd.socket",
    )?;
    link(
        "etc/systemd/system/systemd-networkd-wait-online.service",
        "/dev/null",
    )?;
    // root on the console without a password: only host root reaches the console.
    write(
        "etc/systemd/system/console-getty.service.d/autologin.conf",
        "[Service]\nExecStart=\nExecStart=-/sbin/agetty --noclear --autologin root --keep-baud console 115200,38400,9600 $TERM\n",
    )?;
    // Each container makes its own machine id at first boot.
    write("etc/machine-id", "")?;
    let _ = std::fs::remove_file(rootfs.join("var/lib/dbus/machine-id"));
    // What apt downloaded is not part of the system.
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = std::fs::read_dir(rootfs.join(dir)) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_file()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_debootstrap_lines() {
        let mut p = Progress::default();
        for l in [
            "I: Retrieving InRelease ",
            "I: Retrieving Packages ",
            "I: Retrieving adduser 3.134",
            "I: Retrieving apt 2.6.1",
            "I: Extracting adduser...",
            "I: Unpacking apt...",
            "I: Configuring apt...",
            "I: Base system installed successfully.",
        ] {
            p.take(l);
        }
        assert_eq!(
            p,
            Progress {
                fetched: 2,
                unpacked: 2,
                configured: 1
            }
        );
    }

    #[test]
    fn options_are_checked() {
        let good = auto_options("debian/bookworm").expect("known release");
        assert!(good.validate().is_ok());
        assert!(auto_options("debian/potato").is_none());
        assert!(auto_options("ubuntu/noble").is_none());
        for bad in [
            Options {
                release: "Bookworm".into(),
                ..good.clone()
            },
            Options {
                variant: "fat".into(),
                ..good.clone()
            },
            Options {
                include: vec!["vim;rm".into()],
                ..good.clone()
            },
            Options {
                mirror: "ftp://x".into(),
                ..good.clone()
            },
            Options {
                mirror: "http://x y".into(),
                ..good.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
