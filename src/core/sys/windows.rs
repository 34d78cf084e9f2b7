//! All Windows platform code of the core, in one place: what the Unix code gets from
//! `O_NOFOLLOW`, `O_NONBLOCK`, `st_nlink`, `st_uid` and mode 0600, done with Win32 calls.
//!
//! The session log ([`open_private_append`]):
//! - no following of symbolic links or junctions: the file is opened with
//!   `FILE_FLAG_OPEN_REPARSE_POINT` (so a reparse point at the path is opened itself, not
//!   its target) and refused when its attributes say `FILE_ATTRIBUTE_REPARSE_POINT`;
//! - no devices (`CON`, `NUL`, `COM1`, `\\.\pipe\...`): refused by name before opening
//!   ([`is_device_path`]), and `GetFileType` must be `FILE_TYPE_DISK` after it;
//! - no hard-linked file: `nNumberOfLinks` (from `GetFileInformationByHandle`) must be 1;
//! - no file of another user: the owner (`GetSecurityInfo`) must be the process's user or
//!   the token's default owner for new objects (Administrators, for an elevated process);
//! - a file it creates gets a protected DACL that allows only that user, SYSTEM and
//!   Administrators (nobody else can read it, whatever the directory's inherited ACEs say).
//!
//! The shared token cache (token_store.rs): [`check_private_dir`] (owner and DACL of the
//! directory, the fix named with `icacls`), [`open_private_read`], [`open_lock_file`] +
//! [`try_lock`] (`LockFileEx`), [`create_new_private`]; and [`create_private_dir`] for the
//! CLI's `--token-cache`.
//!
//! Errors are plain texts that the caller puts after what it was doing ("cannot open
//! session log '…': ").
#![allow(unsafe_code)] // audited: every call below is a documented Win32 call on owned buffers and handles

use std::fs::File;
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;
use std::ptr::null_mut;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_INSUFFICIENT_BUFFER, ERROR_LOCK_VIOLATION, ERROR_PATH_NOT_FOUND, GetLastError, HANDLE,
    INVALID_HANDLE_VALUE, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, GetSecurityInfo, SDDL_REVISION_1, SE_FILE_OBJECT,
};
use windows_sys::Win32::Security::{
    ACCESS_ALLOWED_ACE, ACE_HEADER, ACL, ACL_SIZE_INFORMATION, AclSizeInformation, DACL_SECURITY_INFORMATION, GetAce, GetAclInformation,
    GetTokenInformation, INHERIT_ONLY_ACE, OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, PSID, SECURITY_ATTRIBUTES, TOKEN_OWNER,
    TOKEN_QUERY, TOKEN_USER, TokenOwner, TokenUser,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, CREATE_NEW, CreateDirectoryW, CreateFileW, FILE_APPEND_DATA, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_GENERIC_READ,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_TYPE_DISK, FILE_WRITE_DATA,
    GetFileInformationByHandle, GetFileType, LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, OPEN_ALWAYS, OPEN_EXISTING,
    READ_CONTROL, SYNCHRONIZE,
};
use windows_sys::Win32::System::IO::OVERLAPPED;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

fn wide(path: &Path) -> Vec<u16> {
    path.as_os_str().encode_wide().chain(Some(0)).collect()
}

fn wide_str(text: &str) -> Vec<u16> {
    text.encode_utf16().chain(Some(0)).collect()
}

fn last_error() -> String {
    std::io::Error::last_os_error().to_string()
}

/// A NUL-terminated wide string to a `String` (lossless for SID strings, which are ASCII).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated UTF-16 string.
unsafe fn from_wide(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut n = 0;
    // SAFETY: NUL-terminated per the contract.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: n elements were just read.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A SID as its string form (S-1-5-21-…).
///
/// # Safety
/// `sid` is a valid SID.
unsafe fn sid_string(sid: PSID) -> Result<String, String> {
    let mut s: *mut u16 = null_mut();
    // SAFETY: sid is valid; s receives a LocalAlloc'ed string, freed below.
    if unsafe { ConvertSidToStringSidW(sid, &mut s) } == 0 {
        return Err(format!("cannot read a SID: {}", last_error()));
    }
    // SAFETY: ConvertSidToStringSidW returned a NUL-terminated string.
    let text = unsafe { from_wide(s) };
    // SAFETY: s came from LocalAlloc.
    unsafe { LocalFree(s.cast()) };
    Ok(text)
}

/// The process's user and the default owner of the objects it creates, as SID strings.
pub struct Identity {
    pub user: String,
    pub default_owner: String,
}

/// Reads [`Identity`] from the process token.
pub fn identity() -> Result<Identity, String> {
    let mut token: HANDLE = null_mut();
    // SAFETY: GetCurrentProcess is a pseudo handle; token receives a handle owned below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(format!("cannot read the process token: {}", last_error()));
    }
    // SAFETY: token is a handle we own now.
    let token = unsafe { OwnedHandle::from_raw_handle(token) };
    let info = |class| -> Result<Vec<u64>, String> {
        let mut len = 0u32;
        // SAFETY: a size query (NULL buffer, 0 bytes).
        unsafe { GetTokenInformation(token.as_raw_handle(), class, null_mut(), 0, &mut len) };
        // SAFETY: GetLastError has no preconditions.
        if len == 0 || unsafe { GetLastError() } != ERROR_INSUFFICIENT_BUFFER {
            return Err(format!("cannot read the process token: {}", last_error()));
        }
        let mut buf = vec![0u64; (len as usize).div_ceil(8)]; // 8-byte aligned for the SID pointers inside
        // SAFETY: buf holds len bytes.
        if unsafe { GetTokenInformation(token.as_raw_handle(), class, buf.as_mut_ptr().cast(), len, &mut len) } == 0 {
            return Err(format!("cannot read the process token: {}", last_error()));
        }
        Ok(buf)
    };
    let user = info(TokenUser)?;
    let owner = info(TokenOwner)?;
    // SAFETY: the buffers hold a TOKEN_USER and a TOKEN_OWNER whose SIDs point inside them.
    unsafe {
        let user_sid = (*(user.as_ptr() as *const TOKEN_USER)).User.Sid;
        let owner_sid = (*(owner.as_ptr() as *const TOKEN_OWNER)).Owner;
        Ok(Identity { user: sid_string(user_sid)?, default_owner: sid_string(owner_sid)? })
    }
}

/// The owner of an open file or directory as a SID string, and (when `with_dacl`) the
/// allow ACEs of its DACL that apply to it, as (SID string, access mask); `None` for a NULL
/// DACL (which allows everyone everything).
#[allow(clippy::type_complexity)]
fn security_of(handle: HANDLE, with_dacl: bool) -> Result<(String, Option<Vec<(String, u32)>>), String> {
    let mut owner: PSID = null_mut();
    let mut dacl: *mut ACL = null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    let what = OWNER_SECURITY_INFORMATION | if with_dacl { DACL_SECURITY_INFORMATION } else { 0 };
    // SAFETY: handle is open with READ_CONTROL; owner and dacl point into sd, freed below.
    let rc = unsafe { GetSecurityInfo(handle, SE_FILE_OBJECT, what, &mut owner, null_mut(), &mut dacl, null_mut(), &mut sd) };
    if rc != 0 {
        return Err(format!("cannot read its owner and permissions: {}", std::io::Error::from_raw_os_error(rc as i32)));
    }
    // SAFETY: owner and dacl are valid while sd lives; each ACE is read within the ACL.
    let result = unsafe {
        (|| {
            let owner = sid_string(owner)?;
            if !with_dacl || dacl.is_null() {
                return Ok((owner, None));
            }
            let mut size = ACL_SIZE_INFORMATION::default();
            if GetAclInformation(dacl, (&raw mut size).cast(), size_of::<ACL_SIZE_INFORMATION>() as u32, AclSizeInformation) == 0 {
                return Err(format!("cannot read its permissions: {}", last_error()));
            }
            let mut aces = Vec::new();
            for i in 0..size.AceCount {
                let mut ace: *mut core::ffi::c_void = null_mut();
                if GetAce(dacl, i, &mut ace) == 0 {
                    return Err(format!("cannot read its permissions: {}", last_error()));
                }
                let header = &*(ace as *const ACE_HEADER);
                // Allow ACEs that apply to the object itself (not only to what it will contain).
                if header.AceType == 0 && header.AceFlags as u32 & INHERIT_ONLY_ACE == 0 {
                    let allowed = &*(ace as *const ACCESS_ALLOWED_ACE);
                    aces.push((sid_string((&raw const allowed.SidStart) as PSID)?, allowed.Mask));
                }
            }
            Ok((owner, Some(aces)))
        })()
    };
    // SAFETY: sd came from LocalAlloc.
    unsafe { LocalFree(sd) };
    result
}

/// The SIDs that may hold any right on dpopkit's private files and directories besides
/// the process's user and default owner: SYSTEM, Administrators, CREATOR OWNER.
const TRUSTED_SIDS: [&str; 3] = ["S-1-5-18", "S-1-5-32-544", "S-1-3-0"];

/// A protected DACL: full access for `user`, SYSTEM and Administrators, nobody else.
pub fn private_sddl(user: &str) -> String {
    format!("D:P(A;;FA;;;{user})(A;;FA;;;SY)(A;;FA;;;BA)")
}

/// Opens `path` for appending as the session log, creating it readable only by its owner
/// (and SYSTEM / Administrators); refuses reparse points, devices, pipes, hard-linked
/// files and files of other users. See the module documentation.
pub fn open_private_append(path: &Path) -> Result<File, String> {
    // Refused by name before opening too: opening a device can have effects of its own (a
    // serial port, a console), and some do not open at all without a console (CON).
    if is_device_path(path) {
        return Err(NOT_ON_DISK.into());
    }
    let me = identity()?;
    let file = create_private(path, &me, FILE_APPEND_DATA | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE, OPEN_ALWAYS)
        .map_err(|e| e.to_string())?;
    check_private_file(&file, &me)?;
    Ok(file)
}

/// `CreateFileW` with `disposition`, never following a reparse point at `path`; a file it
/// creates gets the DACL of [`private_sddl`].
fn create_private(path: &Path, me: &Identity, access: u32, disposition: u32) -> std::io::Result<File> {
    let sddl = wide_str(&private_sddl(&me.user));
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: sddl is NUL-terminated; sd receives a LocalAlloc'ed descriptor, freed below.
    if unsafe { ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.as_ptr(), SDDL_REVISION_1, &mut sd, null_mut()) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let sa = SECURITY_ATTRIBUTES { nLength: size_of::<SECURITY_ATTRIBUTES>() as u32, lpSecurityDescriptor: sd, bInheritHandle: 0 };
    let name = wide(path);
    // SAFETY: name is NUL-terminated, sa and sd live across the call.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            access,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            &sa,
            disposition,
            FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT,
            null_mut(),
        )
    };
    let open_error = std::io::Error::last_os_error();
    // SAFETY: sd came from LocalAlloc and is no longer used.
    unsafe { LocalFree(sd) };
    if handle == INVALID_HANDLE_VALUE {
        return Err(open_error);
    }
    // SAFETY: a valid handle we own from here on.
    Ok(unsafe { File::from_raw_handle(handle) })
}

const NOT_ON_DISK: &str =
    "it is a device or a pipe (such as CON, NUL, COM1 or \\\\.\\pipe\\...), not a file on disk; give the path of a regular file";

/// Whether `path` names a device: a reserved DOS device name as its last component (`CON`,
/// `PRN`, `AUX`, `NUL`, `COM0`-`COM9`, `LPT0`-`LPT9`, `CONIN$`, `CONOUT$`, also with an
/// extension or trailing dots, spaces or a colon: `nul.txt`, `CON:`), or a path in the
/// device namespace (`\\.\…`, `\\?\…`) other than a drive or UNC path.
pub fn is_device_path(path: &Path) -> bool {
    let text = path.as_os_str().to_string_lossy().replace('/', "\\");
    for prefix in ["\\\\.\\", "\\\\?\\", "\\??\\"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let b = rest.as_bytes();
            let drive = b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\';
            let unc = rest.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("UNC\\"));
            if !(drive || unc) {
                return true;
            }
        }
    }
    let last = text.trim_end_matches([':', ' ', '.']).rsplit(['\\', ':']).next().unwrap_or("");
    let stem = last.split('.').next().unwrap_or("").trim_end_matches(' ').to_ascii_uppercase();
    matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$")
        || (stem.len() == 4 && (stem.starts_with("COM") || stem.starts_with("LPT")) && stem.as_bytes()[3].is_ascii_digit())
}

/// The checks of [`open_private_append`] on an open file.
fn check_private_file(file: &File, me: &Identity) -> Result<(), String> {
    let handle = file.as_raw_handle();
    // SAFETY: a valid open handle.
    if unsafe { GetFileType(handle) } != FILE_TYPE_DISK {
        return Err(NOT_ON_DISK.into());
    }
    // SAFETY: all-zero is a valid BY_HANDLE_FILE_INFORMATION; the call fills it.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a valid handle opened with FILE_READ_ATTRIBUTES.
    if unsafe { GetFileInformationByHandle(handle, &mut info) } == 0 {
        return Err(format!("cannot read its attributes: {}", last_error()));
    }
    if info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        return Err("it is a symbolic link or junction (a reparse point), which is not followed; give the path of a regular file".into());
    }
    if info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        return Err("it is a directory, not a regular file".into());
    }
    if info.nNumberOfLinks > 1 {
        return Err("it has other hard links (it is another name of some file); give the path of a file of its own".into());
    }
    let (owner, _) = security_of(handle, false)?;
    if owner != me.user && owner != me.default_owner {
        return Err(format!(
            "it belongs to another user ({owner}), who could read it; remove it, or give another path \
             (icacls \"<path>\" shows its owner)"
        ));
    }
    Ok(())
}

// --- The shared token cache (token_store.rs) ---------------------------------------------

/// Rights that let someone plant, replace or remove files in a directory, or change who may.
const DIR_WRITE_RIGHTS: u32 = 0x2 /* FILE_ADD_FILE */ | 0x4 /* FILE_ADD_SUBDIRECTORY */ | 0x40 /* FILE_DELETE_CHILD */
    | 0x1_0000 /* DELETE */ | 0x4_0000 /* WRITE_DAC */ | 0x8_0000 /* WRITE_OWNER */ | 0x1000_0000 /* GENERIC_ALL */
    | 0x4000_0000 /* GENERIC_WRITE */;

/// Rights on a token file that only its owner may hold (read it, change it, change who may).
const FILE_PRIVATE_RIGHTS: u32 = 0x1 /* FILE_READ_DATA */ | 0x2 /* FILE_WRITE_DATA */ | 0x4 /* FILE_APPEND_DATA */
    | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x1000_0000 | 0x4000_0000 | 0x8000_0000 /* GENERIC_READ */;

/// The first allow ACE that gives someone other than this user (or SYSTEM / Administrators)
/// one of `rights`.
fn foreign_access(aces: &[(String, u32)], me: &Identity, rights: u32) -> Option<String> {
    aces.iter()
        .find(|(sid, mask)| mask & rights != 0 && *sid != me.user && *sid != me.default_owner && !TRUSTED_SIDS.contains(&sid.as_str()))
        .map(|(sid, _)| sid.clone())
}

/// The Windows form of token_store's directory check: an existing directory, owned by this
/// user (or the token's default owner), whose DACL lets nobody else add, replace or remove
/// files. The text names the fix (icacls).
pub fn check_private_dir(path: &Path, shown: &str) -> Result<(), String> {
    let fix = format!("icacls \"{shown}\" /inheritance:r /grant:r \"%USERNAME%:(OI)(CI)F\"");
    let name = wide(path);
    // SAFETY: name is NUL-terminated; BACKUP_SEMANTICS opens directories.
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            READ_CONTROL | FILE_READ_ATTRIBUTES,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            null_mut(),
            OPEN_EXISTING,
            FILE_FLAG_BACKUP_SEMANTICS,
            null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error().map(|c| c as u32) {
            Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => {
                format!("does not exist: create it for this user only (mkdir \"{shown}\", then {fix}); dpopkit does not create it")
            }
            _ => format!("cannot be read: {e}"),
        });
    }
    // SAFETY: a valid handle we own from here on.
    let dir = unsafe { OwnedHandle::from_raw_handle(handle) };
    // SAFETY: all-zero is a valid BY_HANDLE_FILE_INFORMATION; the call fills it.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a valid handle opened with FILE_READ_ATTRIBUTES.
    if unsafe { GetFileInformationByHandle(dir.as_raw_handle(), &mut info) } == 0 {
        return Err(format!("cannot be read: {}", last_error()));
    }
    if info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY == 0 {
        return Err("is not a directory".to_string());
    }
    let me = identity()?;
    let (owner, aces) = security_of(dir.as_raw_handle(), true)?;
    if owner != me.user && owner != me.default_owner {
        return Err(format!(
            "is owned by {owner}, not by this user ({}): its owner could read and replace the tokens; use a directory \
             of this user's (mkdir DIR, then {fix})",
            me.user
        ));
    }
    let Some(aces) = aces else {
        return Err(format!("has no DACL, so everyone may write to it: make it private with {fix}"));
    };
    if let Some(sid) = foreign_access(&aces, &me, DIR_WRITE_RIGHTS) {
        return Err(format!(
            "is writable by {sid}, not only by this user: they could plant, replace or remove token files; make it \
             private with {fix}"
        ));
    }
    Ok(())
}

/// Opens a token record for reading: `Ok(None)` when it does not exist; refused (the text
/// says why) when it is a reparse point, not a file on disk, hard-linked, owned by another
/// user or readable or writable by someone else.
pub fn open_private_read(path: &Path) -> Result<Option<File>, String> {
    let me = identity()?;
    let name = wide(path);
    // SAFETY: name is NUL-terminated; no security attributes (opening only).
    let handle = unsafe {
        CreateFileW(
            name.as_ptr(),
            FILE_GENERIC_READ,
            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
            null_mut(),
            OPEN_EXISTING,
            FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT,
            null_mut(),
        )
    };
    if handle == INVALID_HANDLE_VALUE {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error().map(|c| c as u32) {
            Some(ERROR_FILE_NOT_FOUND | ERROR_PATH_NOT_FOUND) => Ok(None),
            _ => Err(format!("cannot be opened ({e})")),
        };
    }
    // SAFETY: a valid handle we own from here on.
    let file = unsafe { File::from_raw_handle(handle) };
    check_private_file(&file, &me)?;
    match security_of(file.as_raw_handle(), true)? {
        (_, None) => Err("has no DACL: everyone may read or write it".into()),
        (_, Some(aces)) => match foreign_access(&aces, &me, FILE_PRIVATE_RIGHTS) {
            Some(sid) => Err(format!("may be read or written by {sid}, not only by this user")),
            None => Ok(Some(file)),
        },
    }
}

/// Opens (creating if needed, private) a lock file for [`try_lock`].
pub fn open_lock_file(path: &Path) -> Result<File, String> {
    let me = identity()?;
    let file = create_private(path, &me, FILE_GENERIC_READ | FILE_WRITE_DATA, OPEN_ALWAYS).map_err(|e| e.to_string())?;
    check_private_file(&file, &me)?;
    Ok(file)
}

/// Creates a new private file (fails if it exists), for a record written and then renamed
/// over the old one (std's rename is `MoveFileExW` with `MOVEFILE_REPLACE_EXISTING`).
pub fn create_new_private(path: &Path) -> std::io::Result<File> {
    let me = identity().map_err(std::io::Error::other)?;
    create_private(path, &me, FILE_WRITE_DATA | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE, CREATE_NEW)
}

/// Moves `from` to `to` unless `to` exists (`MoveFileExW` without
/// `MOVEFILE_REPLACE_EXISTING`: an existing `to` is an `AlreadyExists` error, atomically).
pub fn move_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (wide(from), wide(to));
    // SAFETY: both names are NUL-terminated UTF-16.
    if unsafe { windows_sys::Win32::Storage::FileSystem::MoveFileExW(from.as_ptr(), to.as_ptr(), 0) } != 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `LockFileEx(EXCLUSIVE | FAIL_IMMEDIATELY)` on the first byte: `Ok(false)` when another
/// handle holds it. Closing the file releases it (also when the process dies).
pub fn try_lock(file: &File) -> std::io::Result<bool> {
    // SAFETY: all-zero is a valid OVERLAPPED (offset 0, no event).
    let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
    // SAFETY: a valid synchronous handle; overlapped lives across the call.
    if unsafe { LockFileEx(file.as_raw_handle(), LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &mut overlapped) } != 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error().map(|c| c as u32) == Some(ERROR_LOCK_VIOLATION) { Ok(false) } else { Err(e) }
}

/// Creates a directory (one level) with a protected DACL for this user, SYSTEM and
/// Administrators, inherited by what is created in it: the Windows `mkdir -m 700`, for the
/// CLI's `--token-cache`. An existing directory is left as it is (the checks judge it).
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let me = identity().map_err(std::io::Error::other)?;
    let sddl = wide_str(&format!("D:P(A;OICI;FA;;;{})(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", me.user));
    let mut sd: PSECURITY_DESCRIPTOR = null_mut();
    // SAFETY: sddl is NUL-terminated; sd receives a LocalAlloc'ed descriptor, freed below.
    if unsafe { ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl.as_ptr(), SDDL_REVISION_1, &mut sd, null_mut()) } == 0 {
        return Err(std::io::Error::last_os_error());
    }
    let sa = SECURITY_ATTRIBUTES { nLength: size_of::<SECURITY_ATTRIBUTES>() as u32, lpSecurityDescriptor: sd, bInheritHandle: 0 };
    let name = wide(path);
    // SAFETY: name is NUL-terminated; sa and sd live across the call.
    let ok = unsafe { CreateDirectoryW(name.as_ptr(), &sa) } != 0;
    let error = std::io::Error::last_os_error();
    // SAFETY: sd came from LocalAlloc and is no longer used.
    unsafe { LocalFree(sd) };
    if ok { Ok(()) } else { Err(error) }
}
