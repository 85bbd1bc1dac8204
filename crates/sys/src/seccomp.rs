//! Installing a compiled seccomp BPF program. Compiling it is the caller's business (berth
//! uses libseccomp in the parent and caches the result), so the child only makes one syscall.

use crate::clone::last_errno;
use rustix::io::Errno;

/// One BPF instruction, `struct sock_filter`; 8 bytes, as libseccomp exports them.
pub const INSN_LEN: usize = 8;

/// Loads `program` (raw `struct sock_filter` array, native endian) as a seccomp filter on the
/// calling thread (the container's first process is single-threaded). Without no_new_privs the kernel requires
/// CAP_SYS_ADMIN in the caller's user namespace, which container root has before it drops
/// capabilities.
pub fn load_filter(program: &[u8]) -> Result<(), Errno> {
    if program.is_empty() || !program.len().is_multiple_of(INSN_LEN) {
        return Err(Errno::INVAL);
    }
    // The program must be aligned like `sock_filter`; copy into a u64 buffer to be sure.
    let mut words = vec![0u64; program.len() / INSN_LEN];
    for (w, chunk) in words.iter_mut().zip(program.chunks_exact(INSN_LEN)) {
        let mut b = [0u8; INSN_LEN];
        b.copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    let prog = libc::sock_fprog {
        len: words.len() as u16,
        filter: words.as_mut_ptr().cast::<libc::sock_filter>(),
    };
    // SAFETY: `prog` points at `len` properly aligned sock_filter instructions that live for
    // the duration of the call; the kernel copies them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw_os_error(last_errno()))
    }
}
