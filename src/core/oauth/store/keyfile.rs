//! The directory's key file: the key that names and authenticates the records.

use super::*;

/// The binding key of the token cache directory `dir`, created if there is none: 32 random
/// bytes written to a new file of a random name (`O_EXCL`, mode 0600) that is then hard-linked
/// to [`KEY_FILE`] (which fails if another process was first: its key is used), so no
/// process ever reads half a key. The file is checked like a record: not a symbolic link,
/// a regular file of this user with no group/other permission bits, exactly 32 bytes.
#[cfg(unix)]
pub(super) fn load_key(dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    let path = dir.join(KEY_FILE);
    let shown = shorten(&path.display().to_string());
    let fail = |why: String| format!("the token cache key file '{shown}' {why}");
    for _ in 0..3 {
        match read_key(&path) {
            Ok(Some(key)) => return Ok(key),
            Ok(None) => create_key(dir, &path).map_err(|e| fail(format!("cannot be created ({e})")))?,
            Err(why) => {
                return Err(fail(format!("{why}; remove it (dpopkit creates a new key, and the cached tokens are fetched again)")));
            }
        }
    }
    Err(fail("keeps disappearing (another process removes it)".into()))
}

/// [`load_key`] on Windows: the key file is read with the record checks of sys_windows
/// (no reparse point, a disk file with one link, this user's, nobody else in its DACL) and
/// created as a new private file that is then moved to its name without replacing one
/// (`MoveFileExW` without `MOVEFILE_REPLACE_EXISTING`: the first process's key wins).
#[cfg(windows)]
pub(super) fn load_key(dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    use std::io::{Read, Write};
    let path = dir.join(KEY_FILE);
    let shown = shorten(&path.display().to_string());
    let fail = |why: String| format!("the token cache key file '{shown}' {why}");
    let random = |buf: &mut [u8]| {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
            .map_err(|_| std::io::Error::other("no random numbers from the system"))
    };
    for _ in 0..3 {
        match crate::core::sys::windows::open_private_read(&path) {
            Ok(Some(file)) => {
                let len = file.metadata().map_err(|e| fail(format!("cannot be examined ({e})")))?.len();
                if len != KEY_LEN as u64 {
                    return Err(fail(format!("is {len} bytes long, not {KEY_LEN}; remove it (dpopkit creates a new key)")));
                }
                let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                file.take(KEY_LEN as u64).read_exact(&mut bytes[..]).map_err(|e| fail(format!("cannot be read ({e})")))?;
                return Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes[..]));
            }
            Ok(None) => {
                let create = || -> std::io::Result<()> {
                    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                    random(&mut bytes[..])?;
                    let mut unique = [0u8; 8];
                    random(&mut unique)?;
                    let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", u64::from_le_bytes(unique)));
                    let mut file = crate::core::sys::windows::create_new_private(&tmp)?;
                    let moved = file.write_all(&bytes[..]).and_then(|_| file.sync_all()).and_then(|_| {
                        drop(file);
                        match crate::core::sys::windows::move_no_replace(&tmp, &path) {
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                            other => other,
                        }
                    });
                    let _ = std::fs::remove_file(&tmp);
                    moved
                };
                create().map_err(|e| fail(format!("cannot be created ({e})")))?;
            }
            Err(why) => return Err(fail(format!("{why}; remove it (dpopkit creates a new key, and the cached tokens are fetched again)"))),
        }
    }
    Err(fail("keeps disappearing (another process removes it)".into()))
}

#[cfg(not(any(unix, windows)))]
pub(super) fn load_key(_dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    Err("the shared token cache is not supported on this platform".into())
}

/// The key in `path`; `Ok(None)` when there is none.
#[cfg(unix)]
pub(super) fn read_key(path: &Path) -> std::result::Result<Option<ring::hmac::Key>, String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut options = std::fs::OpenOptions::new();
    options.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err("is a symbolic link".into()),
        Err(e) => return Err(format!("cannot be opened ({e})")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot be examined ({e})"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    let me = crate::core::sys::euid();
    if meta.uid() != me {
        return Err(format!("is owned by uid {}, not by this user (uid {me})", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!("has mode {:04o}: group or others may read or write it (0600 expected)", meta.mode() & 0o7777));
    }
    if meta.len() != KEY_LEN as u64 {
        return Err(format!("is {} bytes long, not {KEY_LEN}", meta.len()));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    file.take(KEY_LEN as u64).read_exact(&mut bytes[..]).map_err(|e| format!("cannot be read ({e})"))?;
    Ok(Some(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes[..])))
}

/// Writes a new random key to `path` unless another process has written one first.
#[cfg(unix)]
pub(super) fn create_key(dir: &Path, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes[..])
        .map_err(|_| std::io::Error::other("no random numbers from the system"))?;
    // A name of its own for each attempt: threads of one process (or processes of one pid
    // in other namespaces) creating the key at once must not write into each other's file.
    let mut unique = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut unique)
        .map_err(|_| std::io::Error::other("no random numbers from the system"))?;
    let tmp = dir.join(format!("{KEY_FILE}.{}.tmp", u64::from_le_bytes(unique)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    let mut file = options.open(&tmp)?;
    let linked = file.write_all(&bytes[..]).and_then(|_| file.sync_all()).and_then(|_| {
        drop(file);
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    });
    let _ = std::fs::remove_file(&tmp);
    linked
}
