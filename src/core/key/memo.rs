//! The process-wide memo of keys loaded from files (see [`crate::core::fsread::FileMemo`]).

use super::*;

/// How many parsed key files [`EcKey::load_file_shared`] keeps.
pub const MAX_CACHED_FILE_KEYS: usize = crate::core::state::limits::FILE_KEYS;

/// Parsed keys by the salted hash of their file's content and password.
pub(super) static FILE_KEYS: std::sync::LazyLock<FileMemo<EcKey>> = std::sync::LazyLock::new(|| FileMemo::new(MAX_CACHED_FILE_KEYS));

/// How many times [`EcKey::load_file_shared`] had to read a file (for tests).
pub fn file_cache_reads() -> u64 {
    FILE_KEYS.reads()
}

/// Forgets every key [`EcKey::load_file_shared`] cached (each is wiped when its last user
/// lets go of it).
pub fn clear_file_cache() {
    FILE_KEYS.clear();
}

/// How many keys the file cache holds (for tests).
pub fn file_cache_len() -> usize {
    FILE_KEYS.len()
}
