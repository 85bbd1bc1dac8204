//! dnsmasq for one managed network: DHCP (only for the addresses berth reserved: every
//! container's lease is known before it asks), DNS for the containers' names (NAME and
//! NAME.berth, from a hosts file berth writes, so that a name resolves as soon as its
//! container exists, DHCP or static) forwarding the rest to the host's resolvers, and
//! router advertisements for the network's IPv6 prefix.
//!
//! One daemon per network, in its own directory (pid file, leases, hosts files); berth
//! starts it when the network comes up and again at the next use if it died, and sends it
//! SIGHUP to reread the hosts files when containers come and go.

use crate::addr::{Ipv4Net, Ipv6Net};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The DNS domain of container names.
pub const DOMAIN: &str = "berth";

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// What can go wrong with a network's dnsmasq.
#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    #[error("dnsmasq is not installed ({DNSMASQ}): install the dnsmasq-base package")]
    Missing,
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("dnsmasq for bridge {bridge} did not start: {message}")]
    Failed { bridge: String, message: String },
}

/// One network's dnsmasq: where it listens and keeps its files.
pub struct Dnsmasq<'a> {
    pub bridge: &'a str,
    /// The gateway address with the subnet's prefix ("10.44.3.1/24").
    pub ipv4: Ipv4Net,
    pub ipv6: Option<Ipv6Net>,
    /// Its own directory: pid, leases, hosts, dhcp-hosts, log.
    pub dir: &'a Path,
}

/// A container's entry: its name, reserved address, and MAC (DHCP hands the address to
/// that MAC only).
pub struct Host<'a> {
    pub name: &'a str,
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: &'a str,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DnsmasqError {
    let what = what.into();
    move |source| DnsmasqError::Io { what, source }
}

impl Dnsmasq<'_> {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The pid of this network's dnsmasq when it runs: the pid file's process, checked to
    /// be a dnsmasq with this directory on its command line (a reused pid is not taken).
    pub fn running(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.file("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let pid_arg = format!("--pid-file={}", self.file("pid").display());
        let ours = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == pid_arg.as_bytes());
        ours.then_some(pid)
    }

    /// Writes the hosts files for `hosts` (atomically: dnsmasq may read them at any time)
    /// and tells a running dnsmasq to reread them.
    pub fn set_hosts(&self, hosts: &[Host<'_>]) -> Result<(), DnsmasqError> {
        let mut names = String::new();
        let mut dhcp = String::new();
        for h in hosts {
            let _ = writeln!(names, "{} {}.{DOMAIN} {}", h.ipv4, h.name, h.name);
            if let Some(v6) = h.ipv6 {
                let _ = writeln!(names, "{v6} {}.{DOMAIN} {}", h.name, h.name);
            }
            let _ = writeln!(dhcp, "{},{},{}", h.mac, h.ipv4, h.name);
        }
        write_atomic(&self.file("hosts"), &names)?;
        write_atomic(&self.file("dhcp-hosts"), &dhcp)?;
        if let Some(pid) = self
            .running()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::HUP);
        }
        Ok(())
    }

    /// Starts dnsmasq unless it runs. It daemonizes itself once its sockets are bound, so a
    /// failure (a port taken, a bad address) is reported here with its message.
    pub fn ensure(&self) -> Result<u32, DnsmasqError> {
        if let Some(pid) = self.running() {
            return Ok(pid);
        }
        if !Path::new(DNSMASQ).exists() {
            return Err(DnsmasqError::Missing);
        }
        std::fs::create_dir_all(self.dir).map_err(io(format!("create {}", self.dir.display())))?;
        for f in ["hosts", "dhcp-hosts"] {
            if !self.file(f).exists() {
                write_atomic(&self.file(f), "")?;
            }
        }
        let gw = self.ipv4.addr;
        let net = self.ipv4.network();
        let mask = Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0),
        );
        let mut cmd = Command::new(DNSMASQ);
        cmd.arg("--conf-file=/dev/null")
            .arg(format!("--pid-file={}", self.file("pid").display()))
            .arg(format!(
                "--dhcp-leasefile={}",
                self.file("leases").display()
            ))
            .arg(format!("--addn-hosts={}", self.file("hosts").display()))
            .arg(format!(
                "--dhcp-hostsfile={}",
                self.file("dhcp-hosts").display()
            ))
            .arg(format!("--interface={}", self.bridge))
            .arg("--bind-interfaces")
            .arg("--except-interface=lo")
            .arg(format!("--listen-address={gw}"))
            .arg("--strict-order")
            .arg(format!("--domain={DOMAIN}"))
            .arg(format!("--local=/{DOMAIN}/"))
            .arg("--domain-needed")
            // Only reserved addresses are handed out: no pool to clash with static ones.
            .arg(format!("--dhcp-range={},static,{mask},1h", net.addr))
            .arg("--dhcp-no-override")
            .arg("--dhcp-authoritative")
            .arg(format!("--dhcp-option=option:domain-search,{DOMAIN}"))
            .arg("--user=nobody")
            .arg("--group=nogroup")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .current_dir("/");
        if let Some(v6) = self.ipv6 {
            cmd.arg(format!("--listen-address={}", v6.addr))
                .arg("--enable-ra")
                .arg(format!(
                    "--dhcp-range={},ra-stateless,ra-names,{}",
                    v6.network().addr,
                    v6.prefix
                ));
        }
        let out = cmd.output().map_err(io(format!("run {DNSMASQ}")))?;
        if !out.status.success() {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(DnsmasqError::Failed {
                bridge: self.bridge.to_string(),
                message: if message.is_empty() {
                    out.status.to_string()
                } else {
                    message
                },
            });
        }
        self.running().ok_or_else(|| DnsmasqError::Failed {
            bridge: self.bridge.to_string(),
            message: "it exited after start-up".into(),
        })
    }

    /// Stops this network's dnsmasq (SIGTERM to the pid checked to be ours) and waits a
    /// little for it to go, so that its sockets are free again.
    pub fn stop(&self) {
        let Some(pid) = self.running() else {
            return;
        };
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        // Gone once its command line is (a zombie has none: whoever reaps it is not us).
        for _ in 0..200 {
            if std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(self.file("pid"));
    }

    /// The addresses dnsmasq has handed out: MAC → IPv4, from its lease file.
    pub fn leases(&self) -> Vec<(String, Ipv4Addr)> {
        let text = std::fs::read_to_string(self.file("leases")).unwrap_or_default();
        parse_leases(&text)
    }
}

/// dnsmasq's lease file: "EXPIRY MAC IP NAME CLIENT-ID" per line (IPv6 lines skipped).
pub fn parse_leases(text: &str) -> Vec<(String, Ipv4Addr)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _expiry = f.next()?;
            let mac = f.next()?;
            let ip = f.next()?.parse().ok()?;
            Some((mac.to_ascii_lowercase(), ip))
        })
        .collect()
}

fn write_atomic(path: &Path, text: &str) -> Result<(), DnsmasqError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| {
            // dnsmasq reads them after dropping to nobody.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
        })
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_parse() {
        let text = "1700000000 02:aa:bb:cc:dd:ee 10.1.2.3 web *\n\
                    duid 00:01:00:01\n\
                    1700000001 02:AA:BB:CC:DD:EF 10.1.2.4 * 01:02\n";
        let l = parse_leases(text);
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            ("02:aa:bb:cc:dd:ee".into(), "10.1.2.3".parse().expect("ip"))
        );
        assert_eq!(l[1].0, "02:aa:bb:cc:dd:ef");
    }
}
