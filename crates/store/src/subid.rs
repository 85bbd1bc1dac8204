//! Root's subordinate id ranges (/etc/subuid, /etc/subgid), which give unprivileged
//! containers host ids that belong to nobody. When root has none, one is added, as LXD does,
//! at the first free place from 1000000 with 1000000000 ids.

use crate::{StoreError, atomic};
use std::path::Path;

/// Ids a container maps: 0..65536, enough for every id a Debian system uses.
pub const CONTAINER_IDS: u32 = 65536;
const DEFAULT_START: u64 = 1_000_000;
const DEFAULT_COUNT: u64 = 1_000_000_000;

/// One `name:start:count` line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub start: u32,
    pub count: u32,
}

/// Root's first range with room for [`CONTAINER_IDS`] ids, in `text`.
pub fn find_root_range(text: &str) -> Option<Range> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.trim().split(':').collect();
        if f.len() != 3 || (f[0] != "root" && f[0] != "0") {
            return None;
        }
        let start = f[1].parse::<u32>().ok()?;
        let count = f[2].parse::<u32>().ok()?;
        (count >= CONTAINER_IDS && start > 0).then_some(Range { start, count })
    })
}

/// The first start at or after 1000000 that overlaps no range already in `text`.
pub fn free_start(text: &str) -> u64 {
    let mut ranges: Vec<(u64, u64)> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3).then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
        })
        .collect();
    ranges.sort_unstable();
    let mut start = DEFAULT_START;
    for (s, c) in ranges {
        if s < start + DEFAULT_COUNT && start < s + c {
            start = s + c;
        }
    }
    start
}

/// Root's range in `file` (/etc/subuid or /etc/subgid), adding one when there is none. The
/// file is rewritten atomically, keeping every other line as it was.
pub fn root_range(file: &Path) -> Result<Range, StoreError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(StoreError::io("read", file)(e)),
    };
    if let Some(r) = find_root_range(&text) {
        return Ok(r);
    }
    let start = free_start(&text);
    if start + DEFAULT_COUNT > u64::from(u32::MAX) {
        return Err(StoreError::SubId {
            path: file.to_path_buf(),
            reason: "no free id range left; add a line root:START:COUNT by hand".into(),
        });
    }
    let mut new = text.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("root:{start}:{DEFAULT_COUNT}\n"));
    atomic::write(file, new.as_bytes(), 0o644)?;
    tracing::info!(file = %file.display(), start, "added a subordinate id range for root");
    Ok(Range {
        start: start as u32,
        count: DEFAULT_COUNT as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_root() {
        let t = "alice:100000:65536\nroot:1000000:1000000000\n";
        assert_eq!(
            find_root_range(t),
            Some(Range {
                start: 1_000_000,
                count: 1_000_000_000
            })
        );
        assert_eq!(find_root_range("root:100000:10\n"), None);
        assert_eq!(find_root_range("alice:100000:65536\n"), None);
    }

    #[test]
    fn free_start_skips_used_ranges() {
        assert_eq!(free_start(""), 1_000_000);
        assert_eq!(free_start("alice:100000:65536\n"), 1_000_000);
        assert_eq!(free_start("bob:1000000:65536\n"), 1_065_536);
    }

    #[test]
    fn adds_range_when_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("subuid");
        std::fs::write(&f, "alice:100000:65536").expect("write");
        let r = root_range(&f).expect("range");
        assert_eq!(r.start, 1_000_000);
        let text = std::fs::read_to_string(&f).expect("read");
        assert_eq!(text, "alice:100000:65536\nroot:1000000:1000000000\n");
        assert_eq!(root_range(&f).expect("again"), r);
    }
}
