//! `berth top`: one sample of every running container's consumption, cheap enough to take
//! for a hundred containers every refresh (no config is parsed: the state record and the
//! cgroup files are all it reads).

use serde::Serialize;

use crate::Error;
use crate::ops::{Manager, paths};
use berth_cgroups::Cgroup;

/// One running container at one moment. Counters (cpu, network, io) are totals since the
/// start; the caller turns two samples into rates.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub name: String,
    pub pid: i32,
    pub cpu_nanos: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub pids: Option<u64>,
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Bytes received and sent on the container's interfaces other than loopback.
    pub net_rx_bytes: Option<u64>,
    pub net_tx_bytes: Option<u64>,
    /// Bytes used of the container's own disk (`limits.disk`), and its size.
    pub disk_used_bytes: Option<u64>,
    pub disk_size_bytes: Option<u64>,
}

impl Manager {
    /// A sample of every running container, by name.
    pub fn top_sample(&self) -> Result<Vec<Sample>, Error> {
        let mut out = Vec::new();
        for name in self.store.list()? {
            let Some(state) = self.running_state(&name)? else {
                continue;
            };
            let cg = Cgroup::adopt(&paths(&state));
            let u = cg.usage();
            cg.release();
            let (rx, tx) = net_bytes(state.pid).unzip();
            let disk = berth_image::disk::of(&self.store.container_dir(&name))
                .and_then(|_| crate::status::disk_use(state.pid));
            out.push(Sample {
                name,
                pid: state.pid,
                cpu_nanos: u.cpu_nanos,
                memory_bytes: u.memory_bytes,
                memory_limit_bytes: u.memory_limit_bytes,
                pids: u.pids,
                io_read_bytes: u.io_read_bytes,
                io_write_bytes: u.io_write_bytes,
                net_rx_bytes: rx,
                net_tx_bytes: tx,
                disk_used_bytes: disk.map(|d| d.1),
                disk_size_bytes: disk.map(|d| d.0),
            });
        }
        Ok(out)
    }
}

/// Received and sent bytes of the network namespace of `pid`, loopback left out, from
/// /proc/PID/net/dev (which shows the namespace of that process).
fn net_bytes(pid: i32) -> Option<(u64, u64)> {
    // A container on the host's network (`net host`) has no traffic of its own to show.
    let ns = |p: &str| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
    };
    if ns(&format!("/proc/{pid}/ns/net")) == ns("/proc/self/ns/net") {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    Some(parse_net_dev(&text))
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_ascii_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() >= 9 {
            total.0 += f[0];
            total.1 += f[8];
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #[test]
    fn net_dev_sums_all_but_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:    100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:   2000      10    0    0    0     0          0         0      300       3    0    0    0     0       0          0\n  eth1:     50       1    0    0    0     0          0         0        7       1    0    0    0     0       0          0\n";
        assert_eq!(super::parse_net_dev(text), (2050, 307));
    }
}
