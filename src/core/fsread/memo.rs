//! The memo of values parsed from files ([`FileMemo`]): keys and CA bundles loaded again
//! cost an `open` and an `fstat`, not a read and a parse.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::state::{BoundedLru, never_in_use, salted_hash, weightless};

/// How old a file's timestamps must be before an unchanged `stat` is trusted to mean
/// unchanged content (2 s covers the coarsest common timestamp granularity, FAT's).
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// What `stat` says of a file, to tell whether it changed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FileStat {
    id: (u64, u64, u64),
    modified: (i64, i64),
    changed: (i64, i64),
}

impl FileStat {
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileStat {
                id: (meta.dev(), meta.ino(), meta.size()),
                modified: (meta.mtime(), meta.mtime_nsec()),
                changed: (meta.ctime(), meta.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let t = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos() as i64));
            FileStat { id: (0, 0, meta.len()), modified: t, changed: t }
        }
    }

    /// Whether both times are at least [`SETTLED`] in the past.
    pub fn settled(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        self.modified.0.max(self.changed.0) < now - SETTLED.as_secs() as i64
    }
}

/// Values parsed from files (keys, CA bundles), process-wide, so that loading the same file
/// again — as a program that makes new objects for every call does — costs an `open` and
/// an `fstat` instead of a read and a parse. Files come opened by
/// [`super::RegularFile`]: regular files only, never blocking, read with a bound.
///
/// Values are kept under a salted hash of the file's content and of `extra` (a password),
/// so a rewritten file is parsed again. The `stat` shortcut (same path and `extra`, same
/// device, inode, size, modification and change times as when the content was hashed) is
/// taken only for a file whose times were at least [`SETTLED`] old when it was hashed: the
/// "racily clean" rule of git, since a file rewritten within one timestamp tick of being
/// read could otherwise look unchanged. Bounded (least recently used out); errors are not
/// kept.
pub struct FileMemo<T> {
    values: BoundedLru<[u8; 32], std::sync::Arc<T>>,
    /// (path, salted hash of `extra`) -> the file's `stat` and content hash when it was read.
    seen: BoundedLru<(std::path::PathBuf, [u8; 32]), (FileStat, [u8; 32])>,
    reads: AtomicU64,
}

impl<T> FileMemo<T> {
    pub fn new(max_values: usize) -> Self {
        FileMemo {
            values: BoundedLru::new(max_values, usize::MAX, weightless, never_in_use),
            seen: BoundedLru::new(2 * max_values, 1 << 20, |k, _| k.0.as_os_str().len() + 128, never_in_use),
            reads: AtomicU64::new(0),
        }
    }

    /// The value of the opened `file`, read (with its bound) and parsed with `parse` unless
    /// the memo knows it. The `stat` compared is the opened file's (`fstat`), so the file
    /// checked is the file read.
    pub fn load(
        &self,
        file: super::RegularFile,
        extra: &[u8],
        parse: impl FnOnce(&[u8]) -> crate::core::error::Result<T>,
    ) -> crate::core::error::Result<std::sync::Arc<T>> {
        let stat = FileStat::of(file.metadata());
        let seen_key = (file.path().to_path_buf(), salted_hash(&[extra]));
        if let Some((seen, id)) = self.seen.get(&seen_key) {
            if let Some(v) = self.values.get(&id).filter(|_| seen == stat) {
                return Ok(v);
            }
        }
        let data = file.read()?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let id = salted_hash(&[&data, &seen_key.1]);
        if stat.settled() {
            self.seen.insert(seen_key, (stat, id));
        } else {
            self.seen.remove(&seen_key);
        }
        if let Some(v) = self.values.get(&id) {
            return Ok(v);
        }
        // Parsed without a lock: an encrypted key can take a while.
        let v = std::sync::Arc::new(parse(&data)?);
        Ok(self.values.get_or_insert_with(id, || v))
    }

    /// Forgets everything (values are dropped when their last user lets go).
    pub fn clear(&self) {
        self.values.clear();
        self.seen.clear();
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// How many times a file had to be read (for tests).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}
