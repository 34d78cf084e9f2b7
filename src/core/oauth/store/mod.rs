//! The optional token cache on disk, shared by every process of one user (AuthToken
//! `"token_cache_dir"`): one access token for a fleet of workers, batch jobs or CLI runs
//! instead of one per process.
//!
//! Layout of the directory (which must be owned by the current user and not writable by
//! group or others; dpopkit never creates it):
//!
//! * `dpopkit-binding.key` ([`KEY_FILE`]) — 32 random bytes, mode 0600, created on first
//!   use (a new `O_EXCL` file of the process, hard-linked into place, so that no process
//!   reads half a key) and checked like a record when read. Every name and binding below
//!   is an HMAC-SHA256 under this key: without it, nothing in the directory can be checked
//!   against guessed settings or a guessed client secret (an unkeyed hash of a weak secret
//!   is an offline oracle). Removing the file only costs the cached tokens.
//! * `<id>` — one record per cache key: `<id>` is the hex HMAC of the whole in-process
//!   cache key (the AuthToken settings, the client secret and the key thumbprint(s)), so
//!   other credentials get a record of their own. The record is JSON
//!   `{version, binding, jkt, token_type, access_token, issued_at_ms, refresh_at_ms,
//!   usable_until_ms, expires_at_ms}` (times in UNIX milliseconds, wall clock), mode 0600.
//!   `binding` is another HMAC of that cache key: a record copied or written under another
//!   name is not used.
//! * `<id>.lock` — the lock file of that key (empty, mode 0600). Pruning removes it only
//!   while holding its lock, and a process whose lock turns out to be on a removed file
//!   opens the path again ([`Store::lock`]), so removing one never lets two processes in.
//! * `<id>.tmp` (`<id>.<pid>.tmp` without the lock) — a record being written; renamed over
//!   `<id>`, so a reader sees the old record or the new one, never half of one.
//!
//! Reading is careful: `O_NOFOLLOW` (a symbolic link is not followed), then `fstat`: a
//! regular file owned by this user with no group/other permission bits, at most
//! [`MAX_RECORD`] bytes. Anything else — corrupt, truncated, another version, another key,
//! other credentials, wrong owner or mode — is ignored and replaced by the next fetch.
//!
//! Pruning ([`prune`], when a record is written, at most once a minute per directory and
//! process): expired records, unusable ones a day old, the least recently written beyond
//! [`MAX_RECORDS`], lock files without a record and temporary files older than 10 minutes
//! go; only names of the patterns above, regular files of this user, and a key's files
//! only under its lock taken without waiting.
//!
//! Single flight across processes: `flock(LOCK_EX)` on `<id>.lock` while one process asks
//! the authorization server; the others poll it (`LOCK_NB`, 10 ms steps) and then read the
//! fresh record. The kernel releases the lock of a process that dies, however it dies.
//! Windows (src/core/sys/windows.rs): `LockFileEx` on `<id>.lock`; the directory and the
//! files are checked by owner and DACL (`GetSecurityInfo`: owned by this user, no allow
//! ACE for anyone else but SYSTEM / Administrators), files are created with a private DACL
//! and replaced with `MoveFileExW(MOVEFILE_REPLACE_EXISTING)` (std's rename).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::core::error::{Error, ErrorKind, Result, shorten};

mod prune;
pub use prune::*;
mod keyfile;
use keyfile::*;

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
        crate::core::redact::wipe_json(&mut v);
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
    /// The binding a record of this key must carry (keyed: see [`Store::open`]).
    binding: String,
}

/// The file of the directory's random binding key (32 bytes, mode 0600).
pub const KEY_FILE: &str = "dpopkit-binding.key";
/// The length of the binding key.
#[cfg(any(unix, windows))]
const KEY_LEN: usize = 32;

/// HMAC-SHA256 under `key` of a label and length-prefixed parts, as hex.
fn keyed(key: &ring::hmac::Key, label: &[u8], parts: &[&[u8]]) -> String {
    let mut ctx = ring::hmac::Context::with_key(key);
    ctx.update(label);
    ctx.update(b"\0");
    for p in parts {
        ctx.update(&(p.len() as u64).to_le_bytes());
        ctx.update(p);
    }
    hex(ctx.sign().as_ref())
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
    let me = crate::core::sys::euid();
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

/// [`check_dir`] on Windows: owner and DACL instead of uid and mode (src/core/sys/windows.rs).
#[cfg(windows)]
pub fn check_dir_path(path: &Path) -> std::result::Result<(), String> {
    crate::core::sys::windows::check_private_dir(path, &shorten(&path.display().to_string()))
}

#[cfg(not(any(unix, windows)))]
pub fn check_dir_path(_path: &Path) -> std::result::Result<(), String> {
    Err("is not supported on this platform yet: the shared token cache needs Unix flock and file owners \
         (the Windows design, LockFileEx and an owner check, is described in SECURITY.md); remove the member"
        .to_string())
}

impl Store {
    /// The files of one cache key in `dir`; the directory is checked again (it may have
    /// changed since the AuthToken was set). `name` (what names the file) and `binding` (what
    /// a record must have been written for; dpopkit passes the whole cache key, client
    /// secret included, for both) are hashed with HMAC-SHA256 under the directory's random key
    /// ([`KEY_FILE`], created on first use): neither a file name nor a record's binding can
    /// be checked against guessed settings or secrets without that key.
    pub fn open(dir: &Path, name: &[&[u8]], binding: &[&[u8]]) -> std::result::Result<Store, String> {
        let shown = || shorten(&dir.display().to_string());
        check_dir_path(dir).map_err(|why| format!("the token cache directory '{}' {why}", shown()))?;
        let key = load_key(dir)?;
        let id = keyed(&key, b"dpopkit token file v2", name);
        let binding = keyed(&key, b"dpopkit token binding v2", binding);
        Ok(Store { dir: dir.to_path_buf(), id, binding })
    }

    /// The binding a record of this key must carry.
    pub fn binding(&self) -> &str {
        &self.binding
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.id)
    }

    /// The name of the record.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.id))
    }

    /// Reads the record, with the file checks of the module description.
    #[cfg(unix)]
    pub fn read(&self) -> Found {
        use std::os::unix::fs::MetadataExt;
        let mut file = match crate::core::fsread::open_nonblocking(&self.path(), true) {
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
        let me = crate::core::sys::euid();
        if meta.uid() != me {
            return Found::Ignored(format!("is owned by uid {}, not by this user (uid {me})", meta.uid()));
        }
        if meta.mode() & 0o077 != 0 {
            return Found::Ignored(format!("has mode {:04o}: group or others may read or write it (0600 expected)", meta.mode() & 0o7777));
        }
        if meta.len() > MAX_RECORD {
            return Found::Ignored(format!("is larger than {MAX_RECORD} bytes"));
        }
        let bytes = match crate::core::fsread::read_bounded(&mut file, MAX_RECORD, meta.len()) {
            Ok(Some(b)) => b,
            Ok(None) => return Found::Ignored(format!("is larger than {MAX_RECORD} bytes")),
            Err(e) => return Found::Ignored(format!("cannot be read ({e})")),
        };
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
        let file = match crate::core::sys::windows::open_private_read(&self.path()) {
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
    /// `give_up`. A lock taken on a file that is no longer the one at the lock path (the
    /// pruning of another process removed it meanwhile, see [`prune`]) is not a lock: the
    /// path is opened again.
    #[cfg(unix)]
    pub fn lock(&self, give_up: Instant) -> Locking {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let shown = shorten(&self.lock_path().display().to_string());
        let started = Instant::now();
        'open: for _ in 0..8 {
            let mut options = std::fs::OpenOptions::new();
            options
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
            let file = match options.open(self.lock_path()) {
                Ok(f) => f,
                Err(e) => return Locking::Failed(format!("cannot open the lock file '{shown}': {e}")),
            };
            let opened = match file.metadata() {
                Ok(m) if m.file_type().is_file() && m.uid() == crate::core::sys::euid() => m,
                Ok(_) => return Locking::Failed(format!("the lock file '{shown}' is not a regular file of this user")),
                Err(e) => return Locking::Failed(format!("cannot examine the lock file '{shown}': {e}")),
            };
            loop {
                match crate::core::sys::try_lock(&file) {
                    Ok(true) => {
                        let still = std::fs::symlink_metadata(self.lock_path())
                            .is_ok_and(|now| now.dev() == opened.dev() && now.ino() == opened.ino());
                        if !still {
                            continue 'open;
                        }
                        return Locking::Held(Lock { _file: file });
                    }
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
        Locking::Failed(format!("the lock file '{shown}' keeps being replaced (another process removes it)"))
    }

    /// [`Store::lock`] on Windows: `LockFileEx` on a private lock file.
    #[cfg(windows)]
    pub fn lock(&self, give_up: Instant) -> Locking {
        use crate::core::sys::windows as win;
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
        let mut file = crate::core::sys::windows::create_new_private(&tmp)?;
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

    /// Removes the record, and then its lock file, if this key's lock can be taken now
    /// (without waiting) and `still` holds under it. Whether it was removed.
    #[cfg(unix)]
    fn remove_if_unlocked(&self, still: impl Fn(&Store) -> bool) -> bool {
        let Locking::Held(lock) = self.lock(Instant::now()) else { return false };
        if !still(self) || self.remove().is_err() {
            return false;
        }
        // Removed while held: a process that locks the removed file opens the path again.
        let _ = std::fs::remove_file(self.lock_path());
        drop(lock);
        true
    }

    /// Removes the lock file if it can be locked now (without waiting) and `still` holds.
    #[cfg(unix)]
    fn remove_lock_if_unlocked(&self, still: impl Fn(&Store) -> bool) -> bool {
        let Locking::Held(lock) = self.lock(Instant::now()) else { return false };
        let removed = still(self) && std::fs::remove_file(self.lock_path()).is_ok();
        drop(lock);
        removed
    }

    /// Removes the record (the resource server refused its token).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(all(test, unix))]
mod tests;
