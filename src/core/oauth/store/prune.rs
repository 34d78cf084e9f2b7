//! Pruning the directory: stale temporary files, unusable records, and the oldest records
//! past [`MAX_RECORDS`], at most once a minute per directory.

use super::*;

/// The most records a directory keeps: past it, pruning removes the least recently written.
pub const MAX_RECORDS: usize = crate::core::state::limits::TOKEN_FILES;
/// A temporary file older than this was left by a writer that died.
#[cfg(unix)]
pub(super) const STALE_TMP: Duration = Duration::from_secs(600);
/// A record that cannot be used (corrupt, another format version) older than this is removed.
#[cfg(unix)]
pub(super) const STALE_UNUSABLE: Duration = Duration::from_secs(86_400);
/// The most directory entries one pruning pass looks at.
#[cfg(unix)]
pub(super) const MAX_SCAN: usize = 4096;
/// A process prunes one directory at most this often.
pub(super) const PRUNE_EVERY: Duration = crate::core::state::limits::PRUNE_EVERY;

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
pub(super) enum Kind {
    Record,
    Lock,
    Temporary,
}

#[cfg(unix)]
pub(super) fn kind_of(name: &str) -> Option<(Kind, &str)> {
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
    let me = crate::core::sys::euid();
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
