//! The in-process COM server (Windows only): DpopKit.PrivateKey, DpopKit.JsonObject and
//! DpopKit.Http for `sp_OACreate`, VBScript's `CreateObject`, VBA and any IDispatch
//! client, over the same C layer as every other binding (issue 21).
//!
//! It lives in dpopkit.dll itself rather than in a DLL of its own: one file to deploy,
//! register and update; the COM objects call the C functions directly, in the same
//! process-wide token, nonce, key and connection caches as a CLR or C caller of the same
//! DLL; and no second DLL has to find dpopkit.dll at load time (the DLL search SQL Server
//! does not make easy). The cost is the COM exports (`DllGetClassObject`,
//! `DllCanUnloadNow`, `DllRegisterServer`, `DllUnregisterServer`, `DllInstall`) beside the
//! header's functions, and imports of ole32/oleaut32/combase that a C caller does not use.
//!
//! - `members`: the member table (also read by build.rs for the type library's IDL);
//! - `dispatch`: a generic IDispatch over it; `objects`: the three classes;
//! - `registry`: regsvr32's registration.

use std::ffi::c_void;
use std::sync::atomic::{AtomicIsize, Ordering};

use windows::Win32::Foundation::{CLASS_E_CLASSNOTAVAILABLE, CLASS_E_NOAGGREGATION, E_INVALIDARG, E_POINTER, E_UNEXPECTED, S_FALSE, S_OK};
use windows::Win32::System::Com::{IClassFactory, IClassFactory_Impl};
use windows_core::{BOOL, GUID, HRESULT, IUnknown, Interface, PCWSTR, Ref, implement};

mod dispatch;
pub mod members;
mod objects;
mod registry;

use members::{CLASSES, Class};

/// Live COM objects (and class factories) of this DLL.
static OBJECTS: AtomicIsize = AtomicIsize::new(0);
/// IClassFactory::LockServer's count.
static LOCKS: AtomicIsize = AtomicIsize::new(0);

#[implement(IClassFactory)]
struct Factory {
    class: &'static Class,
}

impl Factory {
    fn new(class: &'static Class) -> Factory {
        OBJECTS.fetch_add(1, Ordering::SeqCst);
        Factory { class }
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs `f`, catching a panic (None) through the C layer's boundary, whose panic hook keeps a
/// caught panic silent (nothing on the host's stderr).
pub(crate) fn quiet<T>(f: impl FnOnce() -> T) -> Option<T> {
    crate::ffi::boundary::peek(None, || Some(f()))
}

fn guard(f: impl FnOnce() -> HRESULT) -> HRESULT {
    quiet(f).unwrap_or(E_UNEXPECTED)
}

impl IClassFactory_Impl for Factory_Impl {
    fn CreateInstance(&self, outer: Ref<IUnknown>, riid: *const GUID, ppv: *mut *mut c_void) -> windows_core::Result<()> {
        guard(|| {
            if ppv.is_null() {
                return E_POINTER;
            }
            unsafe { *ppv = std::ptr::null_mut() };
            if !outer.is_null() {
                return CLASS_E_NOAGGREGATION;
            }
            objects::create(self.class, riid, ppv)
        })
        .ok()
    }

    fn LockServer(&self, lock: BOOL) -> windows_core::Result<()> {
        if lock.as_bool() {
            LOCKS.fetch_add(1, Ordering::SeqCst);
        } else {
            LOCKS.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// COM's entry point: the class factory of one of the three CLSIDs.
///
/// # Safety
/// COM's contract: `rclsid` and `riid` point to GUIDs, `ppv` to writable storage.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DllGetClassObject(rclsid: *const GUID, riid: *const GUID, ppv: *mut *mut c_void) -> HRESULT {
    guard(|| {
        if ppv.is_null() || rclsid.is_null() || riid.is_null() {
            return E_POINTER;
        }
        unsafe { *ppv = std::ptr::null_mut() };
        let want = unsafe { *rclsid };
        let Some(class) = CLASSES.iter().copied().find(|c| GUID::try_from(c.clsid).is_ok_and(|g| g == want)) else {
            return CLASS_E_CLASSNOTAVAILABLE;
        };
        let f: IClassFactory = Factory::new(class).into();
        unsafe { f.query(riid, ppv) }
    })
}

/// S_OK only when no object or factory of this DLL is alive and no LockServer holds it.
#[unsafe(no_mangle)]
pub extern "system" fn DllCanUnloadNow() -> HRESULT {
    guard(|| if OBJECTS.load(Ordering::SeqCst) == 0 && LOCKS.load(Ordering::SeqCst) == 0 { S_OK } else { S_FALSE })
}

/// regsvr32: per machine (HKLM\Software\Classes), what sp_OACreate needs.
#[unsafe(no_mangle)]
pub extern "system" fn DllRegisterServer() -> HRESULT {
    guard(|| match registry::register(registry::Scope::Machine) {
        Ok(()) => S_OK,
        Err(e) => {
            let _ = registry::unregister(registry::Scope::Machine);
            e
        }
    })
}

/// regsvr32 /u.
#[unsafe(no_mangle)]
pub extern "system" fn DllUnregisterServer() -> HRESULT {
    guard(|| registry::unregister(registry::Scope::Machine).map_or_else(|e| e, |()| S_OK))
}

/// `regsvr32 /n /i:user` (per user, HKCU\Software\Classes) and `regsvr32 /u /n /i:user`;
/// `/i:machine` or no command line: per machine.
///
/// # Safety
/// `cmdline` is NULL or a NUL-terminated wide string.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DllInstall(install: BOOL, cmdline: PCWSTR) -> HRESULT {
    guard(|| {
        let arg = if cmdline.is_null() { String::new() } else { String::from_utf16_lossy(unsafe { cmdline.as_wide() }) };
        let scope = match arg.trim().to_ascii_lowercase().as_str() {
            "user" => registry::Scope::User,
            "" | "machine" => registry::Scope::Machine,
            _ => return E_INVALIDARG,
        };
        let r = if install.as_bool() { registry::register(scope) } else { registry::unregister(scope) };
        r.map_or_else(|e| e, |()| S_OK)
    })
}
