//! Reading and writing cgroup control files. The kernel acts on each `write(2)` as one
//! command, so a value must go out in a single syscall (no buffered writer that might split
//! it), and the files already exist, so nothing here creates or truncates.

use std::io;
use std::path::Path;

use rustix::buffer::spare_capacity;
use rustix::fs::{Mode, OFlags};

use crate::Error;

/// Control files are short; one page holds any of the ones read here in one `read(2)`.
const READ_CHUNK: usize = 4096;

/// Writes `value` to the control file `path` with one `write(2)`.
pub(crate) fn write(path: &Path, value: &str) -> io::Result<()> {
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let written = rustix::io::write(&fd, value.as_bytes())?;
    if written != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("the kernel took {written} of {} bytes", value.len()),
        ));
    }
    Ok(())
}

/// Reads the whole control file `path`.
pub(crate) fn read(path: &Path) -> io::Result<String> {
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    loop {
        buf.reserve(READ_CHUNK);
        if rustix::io::read(&fd, spare_capacity(&mut buf))? == 0 {
            break;
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// [`write`], with the failure reported as [`Error::Write`] on `path`.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<(), Error> {
    write(path, value).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

/// [`read`], with the failure reported as [`Error::Read`] on `path`.
pub(crate) fn read_file(path: &Path) -> Result<String, Error> {
    read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}
