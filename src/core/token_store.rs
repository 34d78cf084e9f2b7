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
            options.read(true).write(true).create(true).truncate(false).mode(0o600).custom_flags(
                libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            );
            let file = match options.open(self.lock_path()) {
                Ok(f) => f,
                Err(e) => return Locking::Failed(format!("cannot open the lock file '{shown}': {e}")),
            };
            let opened = match file.metadata() {
                Ok(m) if m.file_type().is_file() && m.uid() == sys::euid() => m,
                Ok(_) => return Locking::Failed(format!("the lock file '{shown}' is not a regular file of this user")),
                Err(e) => return Locking::Failed(format!("cannot examine the lock file '{shown}': {e}")),
            };
            loop {
                match sys::try_lock(&file) {
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

/// The most records a directory keeps: past it, pruning removes the least recently written.
pub const MAX_RECORDS: usize = 256;
/// A temporary file older than this was left by a writer that died.
#[cfg(unix)]
const STALE_TMP: Duration = Duration::from_secs(600);
/// A record that cannot be used (corrupt, another format version) older than this is removed.
#[cfg(unix)]
const STALE_UNUSABLE: Duration = Duration::from_secs(86_400);
/// The most directory entries one pruning pass looks at.
#[cfg(unix)]
const MAX_SCAN: usize = 4096;
/// A process prunes one directory at most this often.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What a pruning pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub expired: usize,
    pub unusable: usize,
    pub oldest: usize,
    pub locks: usize,
    pub temporary: usize,
}

impl Pruned {
    pub fn total(&self) -> usize {
        self.expired + self.unusable + self.oldest + self.locks + self.temporary
    }
}

/// The kind of a file of ours, by its name: `<id>` (64 lowercase hex digits), `<id>.lock`,
/// `<id>.tmp`, `<id>.<pid>.tmp` or `<KEY_FILE>.<number>.tmp`. Anything else is not touched.
#[cfg(unix)]
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Record,
    Lock,
    Temporary,
}

#[cfg(unix)]
fn kind_of(name: &str) -> Option<(Kind, &str)> {
    let is_id = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let is_pid = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if is_id(name) {
        return Some((Kind::Record, name));
    }
    if let Some(id) = name.strip_suffix(".lock").filter(|id| is_id(id)) {
        return Some((Kind::Lock, id));
    }
    let stem = name.strip_suffix(".tmp")?;
    if is_id(stem) {
        return Some((Kind::Temporary, stem));
    }
    let (head, pid) = stem.rsplit_once('.')?;
    (is_pid(pid) && (is_id(head) || head == KEY_FILE)).then_some((Kind::Temporary, head))
}

/// [`prune`] `dir`, unless this process did so less than a minute ago.
pub fn prune_now_and_then(dir: &Path, keep: &str, give_up: Instant) -> Option<Pruned> {
    static LAST: std::sync::Mutex<Vec<(PathBuf, Instant)>> = std::sync::Mutex::new(Vec::new());
    {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        last.retain(|(_, at)| now.duration_since(*at) < PRUNE_EVERY);
        if last.iter().any(|(d, _)| d == dir) {
            return None;
        }
        if last.len() >= 16 {
            last.remove(0);
        }
        last.push((dir.to_path_buf(), now));
    }
    Some(prune(dir, keep, give_up))
}

/// Removes from the token cache directory what nobody will use: records that have expired,
/// records that cannot be used (corrupt, another format version) a day after they were
/// written, the least recently written records beyond [`MAX_RECORDS`], lock files without a
/// record, and temporary files of writers that died (older than 10 minutes). Only files
/// whose names dpopkit gives, that are regular files of this user, are touched (not the
/// binding key), never `keep` (the caller's own record), and a record or lock file only
/// while this process holds its lock, taken without waiting: a key that another process
/// holds is left for a later pass. A lock file is removed while it is held, and a process
/// that locked the removed file notices and opens the path again ([`Store::lock`]); a writer
/// that works without the lock can lose a fresh record to the count bound, which costs one
/// token request. Stops at `give_up`.
#[cfg(unix)]
pub fn prune(dir: &Path, keep: &str, give_up: Instant) -> Pruned {
    use std::os::unix::fs::MetadataExt;
    let mut pruned = Pruned::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return pruned };
    let me = sys::euid();
    let now = SystemTime::now();
    let now_ms = unix_ms_now();
    let older_than = |meta: &std::fs::Metadata, age: Duration| meta.modified().is_ok_and(|m| now.duration_since(m).is_ok_and(|d| d > age));
    let mut records = Vec::new();
    let mut locks = Vec::new();
    for entry in entries.take(MAX_SCAN).flatten() {
        let name = entry.file_name();
        let Some((kind, id)) = name.to_str().and_then(kind_of) else { continue };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
        if !meta.file_type().is_file() || meta.uid() != me {
            continue;
        }
        match kind {
            Kind::Temporary => {
                if older_than(&meta, STALE_TMP) && std::fs::remove_file(entry.path()).is_ok() {
                    pruned.temporary += 1;
                }
            }
            Kind::Record if id != keep => records.push((meta.modified().unwrap_or(UNIX_EPOCH), id.to_string(), meta)),
            Kind::Record => {}
            Kind::Lock if id != keep => locks.push(id.to_string()),
            Kind::Lock => {}
        }
    }
    // Expired and unusable records; what is left counts against the bound.
    let mut live = Vec::new();
    for (written, id, meta) in records {
        if Instant::now() >= give_up {
            return pruned;
        }
        let store = Store { dir: dir.to_path_buf(), id, binding: String::new() };
        let (expired, unusable) = match store.read() {
            Found::Record(r) => (r.expires_at_ms <= now_ms, false),
            Found::Ignored(_) => (false, older_than(&meta, STALE_UNUSABLE)),
            Found::Missing => continue,
        };
        if !expired && !unusable {
            live.push((written, store));
            continue;
        }
        // Checked again under the lock: a writer may have just replaced it.
        let still = |s: &Store| match s.read() {
            Found::Record(r) => r.expires_at_ms <= unix_ms_now(),
            Found::Ignored(_) => std::fs::symlink_metadata(s.path()).is_ok_and(|m| older_than(&m, STALE_UNUSABLE)),
            Found::Missing => false,
        };
        if store.remove_if_unlocked(still) {
            if expired {
                pruned.expired += 1;
            } else {
                pruned.unusable += 1;
            }
        }
    }
    // The bound: the least recently written go first (the caller's own record is newer).
    if live.len() + 1 > MAX_RECORDS {
        live.sort_by_key(|(written, _)| *written);
        let excess = live.len() + 1 - MAX_RECORDS;
        for (written, store) in live.iter().take(excess) {
            if Instant::now() >= give_up {
                return pruned;
            }
            let unchanged = |s: &Store| std::fs::symlink_metadata(s.path()).is_ok_and(|m| m.modified().is_ok_and(|m| m == *written));
            if store.remove_if_unlocked(unchanged) {
                pruned.oldest += 1;
            }
        }
    }
    // Lock files whose record is gone.
    for id in locks {
        if Instant::now() >= give_up {
            return pruned;
        }
        let store = Store { dir: dir.to_path_buf(), id, binding: String::new() };
        let no_record = |s: &Store| matches!(std::fs::symlink_metadata(s.path()), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        if store.lock_path().symlink_metadata().is_ok() && no_record(&store) && store.remove_lock_if_unlocked(no_record) {
            pruned.locks += 1;
        }
    }
    pruned
}

#[cfg(not(unix))]
pub fn prune(_dir: &Path, _keep: &str, _give_up: Instant) -> Pruned {
    Pruned::default()
}

/// The binding key of the token cache directory `dir`, created if there is none: 32 random
/// bytes written to a new file of a random name (`O_EXCL`, mode 0600) that is then hard-linked
/// to [`KEY_FILE`] (which fails if another process was first: its key is used), so no
/// process ever reads half a key. The file is checked like a record: not a symbolic link,
/// a regular file of this user with no group/other permission bits, exactly 32 bytes.
#[cfg(unix)]
fn load_key(dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    let path = dir.join(KEY_FILE);
    let shown = shorten(&path.display().to_string());
    let fail = |why: String| format!("the token cache key file '{shown}' {why}");
    for _ in 0..3 {
        match read_key(&path) {
            Ok(Some(key)) => return Ok(key),
            Ok(None) => create_key(dir, &path).map_err(|e| fail(format!("cannot be created ({e})")))?,
            Err(why) => {
                return Err(fail(format!(
                    "{why}; remove it (dpopkit creates a new key, and the cached tokens are fetched again)"
                )));
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
fn load_key(dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    use std::io::{Read, Write};
    let path = dir.join(KEY_FILE);
    let shown = shorten(&path.display().to_string());
    let fail = |why: String| format!("the token cache key file '{shown}' {why}");
    let random = |buf: &mut [u8]| {
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf).map_err(|_| std::io::Error::other("no random numbers from the system"))
    };
    for _ in 0..3 {
        match crate::core::sys_windows::open_private_read(&path) {
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
                    let mut file = crate::core::sys_windows::create_new_private(&tmp)?;
                    let moved = file.write_all(&bytes[..]).and_then(|_| file.sync_all()).and_then(|_| {
                        drop(file);
                        match crate::core::sys_windows::move_no_replace(&tmp, &path) {
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
fn load_key(_dir: &Path) -> std::result::Result<ring::hmac::Key, String> {
    Err("the shared token cache is not supported on this platform".into())
}

/// The key in `path`; `Ok(None)` when there is none.
#[cfg(unix)]
fn read_key(path: &Path) -> std::result::Result<Option<ring::hmac::Key>, String> {
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
    let me = sys::euid();
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
fn create_key(dir: &Path, path: &Path) -> std::io::Result<()> {
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
        let store = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
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
        assert!(Store::open(&dir, &[&b"x"[..]], &[&b"b"[..]]).is_err(), "checked again at use");
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
    fn the_binding_key_is_private_and_a_bad_one_is_refused() {
        let dir = scratch("key");
        let a = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
        let key = dir.join(KEY_FILE);
        let meta = std::fs::symlink_metadata(&key).unwrap();
        assert!(meta.file_type().is_file() && meta.len() == KEY_LEN as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
        assert_eq!((a.id.as_str(), a.binding()), (again.id.as_str(), again.binding()), "the key is kept");
        assert_ne!(a.id, a.binding, "names and bindings are separate hashes");
        let bytes = std::fs::read(&key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap();
        assert!(e.contains("0644") && e.contains("remove it"), "{e}");
        std::fs::remove_file(&key).unwrap();
        std::fs::write(dir.join("elsewhere"), &bytes).unwrap();
        std::fs::set_permissions(dir.join("elsewhere"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), &key).unwrap();
        let e = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::remove_file(&key).unwrap();
        std::fs::write(&key, b"short").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).err().unwrap().contains("not 32"));
        std::fs::remove_file(&key).unwrap();
        let fresh = Store::open(&dir, &[&b"k"[..]], &[&b"b"[..]]).unwrap();
        assert_ne!(fresh.id, a.id, "a new key: new names, the old records are not found");
        assert!(!std::fs::read_dir(&dir).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp")), "no temporary file left");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn threads_creating_the_key_at_once_agree_on_one() {
        for round in 0..20 {
            let dir = scratch(&format!("keyrace{round}"));
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let ids: Vec<String> = (0..8)
                .map(|_| {
                    let (d, b) = (dir.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        Store::open(&d, &[&b"k"[..]], &[&b"b"[..]]).map(|s| s.id)
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap().unwrap())
                .collect();
            assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: one key for all: {ids:?}");
            assert_eq!(std::fs::metadata(dir.join(KEY_FILE)).unwrap().len(), KEY_LEN as u64);
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    #[test]
    fn only_our_names_are_pruned() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(kind_of(&id), Some((Kind::Record, id.as_str())));
        assert_eq!(kind_of(&format!("{id}.lock")), Some((Kind::Lock, id.as_str())));
        assert_eq!(kind_of(&format!("{id}.tmp")), Some((Kind::Temporary, id.as_str())));
        assert_eq!(kind_of(&format!("{id}.123.tmp")), Some((Kind::Temporary, id.as_str())));
        assert_eq!(kind_of(&format!("{KEY_FILE}.99.tmp")), Some((Kind::Temporary, KEY_FILE)));
        for not_ours in [
            KEY_FILE.to_string(),
            id.to_uppercase(),
            id[1..].to_string(),
            format!("{id}0"),
            format!("{id}.bak"),
            format!("{id}.x.tmp"),
            format!("{id}..tmp"),
            format!("{id}.lock.tmp"),
            format!("{KEY_FILE}.tmp"),
            "notes.txt".into(),
        ] {
            assert_eq!(kind_of(&not_ours), None, "{not_ours}");
        }
    }

    #[test]
    fn a_lock_file_removed_while_waited_for_is_opened_again() {
        let dir = scratch("relock");
        let store = Store::open(&dir, &[&b"r"[..]], &[&b"b"[..]]).unwrap();
        let Locking::Held(first) = store.lock(Instant::now()) else { panic!("first lock") };
        // A waiter opens the lock file and polls it ...
        let (d, id) = (dir.clone(), store.id.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let s = Store { dir: d, id, binding: String::new() };
            let held = s.lock(Instant::now() + Duration::from_secs(5));
            let ok = matches!(held, Locking::Held(_));
            tx.send(ok).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        std::thread::sleep(Duration::from_millis(100));
        // ... while a pruner removes it (holding its lock) and lets go: the waiter's flock on
        // the removed file succeeds, but it is no lock; it must open the path again.
        std::fs::remove_file(store.lock_path()).unwrap();
        drop(first);
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "the waiter got the lock");
        assert!(store.lock_path().exists(), "on a new lock file at the path");
        assert!(matches!(store.lock(Instant::now()), Locking::Busy(_)), "which excludes the others");
        waiter.join().unwrap();
        // Pruning takes the lock without waiting: a held key is left alone.
        let Locking::Held(held) = store.lock(Instant::now()) else { panic!("lock") };
        assert!(!store.remove_lock_if_unlocked(|_| true), "a held lock file is not removed");
        drop(held);
        assert!(store.remove_lock_if_unlocked(|_| true));
        assert!(!store.lock_path().exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_lock_is_exclusive_between_open_files_and_bounded() {
        let dir = scratch("lock");
        let store = Store::open(&dir, &[&b"l"[..]], &[&b"b"[..]]).unwrap();
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
