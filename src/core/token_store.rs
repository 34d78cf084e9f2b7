//! The optional token cache on disk, shared by every process of one user (AuthToken
//! `"token_cache_dir"`): one access token for a fleet of workers, batch jobs or CLI runs
//! instead of one per process.
//!
//! Layout of the directory (which must be owned by the current user and not writable by
//! group or others; dpopkit never creates it):
//!
//! * `<id>` — one record per cache key: `<id>` is the hex SHA-256 of the AuthToken
//!   settings **without the client secret** and the key thumbprint(s), so a file name
//!   tells nothing that could be used to guess a secret. The record is JSON
//!   `{version, binding, jkt, token_type, access_token, issued_at_ms, refresh_at_ms,
//!   usable_until_ms, expires_at_ms}` (times in UNIX milliseconds, wall clock), mode 0600.
//!   `binding` is a hash of the whole in-process cache key (client secret included): a
//!   record written for other credentials under the same name is not used.
//! * `<id>.lock` — the lock file of that key (empty, mode 0600, never removed: removing a
//!   lock file races with the processes that have it open).
//! * `<id>.tmp` (`<id>.<pid>.tmp` without the lock) — a record being written; renamed over
//!   `<id>`, so a reader sees the old record or the new one, never half of one.
//!
//! Reading is careful: `O_NOFOLLOW` (a symbolic link is not followed), then `fstat`: a
//! regular file owned by this user with no group/other permission bits, at most
//! [`MAX_RECORD`] bytes. Anything else — corrupt, truncated, another version, another key,
//! other credentials, wrong owner or mode — is ignored and replaced by the next fetch.
//!
//! Single flight across processes: `flock(LOCK_EX)` on `<id>.lock` while one process asks
//! the authorization server; the others poll it (`LOCK_NB`, 10 ms steps) and then read the
//! fresh record. The kernel releases the lock of a process that dies, however it dies.
//! Windows (src/core/sys_windows.rs): `LockFileEx` on `<id>.lock`; the directory and the
//! files are checked by owner and DACL (`GetSecurityInfo`: owned by this user, no allow
//! ACE for anyone else but SYSTEM / Administrators), files are created with a private DACL
//! and replaced with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)` (std's rename).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::error::{Error, ErrorKind, Result, shorten};

/// The largest record read (a token of up to ~60 KB fits).
pub const MAX_RECORD: u64 = 64 * 1024;
/// The record format; a record of another version is ignored and replaced.
pub const VERSION: u64 = 1;
/// The step between two attempts to take a lock another process holds.
const LOCK_POLL: Duration = Duration::from_millis(10);

/// A token as it is stored: times on the wall clock (UNIX milliseconds).
pub struct Record {
    pub binding: String,
    pub jkt: String,
    pub token_type: String,
    pub access_token: Zeroizing<String>,
    pub issued_at_ms: u64,
    pub refresh_at_ms: u64,
    pub usable_until_ms: u64,
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record").field("jkt", &self.jkt).field("token_type", &self.token_type).finish_non_exhaustive()
    }
}

/// The wall clock in UNIX milliseconds.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An `Instant` of this process as UNIX milliseconds (`now` and `now_ms` taken together).
pub fn to_unix_ms(t: Instant, now: Instant, now_ms: u64) -> u64 {
    match t.checked_duration_since(now) {
        Some(ahead) => now_ms.saturating_add(ahead.as_millis() as u64),
        None => now_ms.saturating_sub(now.duration_since(t).as_millis() as u64),
    }
}

/// UNIX milliseconds as an `Instant` of this process; `None` when that moment has passed.
pub fn from_unix_ms(ms: u64, now: Instant, now_ms: u64) -> Option<Instant> {
    let ahead = ms.checked_sub(now_ms).filter(|d| *d > 0)?;
    now.checked_add(Duration::from_millis(ahead))
}

impl Record {
    /// The JSON text of the record, built in a wiped buffer that never reallocates.
    fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(512 + 6 * (self.access_token.len() + self.token_type.len() + self.jkt.len())));
        fn put_str(out: &mut Vec<u8>, name: &str, value: &str) {
            out.extend_from_slice(format!(",\"{name}\":").as_bytes());
            // A JSON string; escapes only as needed (tokens are printable ASCII in practice).
            out.push(b'"');
            for c in value.chars() {
                match c {
                    '"' => out.extend_from_slice(b"\\\""),
                    '\\' => out.extend_from_slice(b"\\\\"),
                    c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            out.push(b'"');
        }
        out.extend_from_slice(format!("{{\"version\":{VERSION}").as_bytes());
        put_str(&mut out, "binding", &self.binding);
        put_str(&mut out, "jkt", &self.jkt);
        put_str(&mut out, "token_type", &self.token_type);
        put_str(&mut out, "access_token", &self.access_token);
        out.extend_from_slice(
            format!(
                ",\"issued_at_ms\":{},\"refresh_at_ms\":{},\"usable_until_ms\":{},\"expires_at_ms\":{}}}\n",
                self.issued_at_ms, self.refresh_at_ms, self.usable_until_ms, self.expires_at_ms
            )
            .as_bytes(),
        );
        out
    }

    /// Parses a record; `Err` says why it is not one (never with the token in it).
    fn from_json(bytes: &[u8]) -> std::result::Result<Record, &'static str> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| "is not a token record (corrupt or truncated)")?;
        let result = Self::from_value(&v);
        super::redact::wipe_json(&mut v);
        result
    }

    fn from_value(v: &serde_json::Value) -> std::result::Result<Record, &'static str> {
        const BAD: &str = "is not a token record (corrupt or truncated)";
        if v.get("version").and_then(|x| x.as_u64()) != Some(VERSION) {
            return Err(if v.get("version").is_some() { "was written by another version of dpopkit" } else { BAD });
        }
        let s = |name: &str| v.get(name).and_then(|x| x.as_str()).filter(|s| !s.is_empty()).map(str::to_string).ok_or(BAD);
        let n = |name: &str| v.get(name).and_then(|x| x.as_u64()).ok_or(BAD);
        let access_token = match v.get("access_token").and_then(|x| x.as_str()) {
            Some(t) if !t.is_empty() => Zeroizing::new(t.to_string()),
            _ => return Err(BAD),
        };
        let r = Record {
            binding: s("binding")?,
            jkt: s("jkt")?,
            token_type: s("token_type")?,
            access_token,
            issued_at_ms: n("issued_at_ms")?,
            refresh_at_ms: n("refresh_at_ms")?,
            usable_until_ms: n("usable_until_ms")?,
            expires_at_ms: n("expires_at_ms")?,
        };
        let ten_years = 10 * 366 * 86_400_000;
        let ordered = r.issued_at_ms <= r.refresh_at_ms && r.refresh_at_ms <= r.usable_until_ms && r.usable_until_ms <= r.expires_at_ms;
        if !ordered || r.expires_at_ms - r.issued_at_ms > ten_years {
            return Err(BAD);
        }
        Ok(r)
    }
}

/// What reading a record found.
pub enum Found {
    /// A record that passed the file checks and parses (its meaning is checked by the caller).
    Record(Record),
    /// No record.
    Missing,
    /// Something that is not used, and why ("is a symbolic link", ...).
    Ignored(String),
}

/// A held `flock` on a lock file; released on drop (and by the kernel if the process dies).
pub struct Lock {
    _file: std::fs::File,
}

/// What waiting for the lock ended with.
pub enum Locking {
    Held(Lock),
    /// Another process held it for all of `waited`.
    Busy(Duration),
    /// The lock file could not be opened or locked (a read-only disk, ...).
    Failed(String),
}

/// The files of one cache key in the token cache directory.
pub struct Store {
    dir: PathBuf,
    id: String,
}

/// Hex of bytes (file names, bindings).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the token cache directory given in the AuthToken: an existing directory owned by
/// the current user that group and others cannot write to. Returns it as an absolute path
/// (a relative one is resolved against the current directory once, when the AuthToken is
/// set). The error text names the fix.
pub fn check_dir(given: &str) -> Result<PathBuf> {
    let shown = shorten(given);
    let fail = |why: String| Error::new(ErrorKind::AuthToken, format!("AuthToken \"token_cache_dir\" '{shown}' {why}"));
    let path = std::path::absolute(given).map_err(|e| fail(format!("cannot be resolved: {e}")))?;
    check_dir_path(&path).map_err(fail)?;
    Ok(path)
}

/// [`check_dir`] on a path, with the reason as text.
#[cfg(unix)]
pub fn check_dir_path(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let shown = shorten(&path.display().to_string());
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("does not exist: create it for this user only (mkdir -m 700 '{shown}'); dpopkit does not create it"));
        }
        Err(e) => return Err(format!("cannot be read: {e}")),
    };
    if !meta.is_dir() {
        return Err("is not a directory".to_string());
    }
    let me = sys::euid();
    if meta.uid() != me {
        return Err(format!(
            "is owned by uid {}, not by this user (uid {me}): its owner could read and replace the tokens; use a \
             directory of this user's (mkdir -m 700 DIR)",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by group or others (mode {:04o}): they could plant, replace or remove token files; \
             make it private with chmod 700 '{shown}' (or at least chmod go-w)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// [`check_dir`] on Windows: owner and DACL instead of uid and mode (src/core/sys_windows.rs).
#[cfg(windows)]
pub fn check_dir_path(path: &Path) -> std::result::Result<(), String> {
    crate::core::sys_windows::check_private_dir(path, &shorten(&path.display().to_string()))
}

#[cfg(not(any(unix, windows)))]
pub fn check_dir_path(_path: &Path) -> std::result::Result<(), String> {
    Err("is not supported on this platform yet: the shared token cache needs Unix flock and file owners \
         (the Windows design, LockFileEx and an owner check, is described in SECURITY.md); remove the member"
        .to_string())
}

impl Store {
    /// The files of cache key `id` in `dir`; the directory is checked again (it may have
    /// changed since the AuthToken was set).
    pub fn open(dir: &Path, id: String) -> std::result::Result<Store, String> {
        check_dir_path(dir).map_err(|why| format!("the token cache directory '{}' {why}", shorten(&dir.display().to_string())))?;
        Ok(Store { dir: dir.to_path_buf(), id })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.id)
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.id))
    }

    /// Reads the record, with the file checks of the module description.
    #[cfg(unix)]
    pub fn read(&self) -> Found {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut options = std::fs::OpenOptions::new();
        options.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        let file = match options.open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Found::Missing,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Found::Ignored("is a symbolic link".into()),
            Err(e) => return Found::Ignored(format!("cannot be opened ({e})")),
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Found::Ignored(format!("cannot be examined ({e})")),
        };
        if !meta.file_type().is_file() {
            return Found::Ignored("is not a regular file".into());
        }
        let me = sys::euid();
        if meta.uid() != me {
            return Found::Ignored(format!("is owned by uid {}, not by this user (uid {me})", meta.uid()));
        }
        if meta.mode() & 0o077 != 0 {
            return Found::Ignored(format!("has mode {:04o}: group or others may read or write it (0600 expected)", meta.mode() & 0o7777));
        }
        if meta.len() > MAX_RECORD {
            return Found::Ignored(format!("is larger than {MAX_RECORD} bytes"));
        }
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
        if let Err(e) = file.take(MAX_RECORD + 1).read_to_end(&mut bytes) {
            return Found::Ignored(format!("cannot be read ({e})"));
        }
        match Record::from_json(&bytes) {
            Ok(r) => Found::Record(r),
            Err(why) => Found::Ignored(why.to_string()),
        }
    }

    /// [`Store::read`] on Windows: the same checks through sys_windows (reparse point,
    /// disk file, one link, owner, nobody else in the DACL).
    #[cfg(windows)]
    pub fn read(&self) -> Found {
        use std::io::Read;
        let file = match crate::core::sys_windows::open_private_read(&self.path()) {
            Ok(Some(f)) => f,
            Ok(None) => return Found::Missing,
            // The caller writes "the token cache file '…' {why}".
            Err(why) => return Found::Ignored(why.strip_prefix("it ").map_or(why.clone(), str::to_string)),
        };
        let mut bytes = Zeroizing::new(Vec::with_capacity(1024));
        if let Err(e) = file.take(MAX_RECORD + 1).read_to_end(&mut bytes) {
            return Found::Ignored(format!("cannot be read ({e})"));
        }
        if bytes.len() as u64 > MAX_RECORD {
            return Found::Ignored(format!("is larger than {MAX_RECORD} bytes"));
        }
        match Record::from_json(&bytes) {
            Ok(r) => Found::Record(r),
            Err(why) => Found::Ignored(why.to_string()),
        }
    }

    #[cfg(not(any(unix, windows)))]
    pub fn read(&self) -> Found {
        Found::Missing
    }

    /// Takes the lock of this key, waiting while another process holds it, but not past
    /// `give_up`.
    #[cfg(unix)]
    pub fn lock(&self, give_up: Instant) -> Locking {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false).mode(0o600).custom_flags(
            libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
        );
        let shown = shorten(&self.lock_path().display().to_string());
        let file = match options.open(self.lock_path()) {
            Ok(f) => f,
            Err(e) => return Locking::Failed(format!("cannot open the lock file '{shown}': {e}")),
        };
        match file.metadata() {
            Ok(m) if m.file_type().is_file() && m.uid() == sys::euid() => {}
            Ok(_) => return Locking::Failed(format!("the lock file '{shown}' is not a regular file of this user")),
            Err(e) => return Locking::Failed(format!("cannot examine the lock file '{shown}': {e}")),
        }
        let started = Instant::now();
        loop {
            match sys::try_lock(&file) {
                Ok(true) => return Locking::Held(Lock { _file: file }),
                Ok(false) => {}
                Err(e) => return Locking::Failed(format!("cannot lock '{shown}': {e}")),
            }
            let now = Instant::now();
            if now >= give_up {
                return Locking::Busy(now - started);
            }
            std::thread::sleep(LOCK_POLL.min(give_up - now));
        }
    }

    /// [`Store::lock`] on Windows: `LockFileEx` on a private lock file.
    #[cfg(windows)]
    pub fn lock(&self, give_up: Instant) -> Locking {
        use crate::core::sys_windows as win;
        let shown = shorten(&self.lock_path().display().to_string());
        let file = match win::open_lock_file(&self.lock_path()) {
            Ok(f) => f,
            Err(e) => return Locking::Failed(format!("cannot open the lock file '{shown}': {e}")),
        };
        let started = Instant::now();
        loop {
            match win::try_lock(&file) {
                Ok(true) => return Locking::Held(Lock { _file: file }),
                Ok(false) => {}
                Err(e) => return Locking::Failed(format!("cannot lock '{shown}': {e}")),
            }
            let now = Instant::now();
            if now >= give_up {
                return Locking::Busy(now - started);
            }
            std::thread::sleep(LOCK_POLL.min(give_up - now));
        }
    }

    #[cfg(not(any(unix, windows)))]
    pub fn lock(&self, _give_up: Instant) -> Locking {
        Locking::Failed("the shared token cache is not supported on this platform".into())
    }

    /// Writes the record atomically: a new file (`O_EXCL`, mode 0600) renamed over the
    /// record. `locked` says whether this process holds the key's lock: then the temporary
    /// name is the key's own (left over only by a writer that died, and removed first);
    /// without it, one of this process.
    #[cfg(unix)]
    pub fn write(&self, record: &Record, locked: bool) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let json = record.to_json();
        if json.len() as u64 > MAX_RECORD {
            return Err(std::io::Error::other(format!("the token record would exceed {MAX_RECORD} bytes")));
        }
        let tmp = if locked {
            let tmp = self.dir.join(format!("{}.tmp", self.id));
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            tmp
        } else {
            self.dir.join(format!("{}.{}.tmp", self.id, std::process::id()))
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        let mut file = options.open(&tmp)?;
        let written = file.write_all(&json).and_then(|_| {
            drop(file);
            std::fs::rename(&tmp, self.path())
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// [`Store::write`] on Windows: a new private file renamed over the record
    /// (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`, what std's rename calls).
    #[cfg(windows)]
    pub fn write(&self, record: &Record, locked: bool) -> std::io::Result<()> {
        use std::io::Write;
        let json = record.to_json();
        if json.len() as u64 > MAX_RECORD {
            return Err(std::io::Error::other(format!("the token record would exceed {MAX_RECORD} bytes")));
        }
        let tmp = if locked {
            let tmp = self.dir.join(format!("{}.tmp", self.id));
            match std::fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            tmp
        } else {
            self.dir.join(format!("{}.{}.tmp", self.id, std::process::id()))
        };
        let mut file = crate::core::sys_windows::create_new_private(&tmp)?;
        let written = file.write_all(&json).and_then(|_| {
            drop(file);
            std::fs::rename(&tmp, self.path())
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    #[cfg(not(any(unix, windows)))]
    pub fn write(&self, _record: &Record, _locked: bool) -> std::io::Result<()> {
        Err(std::io::Error::other("the shared token cache is not supported on this platform"))
    }

    /// Removes the record (the resource server refused its token).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The two system calls std does not offer at this crate's minimum Rust version.
#[cfg(unix)]
#[allow(unsafe_code)]
mod sys {
    use std::os::unix::io::AsRawFd;

    /// The effective user id.
    pub fn euid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    /// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` when another open file description holds it.
    pub fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
        loop {
            // SAFETY: the descriptor is open for the duration of the call (borrowed `file`).
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(true);
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(code) if code == libc::EWOULDBLOCK || code == libc::EAGAIN => return Ok(false),
                _ => return Err(e),
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dpopkit-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    fn record() -> Record {
        Record {
            binding: "b".repeat(64),
            jkt: "jkt-a".into(),
            token_type: "DPoP".into(),
            access_token: Zeroizing::new("tok\"en\\\u{1}".into()),
            issued_at_ms: 1_000,
            refresh_at_ms: 2_000,
            usable_until_ms: 2_500,
            expires_at_ms: 3_000,
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_ignored() {
        let dir = scratch("roundtrip");
        let store = Store::open(&dir, "k".repeat(64)).unwrap();
        assert!(matches!(store.read(), Found::Missing));
        store.write(&record(), true).unwrap();
        let Found::Record(r) = store.read() else { panic!("not read back") };
        assert_eq!((r.access_token.as_str(), r.jkt.as_str(), r.expires_at_ms), ("tok\"en\\\u{1}", "jkt-a", 3_000));
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        for (bytes, says) in [
            (&b"{\"version\":1,\"binding\":\"x\""[..], "corrupt"),
            (b"", "corrupt"),
            (b"{\"version\":2}", "another version"),
            (b"{\"version\":1,\"binding\":\"b\",\"jkt\":\"j\",\"token_type\":\"DPoP\",\"access_token\":\"t\",\"issued_at_ms\":5,\"refresh_at_ms\":4,\"usable_until_ms\":6,\"expires_at_ms\":7}", "corrupt"),
        ] {
            std::fs::write(store.path(), bytes).unwrap();
            std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
            match store.read() {
                Found::Ignored(why) => assert!(why.contains(says), "{why}"),
                _ => panic!("{says}: not ignored"),
            }
        }
        std::fs::write(store.path(), vec![b' '; MAX_RECORD as usize + 1]).unwrap();
        assert!(matches!(store.read(), Found::Ignored(w) if w.contains("larger")));
        store.write(&record(), false).unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(store.read(), Found::Ignored(w) if w.contains("0644")));
        std::fs::remove_file(store.path()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", store.path()).unwrap();
        assert!(matches!(store.read(), Found::Ignored(w) if w.contains("symbolic link")));
        // Replaced by the next write: the link itself, not what it points to.
        store.write(&record(), true).unwrap();
        assert!(matches!(store.read(), Found::Record(_)));
        assert!(std::fs::symlink_metadata(store.path()).unwrap().file_type().is_file());
        store.remove().unwrap();
        assert!(matches!(store.read(), Found::Missing));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn directories_are_checked() {
        let dir = scratch("dirs");
        assert!(check_dir(dir.to_str().unwrap()).is_ok());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(dir.to_str().unwrap()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::AuthToken);
        assert!(e.message.contains("0777") && e.message.contains("chmod 700"), "{}", e.message);
        assert!(Store::open(&dir, "x".into()).is_err(), "checked again at use");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(check_dir(dir.to_str().unwrap()).is_ok(), "readable by others is allowed: the files are 0600");
        let missing = dir.join("nope");
        let e = check_dir(missing.to_str().unwrap()).unwrap_err();
        assert!(e.message.contains("does not exist") && e.message.contains("mkdir -m 700"), "{}", e.message);
        let file = dir.join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(check_dir(file.to_str().unwrap()).unwrap_err().message.contains("not a directory"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_lock_is_exclusive_between_open_files_and_bounded() {
        let dir = scratch("lock");
        let store = Store::open(&dir, "l".repeat(64)).unwrap();
        let Locking::Held(held) = store.lock(Instant::now()) else { panic!("first lock") };
        let give_up = Instant::now() + Duration::from_millis(50);
        assert!(matches!(store.lock(give_up), Locking::Busy(_)), "a second open file description waits");
        assert!(Instant::now() >= give_up);
        drop(held);
        assert!(matches!(store.lock(Instant::now()), Locking::Held(_)), "released on drop");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn wall_clock_conversions() {
        let now = Instant::now();
        let t = now + Duration::from_secs(90);
        let ms = to_unix_ms(t, now, 1_000_000);
        assert_eq!(ms, 1_090_000);
        assert_eq!(from_unix_ms(ms, now, 1_000_000), Some(t));
        assert_eq!(from_unix_ms(999_999, now, 1_000_000), None);
        assert_eq!(from_unix_ms(1_000_000, now, 1_000_000), None);
    }
}
