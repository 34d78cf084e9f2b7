//! Reading a file a caller names — a key, a CA bundle, a PIN file, a token-cache record, a
//! body the CLI sends — so that the path cannot hang the call or take the process's memory:
//!
//! * it is opened without blocking (`O_NONBLOCK`, and `O_NOCTTY`, on unix): opening a FIFO
//!   for reading then returns at once instead of waiting for a writer. The flag stays set;
//!   it changes nothing for a regular file, the only kind that is read;
//! * the *opened* file must be a regular file (`fstat` on the descriptor, not a `stat` of
//!   the path that could be swapped in between): a FIFO, a device (`/dev/zero`, a terminal),
//!   a socket or a directory is refused with a text that says which it is (a path that
//!   already shows one by its `stat` is not even opened);
//! * it is read with a bound per kind ([`FileKind::max`]), also when the file grows while it
//!   is read; a larger file is refused with a text that names the bound;
//! * the bytes are kept in memory that is wiped when dropped, growth included (a key or a
//!   PIN is a secret).
//!
//! On other platforms the file is opened normally and must be a file by its metadata.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::error::{Error, ErrorKind, Result, shorten};

mod memo;
pub use memo::{FileMemo, FileStat, SETTLED};

/// A kind of file read through this module: how error texts name it, its bound, and how a
/// refusal tells the caller what to give instead.
#[derive(Debug)]
pub struct FileKind {
    /// "key file", "CA file", ...
    pub name: &'static str,
    /// Largest size read, in bytes.
    pub max: u64,
    /// The error kind of a file over [`FileKind::max`] (a file that cannot be opened or is
    /// not a regular file is [`ErrorKind::FileIo`]).
    pub too_large: ErrorKind,
    /// What to give instead, ending the refusal's text: "give the path of a key file".
    pub hint: &'static str,
}

/// Private keys, DPoP or client-assertion (a key is a few hundred bytes; the bound stops a
/// wrong path, a log or a database, from being read into memory).
pub const KEY_FILE: FileKind =
    FileKind { name: "key file", max: 1 << 20, too_large: ErrorKind::KeyFormat, hint: "give the path of a key file" };
/// CA bundles (the whole Mozilla bundle is ~220 KB).
pub const CA_FILE: FileKind = FileKind {
    name: "CA file",
    max: 16 << 20,
    too_large: ErrorKind::InvalidArgument,
    hint: "give the path of a PEM file of CA certificates",
};
/// `pin-source` of a PKCS#11 URI: the PIN is its first line.
pub const PIN_FILE: FileKind = FileKind {
    name: "PIN file (pin-source)",
    max: 4096,
    too_large: ErrorKind::FileIo,
    hint: "give the path of a file whose first line is the PIN",
};

/// A file opened for reading by [`RegularFile::open`]: known to be a regular file, not yet
/// read.
#[derive(Debug)]
pub struct RegularFile {
    file: File,
    meta: Metadata,
    path: PathBuf,
    kind: &'static FileKind,
}

impl RegularFile {
    /// Opens `path` without blocking and checks, on the opened file, that it is a regular
    /// file of at most `kind.max` bytes.
    pub fn open(path: &Path, kind: &'static FileKind) -> Result<RegularFile> {
        let io = |e: std::io::Error| Error::new(ErrorKind::FileIo, format!("cannot read {} '{}': {e}", kind.name, shown(path)));
        let refuse = |what: &str| {
            Error::new(
                ErrorKind::FileIo,
                format!("cannot read {} '{}': it is not a regular file ({what}): {}", kind.name, shown(path), kind.hint),
            )
        };
        // A device is not even opened when the path already shows what it is (opening some
        // devices does something); the opened file is what counts, though.
        if let Some(what) = std::fs::metadata(path).ok().as_ref().and_then(not_regular) {
            return Err(refuse(what));
        }
        let file = open_nonblocking(path, false).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if let Some(what) = not_regular(&meta) {
            return Err(refuse(what));
        }
        let opened = RegularFile { file, meta, path: path.to_path_buf(), kind };
        if opened.meta.len() > kind.max {
            return Err(opened.too_large(Some(opened.meta.len())));
        }
        Ok(opened)
    }

    /// The metadata of the opened file (`fstat`).
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file, at most `kind.max` bytes (a file that grew past it is refused).
    pub fn read(mut self) -> Result<Zeroizing<Vec<u8>>> {
        match read_bounded(&mut self.file, self.kind.max, self.meta.len()) {
            Ok(Some(data)) => Ok(data),
            Ok(None) => Err(self.too_large(None)),
            Err(e) => Err(Error::new(ErrorKind::FileIo, format!("cannot read {} '{}': {e}", self.kind.name, shown(&self.path)))),
        }
    }

    fn too_large(&self, size: Option<u64>) -> Error {
        let size = size.map_or(String::new(), |n| format!(" ({n} bytes)"));
        let k = self.kind;
        Error::new(
            k.too_large,
            format!("{} '{}' is larger than the {} bytes a {} may have{size}: {}", k.name, shown(&self.path), k.max, k.name, k.hint),
        )
    }
}

/// The contents of the regular file at `path` (see the module description).
pub fn read_regular_file(path: &Path, kind: &'static FileKind) -> Result<Zeroizing<Vec<u8>>> {
    RegularFile::open(path, kind)?.read()
}

fn shown(path: &Path) -> String {
    shorten(&path.display().to_string())
}

/// What the file is when it is not a regular file ("a FIFO", "a directory", ...).
pub fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a directory");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    Some("not a file")
}

/// Opens `path` for reading without blocking on a FIFO or a device (`O_NONBLOCK`,
/// `O_NOCTTY`; with `no_follow`, `O_NOFOLLOW` too: a symbolic link fails with `ELOOP`).
/// The caller checks what it opened (`metadata()`, see [`not_regular`]).
#[cfg(unix)]
pub fn open_nonblocking(path: &Path, no_follow: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// Elsewhere: opened normally (the caller checks that it is a file).
#[cfg(not(unix))]
pub fn open_nonblocking(path: &Path, _no_follow: bool) -> std::io::Result<File> {
    File::open(path)
}

/// Reads `file` to its end into wiped memory, `None` when it holds more than `max` bytes
/// (what was read is wiped then). `size` is its expected size (from `fstat`), to allocate
/// once; growth beyond it moves the bytes into a larger wiped buffer, so no copy is left
/// behind unwiped.
pub fn read_bounded(file: &mut impl Read, max: u64, size: u64) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let start = usize::try_from(size).unwrap_or(usize::MAX).min(max).saturating_add(1).max(256);
    let mut data = Zeroizing::new(Vec::with_capacity(start));
    let mut chunk = Zeroizing::new(vec![0u8; 64 << 10]);
    loop {
        let n = match file.read(&mut chunk[..]) {
            Ok(0) => return Ok(Some(data)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if data.len() + n > max {
            return Ok(None);
        }
        if data.len() + n > data.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity((data.len() + n).max(data.capacity().saturating_mul(4)).min(max)));
            bigger.extend_from_slice(&data);
            data = bigger;
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_keep_every_byte_and_stop_past_the_bound() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for size_hint in [0, 10, 100_000, u64::MAX] {
            let got = read_bounded(&mut &bytes[..], 100_000, size_hint).unwrap().unwrap();
            assert_eq!(&got[..], &bytes[..], "hint {size_hint}");
            assert!(read_bounded(&mut &bytes[..], 99_999, size_hint).unwrap().is_none(), "hint {size_hint}");
        }
        assert!(read_bounded(&mut std::io::repeat(0), 1 << 20, 0).unwrap().is_none(), "an endless source ends at the bound");
    }

    #[cfg(unix)]
    #[test]
    fn fifos_devices_and_directories_are_refused_and_bounds_named() {
        let dir = std::env::temp_dir().join(format!("dpopkit-fsread-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for (path, what) in [(fifo.as_path(), "a FIFO"), (Path::new("/dev/zero"), "a character device"), (dir.as_path(), "a directory")] {
            let e = read_regular_file(path, &KEY_FILE).unwrap_err();
            assert_eq!(e.kind, ErrorKind::FileIo);
            assert!(e.message.contains(&format!("not a regular file ({what}): give the path of a key file")), "{}", e.message);
        }
        let file = dir.join("pin");
        std::fs::write(&file, "1234\n").unwrap();
        assert_eq!(&read_regular_file(&file, &PIN_FILE).unwrap()[..], b"1234\n");
        std::fs::write(&file, vec![b'1'; 4097]).unwrap();
        let e = read_regular_file(&file, &PIN_FILE).unwrap_err();
        assert!(e.message.contains("larger than the 4096 bytes a PIN file (pin-source) may have (4097 bytes)"), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
