//! regsvr32's entry points: the ProgIDs, CLSIDs and the type library, per machine
//! (`HKLM\Software\Classes`, what sp_OACreate needs) or per user (`HKCU\Software\Classes`,
//! through `regsvr32 /n /i:user`). Every value is REG_SZ; the DLL's own full path (wide
//! calls throughout) goes into InprocServer32 with ThreadingModel Both.

use windows::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS, HMODULE, WIN32_ERROR};
use windows::Win32::System::Com::{ITypeLib, SYS_WIN64};
use windows::Win32::System::LibraryLoader::{
    GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT, GetModuleFileNameW, GetModuleHandleExW,
};
use windows::Win32::System::Ole::{
    LoadTypeLibEx, REGKIND_NONE, RegisterTypeLib, RegisterTypeLibForUser, SELFREG_E_CLASS, SELFREG_E_TYPELIB, UnRegisterTypeLib,
    UnRegisterTypeLibForUser,
};
use windows::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, HKEY_LOCAL_MACHINE, KEY_WRITE, REG_OPTION_NON_VOLATILE, REG_SZ, RegCloseKey, RegCreateKeyExW, RegDeleteTreeW,
    RegSetValueExW,
};
use windows_core::{GUID, HRESULT, HSTRING, PCWSTR};

use super::members::{CLASSES, LIB_VERSION, LIBID, progid, progid_versioned};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Machine,
    User,
}

fn root(scope: Scope) -> HKEY {
    if scope == Scope::Machine { HKEY_LOCAL_MACHINE } else { HKEY_CURRENT_USER }
}

/// This DLL's full path (whatever its file name), from an address inside it.
pub fn module_path() -> windows_core::Result<String> {
    let mut h = HMODULE::default();
    unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            PCWSTR(module_path as *const () as *const u16),
            &mut h,
        )?;
    }
    let mut buf = vec![0u16; 1024];
    loop {
        let n = unsafe { GetModuleFileNameW(Some(h), &mut buf) } as usize;
        if n == 0 {
            return Err(windows_core::Error::from_thread());
        }
        if n < buf.len() {
            return String::from_utf16(&buf[..n]).map_err(|_| windows_core::Error::from(SELFREG_E_CLASS));
        }
        if buf.len() >= 32768 {
            return Err(SELFREG_E_CLASS.into());
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// The type library embedded in this DLL (resource TYPELIB 1, made by build.rs).
pub fn load_type_lib() -> windows_core::Result<ITypeLib> {
    let path = HSTRING::from(module_path()?);
    unsafe { LoadTypeLibEx(&path, REGKIND_NONE) }
}

fn check(e: WIN32_ERROR) -> Result<(), HRESULT> {
    if e == ERROR_SUCCESS { Ok(()) } else { Err(SELFREG_E_CLASS) }
}

/// Sets `(Default)` (name None) or `name` of `Software\Classes\<key>` to `value`.
fn set(scope: Scope, key: &str, name: Option<&str>, value: &str) -> Result<(), HRESULT> {
    let sub = HSTRING::from(format!("Software\\Classes\\{key}"));
    let mut hk = HKEY::default();
    check(unsafe { RegCreateKeyExW(root(scope), &sub, None, PCWSTR::null(), REG_OPTION_NON_VOLATILE, KEY_WRITE, None, &mut hk, None) })?;
    let data: Vec<u8> = value.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
    let name = name.map(HSTRING::from);
    let r = unsafe {
        match &name {
            Some(n) => RegSetValueExW(hk, n, None, REG_SZ, Some(&data)),
            None => RegSetValueExW(hk, PCWSTR::null(), None, REG_SZ, Some(&data)),
        }
    };
    let _ = unsafe { RegCloseKey(hk) };
    check(r)
}

fn delete_tree(scope: Scope, key: &str) -> Result<(), HRESULT> {
    let sub = HSTRING::from(format!("Software\\Classes\\{key}"));
    match unsafe { RegDeleteTreeW(root(scope), &sub) } {
        e if e == ERROR_SUCCESS || e == ERROR_FILE_NOT_FOUND => Ok(()),
        _ => Err(SELFREG_E_CLASS),
    }
}

pub fn register(scope: Scope) -> Result<(), HRESULT> {
    let path = module_path().map_err(|_| SELFREG_E_CLASS)?;
    let (maj, min) = LIB_VERSION;
    for c in CLASSES {
        let (p, pv, clsid) = (progid(c), progid_versioned(c), format!("{{{}}}", c.clsid));
        let desc = format!("dpopkit {} (OAuth 2.0 + DPoP)", c.name);
        set(scope, &pv, None, &desc)?;
        set(scope, &format!("{pv}\\CLSID"), None, &clsid)?;
        set(scope, &p, None, &desc)?;
        set(scope, &format!("{p}\\CLSID"), None, &clsid)?;
        set(scope, &format!("{p}\\CurVer"), None, &pv)?;
        let k = format!("CLSID\\{clsid}");
        set(scope, &k, None, &desc)?;
        set(scope, &format!("{k}\\InprocServer32"), None, &path)?;
        set(scope, &format!("{k}\\InprocServer32"), Some("ThreadingModel"), "Both")?;
        set(scope, &format!("{k}\\ProgID"), None, &pv)?;
        set(scope, &format!("{k}\\VersionIndependentProgID"), None, &p)?;
        set(scope, &format!("{k}\\TypeLib"), None, &format!("{{{LIBID}}}"))?;
        set(scope, &format!("{k}\\Version"), None, &format!("{maj}.{min}"))?;
    }
    let lib = load_type_lib().map_err(|_| SELFREG_E_TYPELIB)?;
    let hpath = HSTRING::from(path);
    let r = unsafe {
        if scope == Scope::Machine {
            RegisterTypeLib(&lib, &hpath, PCWSTR::null())
        } else {
            RegisterTypeLibForUser(&lib, &hpath, PCWSTR::null())
        }
    };
    r.map_err(|_| SELFREG_E_TYPELIB)
}

/// Removes everything `register` wrote (what is already gone is fine).
pub fn unregister(scope: Scope) -> Result<(), HRESULT> {
    let mut result = Ok(());
    for c in CLASSES {
        for k in [progid_versioned(c), progid(c), format!("CLSID\\{{{}}}", c.clsid)] {
            if let Err(e) = delete_tree(scope, &k) {
                result = Err(e);
            }
        }
    }
    let libid = GUID::try_from(LIBID).map_err(|_| SELFREG_E_TYPELIB)?;
    let (maj, min) = LIB_VERSION;
    // A type library that was never registered is fine.
    let _ = unsafe {
        if scope == Scope::Machine {
            UnRegisterTypeLib(&libid, maj, min, 0, SYS_WIN64)
        } else {
            UnRegisterTypeLibForUser(&libid, maj, min, 0, SYS_WIN64)
        }
    };
    result
}
