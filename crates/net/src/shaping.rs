//! Bandwidth limits of a container (`limits.net_ingress`, `limits.net_egress`), set on the
//! host side of its interface, so that root inside cannot remove them.
//!
//! Traffic into the container leaves the host through the host end of its veth: a token
//! bucket (tbf) as that device's root qdisc bounds it. Traffic out of the container arrives
//! on the host end as ingress, which a qdisc cannot delay; without the police action (not
//! in every kernel), it is redirected (mirred) to an ifb device, where a tbf bounds it like
//! egress. Driven through iproute2's `tc` and `ip`, whose netlink encoding of qdiscs and
//! filters is theirs to keep right.

use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run {tool}: {source} (install iproute2)")]
    Spawn {
        tool: &'static str,
        source: std::io::Error,
    },
    #[error("`{command}` failed: {message}")]
    Failed { command: String, message: String },
    #[error(
        "interface name {0:?} is not one this host can have (1 to 15 bytes, no '/', ':' or space)"
    )]
    BadName(String),
}

/// The rates to hold an interface to, in bits per second; None lifts a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shaping {
    /// Into the container (the host end's egress).
    pub ingress_bps: Option<u64>,
    /// Out of the container (the host end's ingress, through an ifb).
    pub egress_bps: Option<u64>,
}

/// Interface names as the kernel takes them (see [`crate::link::check_name`]).
fn check_name(name: &str) -> Result<(), Error> {
    crate::link::check_name(name).map_err(|_| Error::BadName(name.to_string()))
}

fn run(tool: &'static str, args: &[&str]) -> Result<(), Error> {
    let out = Command::new(tool)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| Error::Spawn { tool, source })?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Failed {
        command: format!("{tool} {}", args.join(" ")),
        message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// The ifb device that carries the traffic out of the container whose host end is
/// `host_if`: derived from its name, so that every command finds the same one.
pub fn ifb_name(host_if: &str) -> String {
    format!("bifb{:08x}", crate::addr::fnv(&[host_if.as_bytes()]) as u32)
}

/// The token bucket for `bps`: a burst of at least one full-size packet and about 10 ms at
/// the rate (tbf needs burst >= rate / HZ), and a queue of 50 ms (latency).
fn tbf_args(bps: u64) -> Vec<String> {
    let burst = (bps / 8 / 100).max(15_140);
    vec![
        "tbf".into(),
        "rate".into(),
        format!("{bps}bit"),
        "burst".into(),
        burst.to_string(),
        "latency".into(),
        "50ms".into(),
    ]
}

/// Puts `shaping` on the host end `host_if` of a container's interface, replacing what was
/// there (so that it also serves a live change); a rate of None removes its part.
pub fn apply(host_if: &str, shaping: &Shaping) -> Result<(), Error> {
    check_name(host_if)?;
    // Into the container: the root qdisc of the host end.
    match shaping.ingress_bps {
        Some(bps) => {
            let mut args: Vec<String> = ["qdisc", "replace", "dev", host_if, "root"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(tbf_args(bps));
            run("tc", &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        }
        None => {
            // Absent already is fine: the device keeps its default qdisc.
            let _ = run("tc", &["qdisc", "del", "dev", host_if, "root"]);
        }
    }
    // Out of the container: ingress of the host end, redirected to the ifb.
    let ifb = ifb_name(host_if);
    match shaping.egress_bps {
        Some(bps) => {
            if run("ip", &["link", "show", "dev", &ifb]).is_err() {
                run("ip", &["link", "add", &ifb, "type", "ifb"])?;
            }
            run("ip", &["link", "set", "dev", &ifb, "up"])?;
            let mut args: Vec<String> = ["qdisc", "replace", "dev", &ifb, "root"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            args.extend(tbf_args(bps));
            run("tc", &args.iter().map(String::as_str).collect::<Vec<_>>())?;
            // The ingress qdisc and its one redirecting filter, made afresh.
            let _ = run("tc", &["qdisc", "del", "dev", host_if, "ingress"]);
            run(
                "tc",
                &["qdisc", "add", "dev", host_if, "handle", "ffff:", "ingress"],
            )?;
            run(
                "tc",
                &[
                    "filter", "add", "dev", host_if, "parent", "ffff:", "protocol", "all", "u32",
                    "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
                    &ifb,
                ],
            )?;
        }
        None => {
            let _ = run("tc", &["qdisc", "del", "dev", host_if, "ingress"]);
            remove_ifb(host_if);
        }
    }
    Ok(())
}

/// Removes the ifb of `host_if` if there is one (the host end's own qdiscs go with the
/// device): over netlink, no process spawned at a container's stop.
pub fn remove_ifb(host_if: &str) {
    let Ok(mut nl) = crate::link::Netlink::open() else {
        return;
    };
    if let Ok(Some(index)) = nl.index(&ifb_name(host_if)) {
        let _ = nl.delete(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifb_names_are_stable_short_and_distinct() {
        let a = ifb_name("veth-web");
        assert_eq!(a, ifb_name("veth-web"));
        assert_ne!(a, ifb_name("veth-db"));
        assert!(a.len() <= 15, "{a}");
    }

    #[test]
    fn burst_holds_a_packet_and_ten_milliseconds() {
        assert_eq!(tbf_args(1_000_000)[4], "15140");
        assert_eq!(tbf_args(1_000_000_000)[4], "1250000");
        assert_eq!(tbf_args(20_000_000)[2], "20000000bit");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "a/b", "x:1", "0123456789abcdef", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("veth0").is_ok());
    }
}
