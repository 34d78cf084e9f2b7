//! Chilkat-style session log: every request and response appended to a file, with every
//! secret replaced by `****` before it is written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::error::{Error, ErrorKind, Result, shorten};
use super::redact::{redact_body, redact_header_value, scrub};

/// Bodies longer than this are cut in the log (the request itself is not affected).
const MAX_LOGGED_BODY: usize = 64 * 1024;

pub struct SessionLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl std::fmt::Debug for SessionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLog").field("path", &self.path).finish()
    }
}

/// One side of an exchange, as it is written to the log.
pub struct Entry<'a> {
    /// `GET /path HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub first_line: String,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl SessionLog {
    /// Opens (creating if needed) the file for appending; fails now rather than silently later.
    pub fn open(path: &Path) -> Result<SessionLog> {
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
            Error::new(ErrorKind::FileIo, format!("cannot open session log '{}': {e}", shorten(&path.display().to_string())))
        })?;
        Ok(SessionLog { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a note of dpopkit's own (e.g. a clock correction), between the exchanges.
    pub fn note(&self, text: &str) {
        let when = httpdate::fmt_http_date(std::time::SystemTime::now());
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(format!("---- Note {when} ----\n{text}\n\n").as_bytes());
        }
    }

    /// Appends one entry. `secrets` are values that must never appear (client secret,
    /// access token); they are scrubbed from the whole text as a last line of defence.
    /// Write failures are ignored: logging never makes a request fail.
    pub fn write(&self, sending: bool, entry: &Entry<'_>, secrets: &[&str]) {
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
            out.push_str(name);
            out.push_str(": ");
            out.push_str(&redact_header_value(name, value));
            out.push('\n');
        }
        out.push('\n');
        if !entry.body.is_empty() {
            out.push_str(&redact_body(content_type, entry.body, MAX_LOGGED_BODY));
            out.push('\n');
        }
        out.push('\n');
        let out = scrub(&out, secrets);
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(out.as_bytes());
        }
    }
}
