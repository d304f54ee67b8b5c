//! The process's open-descriptor limit (`RLIMIT_NOFILE`): raise it for many connections, lower
//! it to provoke `EMFILE`.
//!
//! Shared by the `net_*` tests (as `net_util::fd_limit`) and by the echo bench, which compiles
//! it with `#[path = "../../tests/net_util/fd_limit.rs"] mod fd_limit;`, so it uses nothing but
//! std and libc. Linux: `rlim_t` is a u64 there.

/// The soft and hard descriptor limits now in force, `None` if they cannot be read.
pub fn fd_limits() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit to write into.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some(limit)
}

/// Sets the soft descriptor limit to `soft`, keeping the hard one. Lowering it, or raising it
/// up to the hard limit, is always allowed; above the hard limit it fails with `EINVAL`.
pub fn set_soft_fd_limit(soft: u64) -> std::io::Result<()> {
    let mut limit = fd_limits().ok_or_else(std::io::Error::last_os_error)?;
    limit.rlim_cur = soft;
    // SAFETY: `limit` is a valid rlimit read from the kernel, its hard limit unchanged.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit now in force
/// (1024, the usual default, if the limits cannot be read at all).
pub fn raise_fd_limit() -> u64 {
    let Some(limit) = fd_limits() else { return 1024 };
    // If raising fails the old soft limit stays in force, and is what is read back.
    let _ = set_soft_fd_limit(limit.rlim_max);
    fd_limits().map_or(limit.rlim_cur, |now| now.rlim_cur)
}
