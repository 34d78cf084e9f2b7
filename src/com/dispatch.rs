//! A generic late-bound IDispatch over a member table (src/com/members.rs): case-insensitive
//! GetIDsOfNames, Invoke's flags, argument decoding with OLE Automation's coercions, results,
//! EXCEPINFO. The objects (src/com/objects.rs) only map a decoded call onto the C layer.
//!
//! COM's memory rules, as applied here: `rgvarg` is the caller's and is never changed or
//! freed; each coercion goes into a temporary that is wiped (it may hold a secret) and
//! `VariantClear`ed; results and EXCEPINFO strings are allocated here and freed by the
//! caller (`VariantClear`, `SysFreeString`).

use std::ffi::c_char;
use std::mem::ManuallyDrop;

use windows::Win32::Foundation::{
    DISP_E_BADPARAMCOUNT, DISP_E_EXCEPTION, DISP_E_MEMBERNOTFOUND, DISP_E_NONAMEDARGS, DISP_E_PARAMNOTFOUND, DISP_E_TYPEMISMATCH,
    DISP_E_UNKNOWNINTERFACE, DISP_E_UNKNOWNNAME, E_OUTOFMEMORY,
};
use windows::Win32::System::Com::{
    DISPATCH_FLAGS, DISPATCH_METHOD, DISPATCH_PROPERTYGET, DISPATCH_PROPERTYPUT, DISPATCH_PROPERTYPUTREF, DISPPARAMS, EXCEPINFO, IDispatch,
    SAFEARRAY,
};
use windows::Win32::System::Ole::{
    DISPID_PROPERTYPUT, SafeArrayAccessData, SafeArrayCreateVector, SafeArrayGetDim, SafeArrayGetLBound, SafeArrayGetUBound,
    SafeArrayGetVartype, SafeArrayUnaccessData,
};
use windows::Win32::System::Variant::{
    VARENUM, VARIANT, VARIANT_NOVALUEPROP, VT_ARRAY, VT_BSTR, VT_BYREF, VT_DISPATCH, VT_EMPTY, VT_ERROR, VT_I4, VT_I8, VT_NULL, VT_UI1,
    VT_UNKNOWN, VT_VARIANT, VariantChangeType, VariantClear,
};
use windows_core::{BSTR, GUID, HRESULT, Interface, PCWSTR};
use zeroize::Zeroizing;

use super::members::{Class, Kind, Member, Ty, optional};

/// A decoded argument.
pub enum Arg {
    /// optional and not given (or Null / Nothing / Empty for an optional object)
    Missing,
    /// Null for an optional string or byte array: the C layer's NULL
    Null,
    /// a NUL-terminated UTF-8 string (wiped when dropped: it may be a secret)
    Str(Zeroizing<Vec<u8>>),
    Long(i64),
    /// the dpopkit handle of a DpopKit.PrivateKey object (0: none)
    Key(i64),
    Bytes(Zeroizing<Vec<u8>>),
}

impl Arg {
    /// The C pointer of a string argument: NULL for Missing / Null.
    pub fn c_str(&self) -> *const c_char {
        match self {
            Arg::Str(s) => s.as_ptr() as *const c_char,
            _ => std::ptr::null(),
        }
    }
    pub fn long(&self) -> i64 {
        match self {
            Arg::Long(n) | Arg::Key(n) => *n,
            _ => 0,
        }
    }
}

/// A result.
pub enum Value {
    Void,
    Long(i32),
    /// UTF-8 text, sent as a BSTR ("" for a failed getter)
    Str(Zeroizing<String>),
    /// VT_ARRAY | VT_UI1
    Bytes(Zeroizing<Vec<u8>>),
}

/// Why a call did not run.
pub enum Fault {
    #[allow(dead_code)] // for members that fail with a plain HRESULT; none does yet
    Hr(HRESULT),
    /// DISP_E_TYPEMISMATCH for the parameter with this (0-based, positional) index
    Mismatch(usize),
    /// DISP_E_EXCEPTION with this scode and description (never a secret)
    Exception(HRESULT, String),
}

/// An object with a member table.
pub trait Members {
    fn class(&self) -> &'static Class;
    /// Runs `m` (`put`: a property put, the value in `args[0]`).
    fn call(&self, m: &'static Member, put: bool, args: &[Arg]) -> Result<Value, Fault>;
}

pub fn member_by_id(c: &'static Class, id: i32) -> Option<&'static Member> {
    c.members.iter().find(|m| m.id == id)
}

fn eq_ignore_ascii_case_wide(w: &[u16], s: &str) -> bool {
    w.len() == s.len() && w.iter().zip(s.bytes()).all(|(&a, b)| a < 128 && (a as u8).eq_ignore_ascii_case(&b))
}

unsafe fn wide_of<'a>(p: PCWSTR) -> &'a [u16] {
    if p.is_null() {
        return &[];
    }
    // SAFETY: a NUL-terminated wide string from the caller, valid for the call.
    unsafe {
        let mut n = 0;
        while *p.0.add(n) != 0 {
            n += 1;
        }
        std::slice::from_raw_parts(p.0, n)
    }
}

/// IDispatch::GetIDsOfNames: the member (case-insensitive, as VBScript and T-SQL expect),
/// then its parameters' names (for named arguments, `@name = value` in sp_OAMethod).
///
/// # Safety
/// The pointers are IDispatch::GetIDsOfNames's, from the caller.
pub unsafe fn get_ids_of_names(
    c: &'static Class,
    riid: *const GUID,
    names: *const PCWSTR,
    count: u32,
    ids: *mut i32,
) -> windows_core::Result<()> {
    if !riid.is_null() && unsafe { *riid } != GUID::zeroed() {
        return Err(DISP_E_UNKNOWNINTERFACE.into());
    }
    if count == 0 {
        return Ok(());
    }
    if names.is_null() || ids.is_null() {
        return Err(windows::Win32::Foundation::E_POINTER.into());
    }
    // SAFETY: `count` entries each, as the caller declares.
    let names = unsafe { std::slice::from_raw_parts(names, count as usize) };
    let ids = unsafe { std::slice::from_raw_parts_mut(ids, count as usize) };
    ids.fill(-1); // DISPID_UNKNOWN
    let first = unsafe { wide_of(names[0]) };
    let Some(m) = c.members.iter().find(|m| eq_ignore_ascii_case_wide(first, m.name)) else {
        return Err(DISP_E_UNKNOWNNAME.into());
    };
    ids[0] = m.id;
    let mut all = true;
    for (i, n) in names.iter().enumerate().skip(1) {
        let w = unsafe { wide_of(*n) };
        // T-SQL writes the name with its '@'.
        let w = if w.first() == Some(&(b'@' as u16)) { &w[1..] } else { w };
        match m.params.iter().position(|(p, _)| eq_ignore_ascii_case_wide(w, p)) {
            Some(k) => ids[i] = k as i32,
            None => all = false,
        }
    }
    if all { Ok(()) } else { Err(DISP_E_UNKNOWNNAME.into()) }
}

fn vt(v: &VARIANT) -> u16 {
    // SAFETY: every VARIANT starts with its vt.
    unsafe { v.Anonymous.Anonymous.vt.0 }
}

/// Follows VT_BYREF | VT_VARIANT (what VBScript sends for any variable), a few levels.
unsafe fn deref(mut v: &VARIANT) -> &VARIANT {
    for _ in 0..4 {
        if vt(v) != (VT_BYREF.0 | VT_VARIANT.0) {
            break;
        }
        // SAFETY: vt says pvarVal is the member.
        let p = unsafe { v.Anonymous.Anonymous.Anonymous.pvarVal };
        if p.is_null() {
            break;
        }
        v = unsafe { &*p };
    }
    v
}

fn is_missing(v: &VARIANT) -> bool {
    // VB's convention for an omitted optional argument.
    vt(v) == VT_ERROR.0 && unsafe { v.Anonymous.Anonymous.Anonymous.scode } == DISP_E_PARAMNOTFOUND.0
}

/// A coercion into a temporary, wiped and cleared on drop.
struct Temp(VARIANT);

impl Temp {
    unsafe fn change(src: &VARIANT, to: VARENUM) -> Option<Temp> {
        let mut t = Temp(VARIANT::default());
        // NOVALUEPROP: never call into a foreign object's default member.
        unsafe { VariantChangeType(&mut t.0, src, VARIANT_NOVALUEPROP, to) }.ok()?;
        Some(t)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if vt(&self.0) == VT_BSTR.0 {
            // SAFETY: our own copy of the string; wipe it before it is freed.
            unsafe {
                let b: &BSTR = &self.0.Anonymous.Anonymous.Anonymous.bstrVal;
                let (p, n) = (b.as_ptr() as *mut u16, b.len());
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, n);
                }
            }
        }
        let _ = unsafe { VariantClear(&mut self.0) };
    }
}

fn utf8_of_wide(w: &[u16]) -> Option<Zeroizing<Vec<u8>>> {
    // Strict: an unpaired surrogate is a type mismatch, never replaced.
    let s = Zeroizing::new(String::from_utf16(w).ok()?);
    if s.as_bytes().contains(&0) {
        return None; // a C string cannot carry it
    }
    let mut v = Zeroizing::new(Vec::with_capacity(s.len() + 1));
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    Some(v)
}

unsafe fn decode_str(v: &VARIANT) -> Option<Zeroizing<Vec<u8>>> {
    let v = unsafe { deref(v) };
    match vt(v) {
        // A NULL BSTR is "" (COM's rule).
        x if x == VT_BSTR.0 => utf8_of_wide(unsafe { &v.Anonymous.Anonymous.Anonymous.bstrVal }),
        x if x == VT_BYREF.0 | VT_BSTR.0 => {
            let p = unsafe { v.Anonymous.Anonymous.Anonymous.pbstrVal };
            if p.is_null() { None } else { utf8_of_wide(unsafe { &*p }) }
        }
        x if x == VT_DISPATCH.0 || x == VT_UNKNOWN.0 || x & VT_ARRAY.0 != 0 => None,
        _ => {
            let t = unsafe { Temp::change(v, VT_BSTR) }?;
            utf8_of_wide(unsafe { &t.0.Anonymous.Anonymous.Anonymous.bstrVal })
        }
    }
}

unsafe fn decode_bytes(v: &VARIANT) -> Option<Zeroizing<Vec<u8>>> {
    let v = unsafe { deref(v) };
    let t = vt(v);
    let sa: *mut SAFEARRAY = if t == VT_ARRAY.0 | VT_UI1.0 {
        unsafe { v.Anonymous.Anonymous.Anonymous.parray }
    } else if t == VT_BYREF.0 | VT_ARRAY.0 | VT_UI1.0 {
        let p = unsafe { v.Anonymous.Anonymous.Anonymous.pparray };
        if p.is_null() { return None } else { unsafe { *p } }
    } else if t & VT_ARRAY.0 != 0 {
        // VBScript's arrays are VT_ARRAY | VT_VARIANT: accept only real byte arrays.
        return None;
    } else {
        // A string: its UTF-8.
        let mut s = unsafe { decode_str(v) }?;
        s.pop();
        return Some(s);
    };
    if sa.is_null() {
        return Some(Zeroizing::new(Vec::new()));
    }
    unsafe {
        if SafeArrayGetDim(sa) != 1 || SafeArrayGetVartype(sa).ok()? != VT_UI1 {
            return None;
        }
        let (lo, hi) = (SafeArrayGetLBound(sa, 1).ok()?, SafeArrayGetUBound(sa, 1).ok()?);
        let n = (i64::from(hi) - i64::from(lo) + 1).max(0) as usize;
        let mut data = std::ptr::null_mut();
        SafeArrayAccessData(sa, &mut data).ok()?;
        let out = if n == 0 || data.is_null() { Vec::new() } else { std::slice::from_raw_parts(data as *const u8, n).to_vec() };
        let _ = SafeArrayUnaccessData(sa);
        Some(Zeroizing::new(out))
    }
}

/// The dpopkit handle of a DpopKit.PrivateKey passed as an object; Some(0) for Nothing.
unsafe fn decode_key(v: &VARIANT, key_class: &'static Class, handle_of: fn(&IDispatch, &'static Class) -> Option<i64>) -> Option<i64> {
    let v = unsafe { deref(v) };
    let t = vt(v);
    let disp: Option<IDispatch> = if t == VT_DISPATCH.0 {
        unsafe { (*v.Anonymous.Anonymous.Anonymous.pdispVal).clone() }
    } else if t == VT_BYREF.0 | VT_DISPATCH.0 {
        let p = unsafe { v.Anonymous.Anonymous.Anonymous.ppdispVal };
        if p.is_null() { None } else { unsafe { (*p).clone() } }
    } else if t == VT_UNKNOWN.0 {
        match unsafe { &*v.Anonymous.Anonymous.Anonymous.punkVal } {
            Some(u) => Some(u.cast::<IDispatch>().ok()?),
            None => None,
        }
    } else if t == VT_EMPTY.0 || t == VT_NULL.0 {
        None
    } else {
        return None;
    };
    match disp {
        None => Some(0),
        Some(d) => handle_of(&d, key_class),
    }
}

/// IDispatch::Invoke over a member table.
///
/// # Safety
/// The pointers are IDispatch::Invoke's, from the caller.
#[allow(clippy::too_many_arguments)]
pub unsafe fn invoke(
    obj: &dyn Members,
    handle_of: fn(&IDispatch, &'static Class) -> Option<i64>,
    key_class: &'static Class,
    id: i32,
    riid: *const GUID,
    flags: DISPATCH_FLAGS,
    params: *const DISPPARAMS,
    result: *mut VARIANT,
    excep: *mut EXCEPINFO,
    arg_err: *mut u32,
) -> windows_core::Result<()> {
    if !riid.is_null() && unsafe { *riid } != GUID::zeroed() {
        return Err(DISP_E_UNKNOWNINTERFACE.into());
    }
    let class = obj.class();
    let Some(m) = member_by_id(class, id) else { return Err(DISP_E_MEMBERNOTFOUND.into()) };
    let empty = DISPPARAMS::default();
    let p = if params.is_null() { &empty } else { unsafe { &*params } };
    let (c_args, c_named) = (p.cArgs as usize, p.cNamedArgs as usize);
    if c_named > c_args || (c_args > 0 && p.rgvarg.is_null()) || (c_named > 0 && p.rgdispidNamedArgs.is_null()) {
        return Err(windows::Win32::Foundation::E_INVALIDARG.into());
    }
    let rgvarg: &[VARIANT] = if c_args == 0 { &[] } else { unsafe { std::slice::from_raw_parts(p.rgvarg, c_args) } };
    let named: &[i32] = if c_named == 0 { &[] } else { unsafe { std::slice::from_raw_parts(p.rgdispidNamedArgs, c_named) } };
    let put = flags.0 & (DISPATCH_PROPERTYPUT.0 | DISPATCH_PROPERTYPUTREF.0) != 0;
    let get = flags.0 & (DISPATCH_METHOD.0 | DISPATCH_PROPERTYGET.0) != 0;
    // slots[i]: the rgvarg index given for parameter i
    let mut slots: Vec<Option<usize>> = vec![None; m.params.len()];
    if put {
        if !matches!(m.kind, Kind::GetPut | Kind::Put) {
            return Err(DISP_E_MEMBERNOTFOUND.into());
        }
        if c_named != 1 || named[0] != DISPID_PROPERTYPUT || c_args != 1 {
            return Err(if c_args != 1 { DISP_E_BADPARAMCOUNT } else { DISP_E_PARAMNOTFOUND }.into());
        }
        slots[0] = Some(0);
    } else if get {
        if m.kind == Kind::Put {
            return Err(DISP_E_MEMBERNOTFOUND.into());
        }
        let params_of_call = if matches!(m.kind, Kind::Get | Kind::GetPut) { 0 } else { m.params.len() };
        let positional = c_args - c_named;
        if positional > params_of_call {
            return Err(DISP_E_BADPARAMCOUNT.into());
        }
        for (i, slot) in slots.iter_mut().enumerate().take(positional) {
            *slot = Some(c_args - 1 - i);
        }
        for (j, &pid) in named.iter().enumerate() {
            if params_of_call == 0 {
                return Err(DISP_E_NONAMEDARGS.into());
            }
            match usize::try_from(pid).ok().filter(|&k| k < params_of_call && slots[k].is_none()) {
                Some(k) => slots[k] = Some(j),
                None => {
                    if !arg_err.is_null() {
                        unsafe { *arg_err = j as u32 };
                    }
                    return Err(DISP_E_PARAMNOTFOUND.into());
                }
            }
        }
        let required_missing = m.params.iter().take(params_of_call).zip(&slots).any(|((_, t), s)| s.is_none() && !optional(*t));
        if required_missing {
            return Err(if c_named == 0 { DISP_E_BADPARAMCOUNT } else { DISP_E_PARAMNOTFOUND }.into());
        }
        slots.truncate(params_of_call);
    } else {
        return Err(DISP_E_MEMBERNOTFOUND.into());
    }
    let mut args = Vec::with_capacity(slots.len());
    for (i, slot) in slots.iter().enumerate() {
        let t = m.params[i].1;
        let Some(k) = *slot else {
            args.push(Arg::Missing);
            continue;
        };
        let v = &rgvarg[k];
        let dv = unsafe { deref(v) };
        let mismatch = || {
            if !arg_err.is_null() {
                unsafe { *arg_err = k as u32 };
            }
            windows_core::Error::from(DISP_E_TYPEMISMATCH)
        };
        if is_missing(dv) {
            if optional(t) {
                args.push(Arg::Missing);
                continue;
            }
            if !arg_err.is_null() {
                unsafe { *arg_err = k as u32 };
            }
            return Err(DISP_E_PARAMNOTFOUND.into());
        }
        let null = vt(dv) == VT_NULL.0;
        let a = match t {
            Ty::Str if null => return Err(mismatch()),
            Ty::OptStr | Ty::OptBytes if null => Arg::Null,
            Ty::Str | Ty::OptStr => Arg::Str(unsafe { decode_str(v) }.ok_or_else(mismatch)?),
            Ty::OptBytes => Arg::Bytes(unsafe { decode_bytes(v) }.ok_or_else(mismatch)?),
            Ty::Long | Ty::Size => {
                let to = if t == Ty::Long { VT_I4 } else { VT_I8 };
                if null || vt(dv) == VT_DISPATCH.0 || vt(dv) == VT_UNKNOWN.0 {
                    return Err(mismatch());
                }
                let tmp = unsafe { Temp::change(v, to) }.ok_or_else(mismatch)?;
                let n = unsafe {
                    if t == Ty::Long {
                        i64::from(tmp.0.Anonymous.Anonymous.Anonymous.lVal)
                    } else {
                        tmp.0.Anonymous.Anonymous.Anonymous.llVal
                    }
                };
                if t == Ty::Size && n < 0 {
                    return Err(mismatch());
                }
                Arg::Long(n)
            }
            Ty::Key | Ty::OptKey => match unsafe { decode_key(v, key_class, handle_of) } {
                Some(0) if t == Ty::Key => return Err(mismatch()),
                Some(0) => Arg::Missing,
                Some(h) => Arg::Key(h),
                None => return Err(mismatch()),
            },
            Ty::Void | Ty::Bytes => return Err(mismatch()),
        };
        args.push(a);
    }
    match obj.call(m, put, &args) {
        Ok(v) => {
            if !put && !result.is_null() {
                unsafe { write_result(result, v) }?;
            }
            Ok(())
        }
        Err(Fault::Hr(hr)) => Err(hr.into()),
        Err(Fault::Mismatch(i)) => {
            if !arg_err.is_null() {
                if let Some(Some(k)) = slots.get(i) {
                    unsafe { *arg_err = *k as u32 };
                }
            }
            Err(DISP_E_TYPEMISMATCH.into())
        }
        Err(Fault::Exception(scode, text)) => {
            unsafe { fill_excep(excep, &format!("DpopKit.{}", class.name), &text, scode) };
            Err(DISP_E_EXCEPTION.into())
        }
    }
}

/// Fills EXCEPINFO (when given) with a source and a description; never a secret.
///
/// # Safety
/// `excep` is NULL or IDispatch::Invoke's EXCEPINFO.
pub unsafe fn fill_excep(excep: *mut EXCEPINFO, source: &str, text: &str, scode: HRESULT) {
    if excep.is_null() {
        return;
    }
    let e = unsafe { &mut *excep };
    e.wCode = 0;
    e.scode = scode.0;
    e.bstrSource = ManuallyDrop::new(BSTR::from(source));
    e.bstrDescription = ManuallyDrop::new(BSTR::from(text));
    e.bstrHelpFile = ManuallyDrop::new(BSTR::new());
    e.dwHelpContext = 0;
    e.pvReserved = std::ptr::null_mut();
    e.pfnDeferredFillIn = None;
}

unsafe fn write_result(out: *mut VARIANT, v: Value) -> windows_core::Result<()> {
    let mut r = VARIANT::default();
    {
        // SAFETY: a fresh VT_EMPTY VARIANT of ours; the members match the vt set.
        let inner = unsafe { &mut *r.Anonymous.Anonymous };
        match v {
            Value::Void => inner.vt = VT_EMPTY,
            Value::Long(n) => {
                inner.vt = VT_I4;
                inner.Anonymous.lVal = n;
            }
            Value::Str(s) => {
                let w: Zeroizing<Vec<u16>> = Zeroizing::new(s.encode_utf16().collect());
                inner.vt = VT_BSTR;
                inner.Anonymous.bstrVal = ManuallyDrop::new(BSTR::from_wide(&w));
            }
            Value::Bytes(b) => {
                let n = u32::try_from(b.len()).map_err(|_| windows_core::Error::from(E_OUTOFMEMORY))?;
                let sa = unsafe { SafeArrayCreateVector(VT_UI1, 0, n) };
                if sa.is_null() {
                    return Err(E_OUTOFMEMORY.into());
                }
                unsafe {
                    let mut data = std::ptr::null_mut();
                    SafeArrayAccessData(sa, &mut data)?;
                    if n > 0 {
                        std::ptr::copy_nonoverlapping(b.as_ptr(), data as *mut u8, b.len());
                    }
                    SafeArrayUnaccessData(sa)?;
                }
                inner.vt = VARENUM(VT_ARRAY.0 | VT_UI1.0);
                inner.Anonymous.parray = sa;
            }
        }
    }
    // The caller's VARIANT is uninitialised or VT_EMPTY by the rules: overwrite it.
    unsafe { std::ptr::write(out, r) };
    Ok(())
}
