//! The gateway's secret files (`caller_secret_file`, `client_secret_file`): regular files of
//! one line, read without blocking and bounded like any file dpopkit reads, and on Unix not
//! readable or writable by every user — a local process that reads the caller credential
//! uses the API as the gateway; one that can change it chooses the credential.

use std::path::Path;

use dpopkit::core::ErrorKind;
use dpopkit::core::fsread::{FileKind, RegularFile};
use zeroize::Zeroizing;

pub const CLIENT_SECRET_FILE: FileKind = FileKind {
    name: "client secret file (client_secret_file)",
    max: 4096,
    too_large: ErrorKind::FileIo,
    hint: "give the path of a file that holds only the client secret",
};

pub const CALLER_SECRET_FILE: FileKind = FileKind {
    name: "caller credential file (caller_secret_file)",
    max: 4096,
    too_large: ErrorKind::FileIo,
    hint: "give the path of a file that holds only the caller credential (the X-DpopKit-Gateway-Key secret)",
};

/// The bytes of a secret file; refused with the fix when it is not a regular file, too
/// large, or (Unix) open to every user.
pub fn read(path: &Path, kind: &'static FileKind, setting: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let file = RegularFile::open(path, kind).map_err(|e| e.message)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = file.metadata().mode();
        if mode & 0o006 != 0 {
            return Err(format!(
                "the {setting} '{}' can be read or changed by every user (mode {:04o}): any local process could take or replace the secret; chmod 600 it (or 640 with the gateway's group)",
                path.display(),
                mode & 0o7777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = setting;
    file.read().map_err(|e| e.message)
}
