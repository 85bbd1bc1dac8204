//! `berth network`, `berth port`, `berth doctor`, and the `--net` flag of create and
//! launch: networking from the command line, in the words of LXC and Incus users.

use super::system::{Format, fail};
use crate::Failure;
use anyhow::anyhow;
use berth_manager::Manager;
use berth_manager::networks::{self, CreateOptions};
use berth_spec::config::PortConfig;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::Path;

/// `--net TYPE[=ARG][,KEY=VALUE...]` as config settings: `bridge` (berth0), `bridge=lan0`,
/// `routed=10.44.0.10`, `macvlan=eth0`, `none`, `host`, then any [[net]] key, e.g.
/// `--net bridge,ipv4=10.44.0.10/24`.
pub fn net_settings(spec: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = spec.split(',');
    let first = parts.next().unwrap_or_default();
    let (kind, arg) = match first.split_once('=') {
        Some((k, a)) => (k, Some(a)),
        None => (first, None),
    };
    let mut out = vec![("net.type".to_string(), kind.to_string())];
    if let Some(arg) = arg {
        let key = match kind {
            "bridge" => "bridge",
            "macvlan" => "parent",
            "routed" => "ipv4",
            _ => {
                return Err(format!(
                    "--net {spec}: {kind} takes no value (bridge=NETWORK, routed=ADDRESS, macvlan=PARENT)"
                ));
            }
        };
        out.push((format!("net.{key}"), arg.to_string()));
    }
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--net {spec}: {kv:?} is not KEY=VALUE"))?;
        out.push((format!("net.{k}"), v.to_string()));
    }
    Ok(out)
}

#[derive(Args, Debug)]
pub struct NetworkArgs {
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Subcommand, Debug)]
enum NetworkCommand {
    /// Make a managed network: a bridge with NAT, DHCP and DNS.
    Create {
        name: String,
        /// Its IPv4 subnet, e.g. 10.50.0.0/24 (default: a free 10.x.y.0/24).
        #[arg(long)]
        subnet: Option<String>,
        /// Masquerade its traffic to the outside (the default).
        #[arg(long, conflicts_with = "no_nat")]
        nat: bool,
        /// No NAT: the containers reach only the host and each other.
        #[arg(long)]
        no_nat: bool,
        /// Its IPv6 prefix (e.g. fd42:1:2:3::/64), or `none` (default: a free ULA /64).
        #[arg(long)]
        ipv6: Option<String>,
    },
    /// List the managed networks.
    List {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show a network: addresses, bridge, leases.
    Show {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Delete a network no container uses.
    Delete { name: String },
}

fn network_json(store: &berth_store::Store, n: &networks::Network) -> serde_json::Value {
    let leases: serde_json::Map<String, serde_json::Value> = n
        .file
        .leases
        .iter()
        .map(|(c, l)| (c.clone(), json!({"ipv4": l.ipv4, "mac": l.mac})))
        .collect();
    json!({
        "name": n.name,
        "bridge": n.file.bridge,
        "ipv4": n.file.ipv4,
        "subnet": n.ipv4.network().to_string(),
        "ipv6": n.file.ipv6,
        "nat": n.file.nat,
        "dns": n.ipv4.addr.to_string(),
        "up": Path::new("/sys/class/net").join(&n.file.bridge).exists(),
        "firewall_table": networks::table(store),
        "leases": leases,
    })
}

pub fn network(root: &Path, a: NetworkArgs) -> Result<u8, Failure> {
    let m = Manager::open(root).map_err(fail)?;
    let store = &m.store;
    match a.command {
        NetworkCommand::Create {
            name,
            subnet,
            nat: _,
            no_nat,
            ipv6,
        } => {
            let subnet = subnet
                .map(|s| s.parse().map_err(|e| fail(anyhow!("--subnet: {e}"))))
                .transpose()?;
            let ipv6 = match ipv6.as_deref() {
                None => None,
                Some("none") => Some(None),
                Some(t) => Some(Some(
                    t.parse()
                        .map_err(|e| fail(anyhow!("--ipv6: {e}, or none")))?,
                )),
            };
            let opts = CreateOptions {
                subnet,
                nat: !no_nat,
                ipv6,
            };
            let n = networks::create(store, &name, &opts).map_err(fail)?;
            println!(
                "network {} is up: bridge {}, {}{}",
                n.name,
                n.file.bridge,
                n.file.ipv4,
                n.file
                    .ipv6
                    .as_deref()
                    .map(|v| format!(", {v}"))
                    .unwrap_or_default()
            );
        }
        NetworkCommand::List { format } => {
            let all = networks::list(store).map_err(fail)?;
            match format {
                Format::Json => {
                    let v: Vec<_> = all.iter().map(|n| network_json(store, n)).collect();
                    println!("{}", serde_json::to_string_pretty(&v).map_err(fail)?);
                }
                Format::Table => {
                    println!(
                        "{:<16} {:<12} {:<18} {:<28} {:<4} {:>6}",
                        "NAME", "BRIDGE", "IPV4", "IPV6", "NAT", "LEASES"
                    );
                    for n in &all {
                        println!(
                            "{:<16} {:<12} {:<18} {:<28} {:<4} {:>6}",
                            n.name,
                            n.file.bridge,
                            n.file.ipv4,
                            n.file.ipv6.as_deref().unwrap_or("-"),
                            if n.file.nat { "yes" } else { "no" },
                            n.file.leases.len()
                        );
                    }
                }
            }
        }
        NetworkCommand::Show { name, format } => {
            networks::check_name(&name).map_err(fail)?;
            let n = networks::load(store, &name).map_err(fail)?.ok_or_else(|| {
                fail(anyhow!(
                    "network {name} does not exist (`berth network list`)"
                ))
            })?;
            let v = network_json(store, &n);
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&v).map_err(fail)?),
                Format::Table => {
                    for key in [
                        "name",
                        "bridge",
                        "ipv4",
                        "ipv6",
                        "nat",
                        "dns",
                        "up",
                        "firewall_table",
                    ] {
                        let text = match &v[key] {
                            serde_json::Value::String(s) => s.clone(),
                            serde_json::Value::Null => "-".into(),
                            other => other.to_string(),
                        };
                        println!("{key:<15} {text}");
                    }
                    println!("leases:");
                    for (c, l) in &n.file.leases {
                        println!("  {c:<24} {:<16} {}", l.ipv4, l.mac);
                    }
                }
            }
        }
        NetworkCommand::Delete { name } => networks::delete(store, &name).map_err(fail)?,
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct PortArgs {
    #[command(subcommand)]
    command: PortCommand,
}

#[derive(Subcommand, Debug)]
enum PortCommand {
    /// Forward HOST_PORT of the host (its loopback too) to CONTAINER_PORT of NAME.
    Add {
        name: String,
        host_port: u16,
        container_port: u16,
        #[arg(long, default_value = "tcp", value_name = "tcp|udp")]
        proto: String,
        /// Only for traffic to this host address.
        #[arg(long)]
        host_ip: Option<String>,
    },
    /// List a container's forwards.
    List {
        name: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Remove the forward of HOST_PORT.
    Remove {
        name: String,
        host_port: u16,
        #[arg(long, default_value = "tcp", value_name = "tcp|udp")]
        proto: String,
        /// Only the forward for this host address (when one port has several).
        #[arg(long)]
        host_ip: Option<String>,
    },
}

pub fn port(root: &Path, a: PortArgs) -> Result<u8, Failure> {
    let m = Manager::open(root).map_err(fail)?;
    match a.command {
        PortCommand::Add {
            name,
            host_port,
            container_port,
            proto,
            host_ip,
        } => {
            let p = PortConfig {
                host_port,
                container_port,
                proto,
                host_ip,
            };
            m.port_add(&name, p).map_err(fail)?;
        }
        PortCommand::List { name, format } => {
            let c = m.config(&name).map_err(fail)?;
            match format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&c.ports).map_err(fail)?)
                }
                Format::Table => {
                    println!(
                        "{:<6} {:<16} {:>9} {:>14}",
                        "PROTO", "HOST IP", "HOST PORT", "CONTAINER PORT"
                    );
                    for p in &c.ports {
                        println!(
                            "{:<6} {:<16} {:>9} {:>14}",
                            p.proto,
                            p.host_ip.as_deref().unwrap_or("*"),
                            p.host_port,
                            p.container_port
                        );
                    }
                }
            }
        }
        PortCommand::Remove {
            name,
            host_port,
            proto,
            host_ip,
        } => m
            .port_remove(&name, host_port, &proto, host_ip.as_deref())
            .map_err(fail)?,
    }
    Ok(0)
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Only report; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `berth doctor`: what stopped or deleted containers left on the host, removed, and a
/// network's dead dnsmasq started again.
pub fn doctor(root: &Path, a: DoctorArgs) -> Result<u8, Failure> {
    let m = Manager::open(root).map_err(fail)?;
    let found = networks::doctor(&m.store, !a.dry_run).map_err(fail)?;
    if found.is_empty() {
        println!("nothing left behind");
    }
    for f in &found {
        println!("{}: {f}", if a.dry_run { "found" } else { "fixed" });
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_flags_become_settings() {
        let s = |spec: &str| net_settings(spec).expect(spec);
        assert_eq!(s("none"), vec![("net.type".into(), "none".into())]);
        assert_eq!(s("bridge=lan0")[1], ("net.bridge".into(), "lan0".into()));
        assert_eq!(
            s("routed=10.1.2.3")[1],
            ("net.ipv4".into(), "10.1.2.3".into())
        );
        assert_eq!(s("macvlan=eth0")[1], ("net.parent".into(), "eth0".into()));
        assert_eq!(
            s("bridge,ipv4=10.1.2.3/24,mac=02:00:00:00:00:01")[2],
            ("net.mac".into(), "02:00:00:00:00:01".into())
        );
        assert!(net_settings("none=x").is_err());
        assert!(net_settings("bridge,ipv4").is_err());
    }
}
