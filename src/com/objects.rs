//! DpopKit.PrivateKey / .JsonObject / .Http: each COM object owns one dpopkit handle and
//! maps every member onto the C layer (src/capi), so the COM route has exactly the C ABI's
//! behaviour, error texts (already free of secrets) and last-call state (per object and
//! thread). No panic leaves a vtable method: each runs inside the C layer's quiet boundary.

use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use windows::Win32::Foundation::{E_FAIL, E_OUTOFMEMORY, E_UNEXPECTED};
use windows::Win32::System::Com::{DISPATCH_FLAGS, DISPPARAMS, EXCEPINFO, IDispatch, IDispatch_Impl, IDispatch_Vtbl, ITypeInfo};
use windows::Win32::System::Variant::VARIANT;
use windows_core::{GUID, Interface, PCWSTR, implement};
use zeroize::Zeroizing;

use super::dispatch::{self, Arg, Fault, Members, Value};
use super::members::{Class, JSON_OBJECT, Member, PRIVATE_KEY};
use crate::capi::{common, http, json, key};

/// The state shared by the three classes (each is its own COM type below, so that it
/// answers QueryInterface for its own dispinterface's IID only: early-bound callers ask for
/// DIID_IHttp etc., and a PrivateKey must never pass for an Http).
pub struct ComObj {
    class: &'static Class,
    handle: i64,
    /// SessionLogFilename as last set successfully (a path, not a secret), for reading back.
    session_log: Mutex<String>,
}

impl ComObj {
    /// A new object of `class` with a new dpopkit handle.
    pub fn new(class: &'static Class) -> Option<ComObj> {
        let handle = if std::ptr::eq(class, &PRIVATE_KEY) {
            key::dpopkit_key_new()
        } else if std::ptr::eq(class, &JSON_OBJECT) {
            json::dpopkit_json_new()
        } else {
            http::dpopkit_http_new()
        };
        if handle == 0 {
            return None;
        }
        super::OBJECTS.fetch_add(1, Ordering::SeqCst);
        Some(ComObj { class, handle, session_log: Mutex::new(String::new()) })
    }
}

impl Drop for ComObj {
    fn drop(&mut self) {
        let _ = super::quiet(|| common::dpopkit_destroy(self.handle));
        super::OBJECTS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The handle of one of this DLL's DpopKit.PrivateKey objects, passed in as an IDispatch
/// (never through a proxy: ThreadingModel Both keeps callers in their apartment).
fn handle_of(d: &IDispatch, want: &'static Class) -> Option<i64> {
    if !std::ptr::eq(want, &PRIVATE_KEY) {
        return None;
    }
    let o = d.cast_object_ref::<KeyObj>().ok()?;
    Some(o.0.handle)
}

/// A string the C layer returned (caller-owned): its text, then freed. NULL -> "".
fn take_str(p: *mut c_char) -> Value {
    if p.is_null() {
        return Value::Str(Zeroizing::new(String::new()));
    }
    // SAFETY: a NUL-terminated UTF-8 string from the C layer, freed once below.
    let s = Zeroizing::new(unsafe { CStr::from_ptr(p) }.to_str().unwrap_or_default().to_owned());
    unsafe { common::dpopkit_string_free(p) };
    Value::Str(s)
}

/// Bytes the C layer returned (caller-owned): copied, then freed. NULL -> empty.
fn take_bytes(p: *mut u8, len: usize) -> Value {
    if p.is_null() {
        return Value::Bytes(Zeroizing::new(Vec::new()));
    }
    // SAFETY: `len` bytes from the C layer, freed once below.
    let b = Zeroizing::new(unsafe { std::slice::from_raw_parts(p, len) }.to_vec());
    unsafe { http::dpopkit_bytes_free(p) };
    Value::Bytes(b)
}

fn long(n: i32) -> Value {
    Value::Long(n)
}

fn u32_arg(a: &Arg, index: usize) -> Result<u32, Fault> {
    u32::try_from(a.long()).map_err(|_| Fault::Mismatch(index))
}

impl Members for ComObj {
    fn class(&self) -> &'static Class {
        self.class
    }

    fn call(&self, m: &'static Member, put: bool, a: &[Arg]) -> Result<Value, Fault> {
        let h = self.handle;
        let s = |i: usize| a[i].c_str();
        // SAFETY (all calls below): string arguments are NUL-terminated UTF-8 owned by `a`
        // for the call, or NULL where the C function accepts NULL (optional parameters).
        let v = unsafe {
            match (self.class.name, m.name) {
                (_, "LastErrorText") => take_str(common::dpopkit_last_error_text(h)),
                (_, "LastMethodSuccess") => long(crate::ffi::boundary::peek(0, || crate::ffi::boundary::last_for(h).success.into())),
                (_, "LastErrorCode") => long(common::dpopkit_last_error_code(h) as i32),
                (_, "Version") => take_str(common::dpopkit_version()),
                (_, "LiveHandles") => long(i32::try_from(common::dpopkit_live_handles()).unwrap_or(i32::MAX)),

                ("PrivateKey", "LoadAnyFormatFile") => long(key::dpopkit_key_load_any_format_file(h, s(0), s(1))),
                ("PrivateKey", "LoadAnyFormat") => long(key::dpopkit_key_load_any_format(h, s(0), s(1))),
                ("PrivateKey", "Generate") => long(key::dpopkit_key_generate(h)),
                ("PrivateKey", "GenerateAlg") => long(key::dpopkit_key_generate_alg(h, s(0))),
                ("PrivateKey", "GeneratePkcs11") => long(key::dpopkit_key_generate_pkcs11(h, s(0), s(1), s(2))),
                ("PrivateKey", "GetAlg") => take_str(key::dpopkit_key_get_alg(h)),
                ("PrivateKey", "GetPkcs8Pem") => take_str(key::dpopkit_key_get_pkcs8_pem(h)),
                ("PrivateKey", "GetJwk") => take_str(key::dpopkit_key_get_jwk(h)),
                ("PrivateKey", "GetPublicJwk") => take_str(key::dpopkit_key_get_public_jwk(h)),
                ("PrivateKey", "GetJwkThumbprint") => take_str(key::dpopkit_key_get_jwk_thumbprint(h)),

                ("JsonObject", "UpdateString") => long(json::dpopkit_json_update_string(h, s(0), s(1))),
                ("JsonObject", "Emit") => take_str(json::dpopkit_json_emit(h)),
                ("JsonObject", "Load") => long(json::dpopkit_json_load(h, s(0))),
                ("JsonObject", "StringOf") => take_str(json::dpopkit_json_string_of(h, s(0))),

                ("Http", "SetDPoPKey") => long(http::dpopkit_http_set_dpop_key(h, a[0].long())),
                ("Http", "SetClientAssertionKey") => long(http::dpopkit_http_set_client_assertion_key(h, a[0].long())),
                ("Http", "AuthToken") | ("Http", "SetAuthToken") => {
                    let r = http::dpopkit_http_set_auth_token(h, s(0));
                    if put { Value::Void } else { long(r) }
                }
                ("Http", "SessionLogFilename") if !put => {
                    Value::Str(Zeroizing::new(self.session_log.lock().unwrap_or_else(|e| e.into_inner()).clone()))
                }
                ("Http", "SessionLogFilename") | ("Http", "SetSessionLogFilename") => {
                    let r = http::dpopkit_http_set_session_log_filename(h, s(0));
                    if r == 1 {
                        let path = match &a[0] {
                            Arg::Str(b) => String::from_utf8_lossy(&b[..b.len() - 1]).into_owned(),
                            _ => String::new(),
                        };
                        *self.session_log.lock().unwrap_or_else(|e| e.into_inner()) = path;
                    }
                    if put { Value::Void } else { long(r) }
                }
                ("Http", "SetTimeouts") => long(http::dpopkit_http_set_timeouts(h, u32_arg(&a[0], 0)?, u32_arg(&a[1], 1)?)),
                ("Http", "SetMaxResponseSize") => long(http::dpopkit_http_set_max_response_size(h, a[0].long() as u64)),
                ("Http", "SetFollowRedirects") => long(http::dpopkit_http_set_follow_redirects(h, (a[0].long() != 0).into())),
                ("Http", "SetCaFile") => long(http::dpopkit_http_set_ca_file(h, s(0))),
                ("Http", "SetUseOsTrustStore") => long(http::dpopkit_http_set_use_os_trust_store(h, (a[0].long() != 0).into())),
                ("Http", "SetProxy") => long(http::dpopkit_http_set_proxy(h, s(0))),
                ("Http", "SetRequestHeader") => long(http::dpopkit_http_set_request_header(h, s(0), s(1))),
                ("Http", "RemoveRequestHeader") => long(http::dpopkit_http_remove_request_header(h, s(0))),
                ("Http", "ClearRequestHeaders") => long(http::dpopkit_http_clear_request_headers(h)),
                ("Http", "QuickGetStr") => take_str(http::dpopkit_http_quick_get_str(h, s(0))),
                ("Http", "QuickGetBytes") => {
                    let mut n = 0usize;
                    let p = http::dpopkit_http_quick_get_bytes(h, s(0), &mut n);
                    take_bytes(p, n)
                }
                ("Http", "QuickRequestStr") => take_str(http::dpopkit_http_quick_request_str(h, s(0), s(1), s(2), s(3))),
                ("Http", "QuickRequestBytes") => {
                    let (body, len) = match &a[3] {
                        Arg::Bytes(b) => (if b.is_empty() { std::ptr::null() } else { b.as_ptr() }, b.len()),
                        _ => (std::ptr::null(), 0),
                    };
                    let mut n = 0usize;
                    let p = http::dpopkit_http_quick_request_bytes(h, s(0), s(1), s(2), body, len, &mut n);
                    take_bytes(p, n)
                }
                ("Http", "LastStatus") => long(http::dpopkit_http_last_status(h)),
                ("Http", "LastStatusText") => take_str(http::dpopkit_http_last_status_text(h)),
                ("Http", "LastResponseBody") => take_str(http::dpopkit_http_last_response_body(h)),
                ("Http", "LastResponseBodyBytes") => {
                    let mut n = 0usize;
                    let p = http::dpopkit_http_last_response_body_bytes(h, &mut n);
                    take_bytes(p, n)
                }
                ("Http", "LastResponseHeader") => take_str(http::dpopkit_http_last_response_header(h)),
                ("Http", "LastResponseHeaderValue") => take_str(http::dpopkit_http_last_response_header_value(h, s(0))),
                ("Http", "TokenCacheClear") => long(common::dpopkit_token_cache_clear()),
                _ => return Err(Fault::Exception(E_FAIL, format!("{} is not implemented", m.name))),
            }
        };
        Ok(v)
    }
}

/// Runs a vtable method's body; a panic becomes E_UNEXPECTED (it never unwinds into COM).
fn guard<T>(f: impl FnOnce() -> windows_core::Result<T>) -> windows_core::Result<T> {
    super::quiet(f).unwrap_or_else(|| Err(E_UNEXPECTED.into()))
}

/// Test-only, like `__panic_inside_boundary_for_tests` in the C layer: this DISPID (in no
/// name lookup and not in the type library) panics inside Invoke, to prove the panic stays
/// there (tests/windows/com/client.c).
const PANIC_FOR_TESTS: i32 = 0x7FFF_0001;

/// This object's dispinterface from the type library embedded in the DLL.
fn type_info(class: &'static Class) -> windows_core::Result<ITypeInfo> {
    let lib = super::registry::load_type_lib()?;
    let iid = GUID::try_from(class.diid).map_err(|_| windows_core::Error::from(E_FAIL))?;
    unsafe { lib.GetTypeInfoOfGuid(&iid) }
}

fn get_type_info_count() -> windows_core::Result<u32> {
    guard(|| Ok(u32::from(super::registry::load_type_lib().is_ok())))
}

fn get_type_info(o: &ComObj, itinfo: u32) -> windows_core::Result<ITypeInfo> {
    guard(|| {
        if itinfo != 0 {
            return Err(windows::Win32::Foundation::DISP_E_BADINDEX.into());
        }
        type_info(o.class)
    })
}

fn get_ids_of_names(o: &ComObj, riid: *const GUID, names: *const PCWSTR, count: u32, ids: *mut i32) -> windows_core::Result<()> {
    guard(|| unsafe { dispatch::get_ids_of_names(o.class, riid, names, count, ids) })
}

#[allow(clippy::too_many_arguments)]
fn invoke(
    o: &ComObj,
    id: i32,
    riid: *const GUID,
    flags: DISPATCH_FLAGS,
    params: *const DISPPARAMS,
    result: *mut VARIANT,
    excep: *mut EXCEPINFO,
    arg_err: *mut u32,
) -> windows_core::Result<()> {
    let r = super::quiet(|| {
        if id == PANIC_FOR_TESTS {
            panic!("deliberate test panic");
        }
        unsafe { dispatch::invoke(o, handle_of, &PRIVATE_KEY, id, riid, flags, params, result, excep, arg_err) }
    });
    match r {
        Some(r) => r,
        None => {
            let name = dispatch::member_by_id(o.class, id).map_or("a member", |m| m.name);
            unsafe {
                dispatch::fill_excep(
                    excep,
                    &format!("DpopKit.{}", o.class.name),
                    &format!("internal error in {name} (a bug in dpopkit; the call did not complete)"),
                    E_UNEXPECTED,
                )
            };
            Err(windows::Win32::Foundation::DISP_E_EXCEPTION.into())
        }
    }
}

// One COM type per class: its dispinterface (IDispatch's vtable under its own IID; QueryInterface
// answers it, IDispatch and IUnknown), IDispatch delegating to the shared functions above.
// The IIDs are members.rs's `diid`s: tests/windows/com/early.c asks for each through the header
// widl makes from the IDL written from members.rs, so a difference fails there.

/// IDispatch of one COM object type (`$obj_impl`, the name `implement` gives it), delegating
/// to the shared functions above. (The `interface` and `implement` attributes stay outside:
/// `implement` does not take an interface named through a macro's parameter.)
macro_rules! dispatch_to_shared {
    ($obj_impl:ident) => {
        impl IDispatch_Impl for $obj_impl {
            fn GetTypeInfoCount(&self) -> windows_core::Result<u32> {
                get_type_info_count()
            }
            fn GetTypeInfo(&self, itinfo: u32, _lcid: u32) -> windows_core::Result<ITypeInfo> {
                get_type_info(&self.0, itinfo)
            }
            fn GetIDsOfNames(
                &self,
                riid: *const GUID,
                names: *const PCWSTR,
                count: u32,
                _lcid: u32,
                ids: *mut i32,
            ) -> windows_core::Result<()> {
                get_ids_of_names(&self.0, riid, names, count, ids)
            }
            fn Invoke(
                &self,
                id: i32,
                riid: *const GUID,
                _lcid: u32,
                flags: DISPATCH_FLAGS,
                params: *const DISPPARAMS,
                result: *mut VARIANT,
                excep: *mut EXCEPINFO,
                arg_err: *mut u32,
            ) -> windows_core::Result<()> {
                invoke(&self.0, id, riid, flags, params, result, excep, arg_err)
            }
        }
    };
}

#[windows_core::interface("E262A1EA-C34B-4789-8FF2-10A0039BDAE5")]
pub unsafe trait IPrivateKey: IDispatch {}

#[implement(IPrivateKey)]
pub struct KeyObj(pub ComObj);

impl IPrivateKey_Impl for KeyObj_Impl {}
dispatch_to_shared!(KeyObj_Impl);

#[windows_core::interface("0D81D1E5-AAAF-4077-A6D0-C07BE88C2879")]
pub unsafe trait IJsonObject: IDispatch {}

#[implement(IJsonObject)]
pub struct JsonObj(pub ComObj);

impl IJsonObject_Impl for JsonObj_Impl {}
dispatch_to_shared!(JsonObj_Impl);

#[windows_core::interface("797C6517-2785-4BE0-B580-D872E0290471")]
pub unsafe trait IHttp: IDispatch {}

#[implement(IHttp)]
pub struct HttpObj(pub ComObj);

impl IHttp_Impl for HttpObj_Impl {}
dispatch_to_shared!(HttpObj_Impl);

/// Makes an object of `class` and answers `riid` for it (its own DIID, IDispatch, IUnknown).
pub fn create(class: &'static Class, riid: *const GUID, ppv: *mut *mut core::ffi::c_void) -> windows_core::HRESULT {
    let Some(obj) = ComObj::new(class) else { return E_OUTOFMEMORY };
    let unknown: windows_core::IUnknown = if std::ptr::eq(class, &PRIVATE_KEY) {
        IPrivateKey::from(KeyObj(obj)).into()
    } else if std::ptr::eq(class, &JSON_OBJECT) {
        IJsonObject::from(JsonObj(obj)).into()
    } else {
        IHttp::from(HttpObj(obj)).into()
    };
    unsafe { unknown.query(riid, ppv) }
}
