//! Resource limits and how each becomes cgroup files: pure functions and tables, so the
//! kernel-facing code only loops over what these return.

/// CFS bandwidth period for the cpus limit: 100 ms, the kernel's default and what
/// runc, crun and systemd use, so `cpus = 1.5` reads the same in every tool.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The kernel refuses a quota below 1 ms (`min_cfs_quota_period`, kernel/sched/core.c).
const CPU_QUOTA_MIN_US: u64 = 1_000;

/// The kernel refuses a quota above `MAX_BW` = 2^44 - 1 µs (kernel/sched/sched.h), so that
/// the bandwidth arithmetic cannot overflow.
const CPU_QUOTA_MAX_US: u64 = (1 << 44) - 1;

/// The controllers that enforce [`Limits`]; on v2 these are the ones a new cgroup's parent
/// must enable in `cgroup.subtree_control`.
pub const LIMIT_CONTROLLERS: [&str; 3] = [MEMORY.controller, PIDS.controller, CPU.controller];

/// Which controller enforces a limit and which files hold it, per cgroup version (written in
/// this order). Sources: Documentation/admin-guide/cgroup-v1/memory.rst, cgroup-v1/pids.rst,
/// scheduler/sched-bwc.rst, and cgroup-v2.rst for the v2 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Files {
    pub controller: &'static str,
    pub v1: &'static [&'static str],
    pub v2: &'static [&'static str],
}

pub(crate) const MEMORY: Files = Files {
    controller: "memory",
    v1: &["memory.limit_in_bytes"],
    v2: &["memory.max"],
};

pub(crate) const PIDS: Files = Files {
    controller: "pids",
    v1: &["pids.max"],
    v2: &["pids.max"],
};

/// v1 writes the period before the quota: the kernel checks the quota against the period
/// already in place.
pub(crate) const CPU: Files = Files {
    controller: "cpu",
    v1: &["cpu.cfs_period_us", "cpu.cfs_quota_us"],
    v2: &["cpu.max"],
};

/// The limits berth applies to a container's cgroup. `None` leaves the kernel's default
/// (unlimited) in place.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory, page cache included.
    pub memory: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
    /// A hard cap in CPUs' worth of time per period (1.5 = one and a half CPUs).
    pub cpus: Option<f64>,
}

/// A limit the kernel would refuse or that could only break the container.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitError {
    #[error("limits.cpus must be a finite number greater than 0, not {cpus}")]
    CpusNotPositive { cpus: f64 },
    #[error("limits.cpus = {cpus} is below the kernel's minimum of 0.01 (1 ms per 100 ms)")]
    CpusTooSmall { cpus: f64 },
    #[error("limits.cpus = {cpus} is above the kernel's maximum quota")]
    CpusTooLarge { cpus: f64 },
    #[error("limits.memory = 0 would kill the container at once")]
    MemoryZero,
    #[error("limits.pids = 0 would keep the container from starting any process")]
    PidsZero,
}

/// A CFS bandwidth limit: at most `quota_us` of CPU time every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl Limits {
    /// Refuses values before any cgroup file is touched, so a bad config fails with the
    /// field's name instead of a bare EINVAL half-way through applying.
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.memory == Some(0) {
            return Err(LimitError::MemoryZero);
        }
        if self.pids == Some(0) {
            return Err(LimitError::PidsZero);
        }
        if let Some(cpus) = self.cpus {
            if !cpus.is_finite() || cpus <= 0.0 {
                return Err(LimitError::CpusNotPositive { cpus });
            }
            let quota = cpu_quota(cpus).quota_us;
            if quota < CPU_QUOTA_MIN_US {
                return Err(LimitError::CpusTooSmall { cpus });
            }
            if quota > CPU_QUOTA_MAX_US {
                return Err(LimitError::CpusTooLarge { cpus });
            }
        }
        Ok(())
    }
}

/// `cpus` as a quota over [`CPU_PERIOD_US`], rounded to the nearest microsecond.
/// Meaningful for values that passed [`Limits::validate`]; others saturate.
pub fn cpu_quota(cpus: f64) -> CpuQuota {
    // `as` saturates on overflow and maps NaN to 0; validate() rejects both beforehand.
    let quota_us = (cpus * CPU_PERIOD_US as f64).round() as u64;
    CpuQuota {
        quota_us,
        period_us: CPU_PERIOD_US,
    }
}

/// One limit ready to write: the controller that must be present, and the values for the
/// files of [`Files`], index-aligned with `files.v1` and `files.v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    pub files: Files,
    pub v1: Vec<String>,
    pub v2: Vec<String>,
}

impl Setting {
    /// The (file, value) pairs for a v1 hierarchy or the v2 tree.
    pub fn writes(&self, v2: bool) -> impl Iterator<Item = (&'static str, &str)> {
        let (files, values) = if v2 {
            (self.files.v2, &self.v2)
        } else {
            (self.files.v1, &self.v1)
        };
        files.iter().copied().zip(values.iter().map(String::as_str))
    }
}

/// The settings for `limits`, one per limit given, in a fixed order.
pub(crate) fn settings(limits: &Limits) -> Vec<Setting> {
    let mut out = Vec::with_capacity(3);
    if let Some(bytes) = limits.memory {
        out.push(Setting {
            files: MEMORY,
            v1: vec![bytes.to_string()],
            v2: vec![bytes.to_string()],
        });
    }
    if let Some(pids) = limits.pids {
        out.push(Setting {
            files: PIDS,
            v1: vec![pids.to_string()],
            v2: vec![pids.to_string()],
        });
    }
    if let Some(cpus) = limits.cpus {
        let CpuQuota {
            quota_us,
            period_us,
        } = cpu_quota(cpus);
        out.push(Setting {
            files: CPU,
            v1: vec![period_us.to_string(), quota_us.to_string()],
            v2: vec![format!("{quota_us} {period_us}")],
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_has_a_value_per_file() {
        let all = Limits {
            memory: Some(1),
            pids: Some(1),
            cpus: Some(1.0),
        };
        let settings = settings(&all);
        assert_eq!(settings.len(), LIMIT_CONTROLLERS.len());
        for s in &settings {
            assert_eq!(s.files.v1.len(), s.v1.len(), "{}", s.files.controller);
            assert_eq!(s.files.v2.len(), s.v2.len(), "{}", s.files.controller);
            assert!(LIMIT_CONTROLLERS.contains(&s.files.controller));
        }
    }

    #[test]
    fn cpus_become_quota_over_a_100ms_period() {
        let cases = [
            (1.5, 150_000),
            (1.0, 100_000),
            (0.01, 1_000),
            (0.333_333, 33_333),
            (0.000_015, 2),
            (64.0, 6_400_000),
        ];
        for (cpus, quota_us) in cases {
            assert_eq!(
                cpu_quota(cpus),
                CpuQuota {
                    quota_us,
                    period_us: 100_000
                },
                "{cpus}"
            );
        }
    }

    #[test]
    fn settings_name_files_and_values_per_version() {
        let limits = Limits {
            memory: Some(512 << 20),
            pids: Some(100),
            cpus: Some(1.5),
        };
        let settings = settings(&limits);
        let v1: Vec<(&str, &str)> = settings.iter().flat_map(|s| s.writes(false)).collect();
        let v2: Vec<(&str, &str)> = settings.iter().flat_map(|s| s.writes(true)).collect();
        assert_eq!(
            v1,
            [
                ("memory.limit_in_bytes", "536870912"),
                ("pids.max", "100"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "150000"),
            ]
        );
        assert_eq!(
            v2,
            [
                ("memory.max", "536870912"),
                ("pids.max", "100"),
                ("cpu.max", "150000 100000"),
            ]
        );
    }

    #[test]
    fn no_limits_no_settings() {
        assert!(settings(&Limits::default()).is_empty());
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn validate_refuses_what_the_kernel_or_the_container_cannot_take() {
        let cpus = |cpus| Limits {
            cpus: Some(cpus),
            ..Limits::default()
        };
        for bad in [0.0, -1.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(
                matches!(
                    cpus(bad).validate(),
                    Err(LimitError::CpusNotPositive { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            cpus(0.0049).validate(),
            Err(LimitError::CpusTooSmall { .. })
        ));
        assert!(matches!(
            cpus(1e9).validate(),
            Err(LimitError::CpusTooLarge { .. })
        ));
        assert_eq!(cpus(0.01).validate(), Ok(()));
        assert_eq!(cpus(1.5).validate(), Ok(()));
        assert_eq!(cpus(1e8).validate(), Ok(()));
        let memory = Limits {
            memory: Some(0),
            ..Limits::default()
        };
        assert_eq!(memory.validate(), Err(LimitError::MemoryZero));
        let pids = Limits {
            pids: Some(0),
            ..Limits::default()
        };
        assert_eq!(pids.validate(), Err(LimitError::PidsZero));
    }
}
