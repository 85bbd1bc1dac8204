//! Block devices named by the I/O throttle keys, looked up on the host: a throttle is keyed
//! by the device's number, and only whole disks take one.

use std::path::Path;

use berth_spec::Limits;

/// Fills in the (major, minor) of every device of `limits.io`. Refuses a path that is not
/// a block device, and a partition (the kernel throttles whole disks: io.max refuses a
/// partition, and v1 would silently throttle nothing). The error: the device as written,
/// and what is wrong with it.
pub fn resolve_devices(limits: &mut Limits) -> Result<(), (String, String)> {
    for io in &mut limits.io {
        let shown = io.device.display().to_string();
        let stat = rustix::fs::stat(&io.device).map_err(|e| {
            (
                shown.clone(),
                format!("device {shown}: {e}: name an existing block device (see lsblk)"),
            )
        })?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::BlockDevice {
            return Err((
                shown.clone(),
                format!("{shown} is not a block device (see lsblk)"),
            ));
        }
        let (major, minor) = (
            rustix::fs::major(stat.st_rdev),
            rustix::fs::minor(stat.st_rdev),
        );
        let sys = format!("/sys/dev/block/{major}:{minor}");
        if Path::new(&sys).join("partition").exists() {
            let disk = std::fs::canonicalize(Path::new(&sys).join(".."))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "the disk".into());
            return Err((
                shown.clone(),
                format!(
                    "{shown} is a partition; the kernel throttles whole disks: use /dev/{disk}"
                ),
            ));
        }
        io.dev = (major, minor);
    }
    Ok(())
}
