//! `berth top`: every running container's CPU, memory, processes, disk I/O and network,
//! refreshed like top(1); `--format json` prints one sample and exits.

use crate::Failure;
use crate::cmd::system::{Format, bytes, fail};
use berth_manager::Manager;
use berth_manager::top::Sample;
use clap::Args;
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TopArgs {
    /// Seconds between refreshes (and, with --format json, the measuring interval).
    #[arg(long, short = 'd', default_value_t = 2.0)]
    delay: f64,
    /// Refreshes before exiting (default: until interrupted).
    #[arg(long, short = 'n')]
    iterations: Option<u64>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// One container's rates over an interval.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    pid: i32,
    /// 100 = one CPU busy.
    cpu_percent: Option<f64>,
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    pids: Option<u64>,
    io_read_bytes_per_s: Option<f64>,
    io_write_bytes_per_s: Option<f64>,
    net_rx_bytes_per_s: Option<f64>,
    net_tx_bytes_per_s: Option<f64>,
    disk_used_bytes: Option<u64>,
    disk_size_bytes: Option<u64>,
}

fn rate(now: Option<u64>, before: Option<u64>, secs: f64) -> Option<f64> {
    Some(now?.saturating_sub(before?) as f64 / secs)
}

fn rows(before: &[Sample], now: Vec<Sample>, secs: f64) -> Vec<Row> {
    let old: HashMap<&str, &Sample> = before.iter().map(|s| (s.name.as_str(), s)).collect();
    now.into_iter()
        .map(|s| {
            let b = old.get(s.name.as_str()).filter(|b| b.pid == s.pid);
            let prev = |f: fn(&Sample) -> Option<u64>| b.and_then(|b| f(b));
            Row {
                cpu_percent: rate(s.cpu_nanos, prev(|b| b.cpu_nanos), secs).map(|ns| ns / 1e7),
                io_read_bytes_per_s: rate(s.io_read_bytes, prev(|b| b.io_read_bytes), secs),
                io_write_bytes_per_s: rate(s.io_write_bytes, prev(|b| b.io_write_bytes), secs),
                net_rx_bytes_per_s: rate(s.net_rx_bytes, prev(|b| b.net_rx_bytes), secs),
                net_tx_bytes_per_s: rate(s.net_tx_bytes, prev(|b| b.net_tx_bytes), secs),
                name: s.name,
                pid: s.pid,
                memory_bytes: s.memory_bytes,
                memory_limit_bytes: s.memory_limit_bytes,
                pids: s.pids,
                disk_used_bytes: s.disk_used_bytes,
                disk_size_bytes: s.disk_size_bytes,
            }
        })
        .collect()
}

fn per_s(v: Option<f64>) -> String {
    v.map(|b| format!("{}/s", bytes(b as u64)))
        .unwrap_or_else(|| "-".into())
}

fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<24} {:>8} {:>6} {:>21} {:>5} {:>21} {:>23} {:>23}\n",
        "NAME",
        "PID",
        "CPU%",
        "MEMORY (LIMIT)",
        "PIDS",
        "DISK (SIZE)",
        "DISK READ/WRITE",
        "NET RX/TX"
    );
    for r in rows {
        let mem = match (r.memory_bytes, r.memory_limit_bytes) {
            (Some(m), Some(l)) => format!("{} ({})", bytes(m), bytes(l)),
            (Some(m), None) => bytes(m),
            _ => "-".into(),
        };
        let disk = match (r.disk_used_bytes, r.disk_size_bytes) {
            (Some(u), Some(s)) => format!("{} ({})", bytes(u), bytes(s)),
            _ => "-".into(),
        };
        out.push_str(&format!(
            "{:<24} {:>8} {:>6} {:>21} {:>5} {:>21} {:>23} {:>23}\n",
            r.name,
            r.pid,
            r.cpu_percent
                .map(|c| format!("{c:.1}"))
                .unwrap_or_else(|| "-".into()),
            mem,
            r.pids.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            disk,
            format!(
                "{} {}",
                per_s(r.io_read_bytes_per_s),
                per_s(r.io_write_bytes_per_s)
            ),
            format!(
                "{} {}",
                per_s(r.net_rx_bytes_per_s),
                per_s(r.net_tx_bytes_per_s)
            ),
        ));
    }
    out
}

pub fn main(root: &Path, a: TopArgs) -> Result<u8, Failure> {
    if !(a.delay.is_finite() && a.delay > 0.0 && a.delay <= 3600.0) {
        return Err(fail(anyhow::anyhow!(
            "--delay must be a number of seconds above 0 (and at most 3600), not {}",
            a.delay
        )));
    }
    let m = Manager::open(root).map_err(fail)?;
    let delay = Duration::from_secs_f64(a.delay);
    let mut before = m.top_sample().map_err(fail)?;
    let mut taken = Instant::now();
    let mut shown = 0u64;
    loop {
        std::thread::sleep(delay);
        let now = m.top_sample().map_err(fail)?;
        let secs = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        let keep = now.clone();
        let rows = rows(&before, now, secs);
        before = keep;
        if a.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&rows).map_err(fail)?);
            return Ok(0);
        }
        // On a terminal, clear the screen and home the cursor, as top(1) redraws; into a
        // pipe or file, one table after another.
        let mut stdout = std::io::stdout().lock();
        let clear = if rustix::termios::isatty(&stdout) {
            "\x1b[H\x1b[2J"
        } else {
            ""
        };
        let _ = write!(stdout, "{clear}{}", table(&rows));
        let _ = stdout.flush();
        shown += 1;
        if a.iterations.is_some_and(|n| shown >= n) {
            return Ok(0);
        }
    }
}
