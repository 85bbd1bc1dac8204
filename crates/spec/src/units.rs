//! Units as users write them: sizes ("512MiB", "1G": binary multiples, as in LXC and
//! systemd) and cpu counts ("1.5").

use crate::SpecError;

/// Parses a size in bytes. "512M", "512MiB" and "512MB" all mean 512 MiB, the convention of
/// LXC, Incus and systemd; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, SpecError> {
    let t = text.trim();
    if t.is_empty() || t.starts_with('-') || t.starts_with('+') {
        return Err(SpecError::Size(text.to_string()));
    }
    parse_size::Config::new()
        .with_binary()
        .parse_size(t)
        .map_err(|_| SpecError::Size(text.to_string()))
}

/// Parses a hard cpu cap: a positive, finite number of cpus, at most `host_cpus`.
pub fn parse_cpus(text: &str, host_cpus: usize) -> Result<f64, SpecError> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| SpecError::Cpus(text.to_string()))?;
    if !v.is_finite() || v <= 0.0 || v < 0.01 {
        return Err(SpecError::Cpus(text.to_string()));
    }
    if v > host_cpus as f64 {
        return Err(SpecError::Plain(format!(
            "invalid cpu count {text:?}: this host has {host_cpus} cpus; use at most {host_cpus}"
        )));
    }
    Ok(v)
}

/// Parses a process-count limit.
pub fn parse_pids(text: &str) -> Result<u64, SpecError> {
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SpecError::Pids(text.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["", "-1", "12XB", "lots", "1..5G", "+5"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cpus() {
        assert_eq!(parse_cpus("1.5", 2), Ok(1.5));
        assert!(parse_cpus("0", 2).is_err());
        assert!(parse_cpus("-1", 2).is_err());
        assert!(parse_cpus("NaN", 2).is_err());
        assert!(parse_cpus("inf", 2).is_err());
        assert!(parse_cpus("3", 2).is_err());
    }

    #[test]
    fn pids() {
        assert_eq!(parse_pids("100"), Ok(100));
        assert!(parse_pids("0").is_err());
        assert!(parse_pids("-3").is_err());
    }

    proptest! {
        #[test]
        fn any_mib_count_round_trips(n in 1u64..1_000_000) {
            prop_assert_eq!(parse_size(&format!("{n}MiB")), Ok(n << 20));
        }

        #[test]
        fn size_parser_never_panics(s in ".{0,20}") {
            let _ = parse_size(&s);
        }
    }
}
