//! Output: the response head as shown, stdout, and the files the tool writes (`--out`,
//! keygen's private files).

use super::*;

/// `-i`: the status line and the response headers, then an empty line.
pub(super) fn head(resp: &ResponseInfo, secrets: &[&str], terminal: bool) -> String {
    let mut out = format!("HTTP/1.1 {} {}\n", resp.status, resp.status_text()).replace(" \n", "\n");
    for (name, value) in &resp.headers {
        out.push_str(&format!("{name}: {}\n", scrub(value, secrets)));
    }
    out.push('\n');
    if terminal { for_terminal(&out) } else { out }
}

/// `-o FILE` may replace a regular file or a symbolic link (the link itself, not what it
/// points to), or create FILE. Anything else is refused: FILE is never opened, so a FIFO
/// cannot block the run and a device or directory is not written to.
pub(super) fn check_output(path: &Path) -> Outcome {
    let refuse = |why: String| Err(other(format!("cannot write -o '{}': {why}", path.display())));
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(m) => match not_regular(&m) {
            None => Ok(()),
            Some(what) => refuse(format!(
                "it is not a regular file ({what}): -o writes a new file in its place; give the path of a file \
                 (or - for standard output)"
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => refuse(e.to_string()),
    }
}

/// `-o FILE`: the body's bytes in a new file of the same directory (created exclusively,
/// mode 0600, never through a link), renamed over FILE. A symbolic link planted at FILE is
/// replaced, its target untouched; an existing file is replaced by the private one.
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Outcome {
    use rand_core::RngCore;
    check_output(path)?; // again: FILE may have changed during the request
    let shown = path.display();
    let Some(name) = path.file_name() else {
        return Err(other(format!("cannot write -o '{shown}': it does not name a file")));
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Named after FILE (cut, so that a long name stays within NAME_MAX), random, hidden.
    let stem: String = name.to_string_lossy().chars().take(64).collect();
    let tmp = dir.join(format!(".{stem}.{:016x}.dpopkit-tmp", rand_core::OsRng.next_u64()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let mut file =
        options.open(&tmp).map_err(|e| other(format!("cannot write -o '{shown}': cannot create a file in '{}': {e}", dir.display())))?;
    let written = file.write_all(bytes).and_then(|_| file.sync_all()).and_then(|_| {
        drop(file);
        std::fs::rename(&tmp, path)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        other(format!("cannot write -o '{shown}': {e}"))
    })
}

/// Text from a server made safe to print on a terminal: control characters other than
/// newline and tab (ESC and the rest of C0, DEL, C1, a lone CR) and the Unicode bidi
/// overrides become visible escapes (`\x1b`, `\u{202e}`), so a response cannot clear the
/// screen, retitle the window, rewrite a line or reorder what is shown.
pub(super) fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

pub(super) fn write_stdout(bytes: &[u8]) -> Outcome {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(other(format!("cannot write to stdout: {e}"))),
    }
}
