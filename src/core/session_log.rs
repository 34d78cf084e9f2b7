//! Chilkat-style session log: every request and response appended to a file, with every
//! secret replaced by `****` before it is written.
//!
//! The file is opened as a careful tool opens a file in a directory others may write to:
//! a symbolic link is refused (`O_NOFOLLOW`), opening never blocks (`O_NONBLOCK`: a FIFO
//! without a reader fails instead of hanging the call), anything that is not a regular
//! file is refused after opening (`fstat`), as is a file with other hard links or one
//! owned by another user, and a new file is created with mode 0600.
//! It is capped: when an entry would take it past [`DEFAULT_MAX_LOG_SIZE`] (or the limit
//! given), the file is renamed to `<name>.1` (replacing an older one) and a new file is
//! started, so the log takes at most about twice the limit on disk. A `<name>.1` that is
//! not a regular file of this user (a directory, a symbolic link, another user's file in a
//! sticky directory) is not replaced: the file is emptied instead, with a note saying why,
//! so the cap holds whatever is in the way.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{Error, ErrorKind, Result, shorten};
use super::redact::{
    MASK, Secrets, WHOLE_WORD_BELOW, content_encoding, found_secret_values, header_value_when_incomplete, redact_body_of,
    redact_header_value, with_call,
};

/// Bodies longer than this are cut in the log (the request itself is not affected).
const MAX_LOGGED_BODY: usize = 64 * 1024;

/// The size at which the log file is rotated to `<name>.1`: 10 MiB.
pub const DEFAULT_MAX_LOG_SIZE: u64 = 10 * 1024 * 1024;

pub struct SessionLog {
    path: PathBuf,
    max_size: u64,
    file: Mutex<Open>,
}

struct Open {
    file: Option<File>,
    size: u64,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog").field("path", &self.path).field("max_size", &self.max_size).finish()
    }
}

/// One side of an exchange, as it is written to the log.
pub struct Entry<'a> {
    /// `GET /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub first_line: String,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// Opens `path` for appending without following a symlink or blocking, creating it with
/// mode 0600, and checks that what was opened is a regular file.
fn open_file(path: &Path) -> Result<File> {
    let shown = shorten(&path.display().to_string());
    let fail = |why: String| Error::new(ErrorKind::FileIo, format!("cannot open session log '{shown}': {why}"));
    #[cfg(windows)]
    return super::sys::windows::open_private_append(path).map_err(fail);
    #[allow(unreachable_code)]
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        match e.raw_os_error() {
            Some(libc::ELOOP) => {
                return fail("it is a symbolic link, which is not followed; give the path of a regular file".into());
            }
            Some(libc::ENXIO) => return fail("it is a FIFO or a device, not a regular file".into()),
            _ => {}
        }
        fail(e.to_string())
    })?;
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.file_type().is_file() {
        return Err(fail("it is not a regular file (a FIFO, a device or a directory)".into()));
    }
    #[cfg(unix)]
    {
        // In a directory others can write to (/tmp), someone else can have put a file of
        // theirs at the path before us (they would read every logged response), or a hard
        // link to another file (which the log would then be appended to). Both are refused.
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(fail("it has other hard links (it is another name of some file); give the path of a file of its own".into()));
        }
        if meta.uid() != super::sys::euid() {
            return Err(fail(format!(
                "it belongs to another user (uid {}), who could read the log; remove it, or give another path",
                meta.uid()
            )));
        }
    }
    Ok(file)
}

/// Why `<name>.1` must not be replaced by a rotation, if it must not: it is a symbolic link
/// (the link would be replaced, but whoever planted it expects something of it), not a
/// regular file (a directory cannot be replaced anyway), or a file of another user (in a
/// sticky directory such as /tmp only its owner, or root, may replace it: dpopkit does not
/// rely on the kernel refusing, since it does not refuse root). `None` when it does not exist.
fn refuse_rotated(rotated: &Path) -> Option<String> {
    let meta = match std::fs::symlink_metadata(rotated) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(format!("cannot be examined ({e})")),
    };
    if meta.file_type().is_symlink() {
        return Some("is a symbolic link, which is not replaced or followed".into());
    }
    if !meta.file_type().is_file() {
        return Some("is not a regular file (a directory?)".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != super::sys::euid() {
            return Some(format!("belongs to another user (uid {}), whose file is not replaced", meta.uid()));
        }
    }
    None
}

/// Whether two metadata describe the same file (device and inode; on other systems, where
/// std offers no file identity, any two regular files are taken to be the same).
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_a: &std::fs::Metadata, _b: &std::fs::Metadata) -> bool {
    true
}

impl SessionLog {
    /// Opens (creating if needed) the file for appending, rotated at [`DEFAULT_MAX_LOG_SIZE`];
    /// fails now rather than silently later.
    pub fn open(path: &Path) -> Result<SessionLog> {
        Self::open_with_limit(path, DEFAULT_MAX_LOG_SIZE)
    }

    /// [`SessionLog::open`] with another size limit (bytes, > 0).
    pub fn open_with_limit(path: &Path, max_size: u64) -> Result<SessionLog> {
        if max_size == 0 {
            return Err(Error::new(ErrorKind::InvalidArgument, "the session log size limit must be greater than 0"));
        }
        let file = open_file(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(SessionLog { path: path.to_path_buf(), max_size, file: Mutex::new(Open { file: Some(file), size }) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `text`, first rotating the file when `text` would take it past the limit.
    /// Failures are ignored: logging never makes a request fail.
    fn append(&self, text: &str) {
        let mut open = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if open.size > 0 && open.size + text.len() as u64 > self.max_size {
            self.rotate(&mut open);
        }
        if let Some(f) = open.file.as_mut() {
            if f.write_all(text.as_bytes()).is_ok() {
                open.size += text.len() as u64;
            }
        }
    }

    /// Moves the full file to `<name>.1` and starts a new one. When `<name>.1` cannot or
    /// must not be replaced (see [`refuse_rotated`]), or the rename fails, the file is
    /// emptied instead, starting with a note that says why: the log never grows past its
    /// limit, whatever is in the way.
    fn rotate(&self, open: &mut Open) {
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        let rotated = PathBuf::from(rotated);
        // Only the file this log has open is moved: the path may have been replaced since.
        let ours = match (open.file.as_ref().map(File::metadata), std::fs::symlink_metadata(&self.path)) {
            (Some(Ok(had)), Ok(now)) => now.file_type().is_file() && same_file(&had, &now),
            _ => false,
        };
        if !ours {
            open.file = open_file(&self.path).ok();
            open.size = open.file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
            return;
        }
        let refused = match refuse_rotated(&rotated) {
            Some(why) => Some(why),
            None => std::fs::rename(&self.path, &rotated).err().map(|e| format!("cannot be replaced ({e})")),
        };
        let Some(why) = refused else {
            open.file = open_file(&self.path).ok();
            open.size = open.file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
            return;
        };
        // Not rotated: the file starts again (the O_APPEND descriptor writes at the new end).
        let Some(f) = open.file.as_mut() else { return };
        if f.set_len(0).is_err() {
            // Neither rotated nor emptied: stop here rather than grow.
            open.file = None;
            return;
        }
        open.size = 0;
        let when = httpdate::fmt_http_date(std::time::SystemTime::now());
        let note = format!(
            "---- Note {when} ----\nthe session log reached its limit of {} bytes and its older part '{}' {why}: the log \
             was emptied instead of rotated; remove '{}' (or give the log a path in a directory of this user's) to keep \
             the older part\n\n",
            self.max_size,
            shorten(&rotated.display().to_string()),
            shorten(&rotated.display().to_string()),
        );
        if f.write_all(note.as_bytes()).is_ok() {
            open.size = note.len() as u64;
        }
    }

    /// Appends a note of dpopkit's own (e.g. a clock correction), between the exchanges.
    pub fn note(&self, text: &str) {
        let when = httpdate::fmt_http_date(std::time::SystemTime::now());
        self.append(&format!("---- Note {when} ----\n{text}\n\n"));
    }

    /// Appends one entry. `secrets`, the secrets of the current call (see
    /// [`crate::core::redact::call_scope`]) and any long value of a secret-named member of
    /// the body are masked in the whole entry, headers included, as a last line of defence.
    /// At most [`crate::core::redact::MAX_FOUND_VALUES`] values are learnt from one body
    /// (linear work whatever it holds); when it names more, the header values of the entry
    /// are masked too (the body's are, by their names).
    pub fn write(&self, sending: bool, entry: &Entry<'_>, secrets: &[&str]) {
        // The call's set first (shared, its forms made once): a secret it holds already is
        // not added again as a value of this entry whose forms would be made for it alone.
        let mut set = Secrets::new();
        with_call(|call| set.extend(call));
        for s in secrets {
            set.add(s);
        }
        // A token response names its token before the token is known to the call: what
        // the body holds under a secret name is masked in its headers too.
        let head = &entry.body[..entry.body.len().min(MAX_LOGGED_BODY)];
        let encoding = content_encoding(entry.headers);
        let found = found_secret_values(if encoding.is_some() { &[] } else { head });
        for v in found.values.iter().filter(|v| v.len() >= WHOLE_WORD_BELOW) {
            set.add_found(v);
        }
        let mut out = String::with_capacity(256 + entry.body.len().min(MAX_LOGGED_BODY));
        let when = httpdate::fmt_http_date(std::time::SystemTime::now());
        out.push_str(if sending { "---- Sending " } else { "---- Received " });
        out.push_str(&when);
        out.push_str(" ----\n");
        out.push_str(&entry.first_line);
        out.push('\n');
        let mut content_type = "";
        for (name, value) in entry.headers {
            if name.eq_ignore_ascii_case("content-type") {
                content_type = value;
            }
            // A name that holds a secret (in any case: see `in_header_name`) is not shown.
            out.push_str(if set.in_header_name(name) { MASK } else { name });
            out.push_str(": ");
            let shown = redact_header_value(name, value);
            out.push_str(&if found.complete { shown } else { header_value_when_incomplete(name, &shown) });
            out.push('\n');
        }
        out.push('\n');
        if let (Some(enc), false) = (encoding, entry.body.is_empty()) {
            // Compressed bytes cannot be checked for secrets (and are not text anyway).
            let enc = super::error::shorten(enc);
            out.push_str(&format!("({} bytes with Content-Encoding '{enc}': not shown)\n", entry.body.len()));
        } else if !entry.body.is_empty() {
            // Masked *before* the cut: a secret that straddles it is masked whole, not left
            // with its first part in the log. The window reaches as far past the cut as
            // the longest secret, so the work stays linear in the logged length.
            let window = &entry.body[..entry.body.len().min(MAX_LOGGED_BODY.saturating_add(set.longest()))];
            let masked = set.scrub_bytes(window).map(zeroize::Zeroizing::new);
            let shown = masked.as_deref().map_or(window, |m| m.as_slice());
            // The size shown is that of the masked body: the real one would tell a secret's
            // length (a 24-character client secret made the token request 18 bytes longer
            // than the 6-character demo one).
            let total = entry.body.len() - window.len() + shown.len();
            out.push_str(&redact_body_of(content_type, shown, MAX_LOGGED_BODY, total));
            out.push('\n');
        }
        out.push('\n');
        self.append(&set.scrub(&out));
    }
}
