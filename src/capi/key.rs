//! PrivateKey objects: the DPoP key, EC P-256 (ES256), EC P-384 (ES384) or Ed25519 (EdDSA).

use std::ffi::c_char;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::Arc;

use crate::core::{EcKey, Error, ErrorKind};
use crate::ffi::boundary::{FfiError, run};
use crate::ffi::objects::KeyObj;
use crate::ffi::registry::{self, Object};
use crate::ffi::strings::{arg, opt_arg, out};

/// Creates an empty PrivateKey object. Load or generate a key into it before use.
///
/// Returns a handle > 0, or 0 on failure. Destroy it with `dpopkit_destroy`.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_new() -> i64 {
    run("dpopkit_key_new", 0, |_| registry::insert(Object::Key(Arc::default())))
}

fn store(key: i64, k: impl Into<Arc<EcKey>>) -> Result<c_int, FfiError> {
    let obj = registry::key(key)?;
    *obj.key.write().unwrap_or_else(|e| e.into_inner()) = Some(k.into());
    Ok(1)
}

fn loaded(obj: &KeyObj) -> Result<Arc<EcKey>, FfiError> {
    obj.key
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| Error::new(ErrorKind::NoKey, "the PrivateKey object holds no key: load or generate one first").into())
}

/// Current key of a PrivateKey handle, for other modules.
pub(crate) fn key_of(key: i64) -> Result<Arc<EcKey>, FfiError> {
    loaded(&*registry::key(key)?)
}

/// Loads a private key from a file in any supported format: PEM SEC1 (`EC PRIVATE KEY`),
/// PEM PKCS#8 (`PRIVATE KEY`), PEM encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, needs
/// `password`), DER (SEC1, PKCS#8 or encrypted PKCS#8), or a JWK JSON object with `d`.
/// EC P-256 (ES256), EC P-384 (ES384) and Ed25519 (EdDSA) keys are supported; RSA and other
/// curves are refused with `DPOPKIT_RESULT_KEY_UNSUPPORTED`.
///
/// `password` may be NULL or "" when the key is not encrypted. Returns 1 on success, 0 on
/// failure (the key object keeps its previous key).
///
/// Parsed keys are kept process-wide under a salted hash of the file's content and the
/// password, so loading the same file again (a new key object per call) costs a small read
/// instead of a parse; a rewritten file is parsed again. At most 32 keys, in memory that is
/// wiped when they go; `dpopkit_token_cache_clear` empties the cache.
///
/// # Safety
/// `path` and `password` are NULL or NUL-terminated UTF-8 strings, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_key_load_any_format_file(key: i64, path: *const c_char, password: *const c_char) -> c_int {
    run("dpopkit_key_load_any_format_file", key, |_| {
        registry::key(key)?;
        let path = unsafe { arg(path, "path") }?;
        let password = unsafe { opt_arg(password, "password") }?;
        store(key, EcKey::load_file_shared(Path::new(path), password)?)
    })
}

/// Like `dpopkit_key_load_any_format_file`, from text already in memory (PEM or JWK).
///
/// # Safety
/// `data` and `password` are NULL or NUL-terminated UTF-8 strings, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_key_load_any_format(key: i64, data: *const c_char, password: *const c_char) -> c_int {
    run("dpopkit_key_load_any_format", key, |_| {
        registry::key(key)?;
        let data = unsafe { arg(data, "data") }?;
        let password = unsafe { opt_arg(password, "password") }?;
        store(key, EcKey::from_any_format(data.as_bytes(), password)?)
    })
}

/// Generates a new random P-256 key (ES256) into the object. Returns 1 on success, 0 on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_generate(key: i64) -> c_int {
    run("dpopkit_key_generate", key, |_| {
        registry::key(key)?;
        store(key, EcKey::generate()?)
    })
}

/// Generates a new random key for `alg`: "ES256" (EC P-256, the usual choice), "ES384"
/// (EC P-384) or "EdDSA" (Ed25519). Returns 1 on success, 0 on failure
/// (`DPOPKIT_RESULT_INVALID_ARGUMENT` for another name).
///
/// # Safety
/// `alg` is a NUL-terminated UTF-8 string, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_key_generate_alg(key: i64, alg: *const c_char) -> c_int {
    run("dpopkit_key_generate_alg", key, |_| {
        registry::key(key)?;
        let alg = unsafe { arg(alg, "alg") }?;
        store(key, EcKey::generate_alg(alg)?)
    })
}

/// The JWS algorithm the key signs DPoP proofs with: "ES256", "ES384" or "EdDSA".
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_alg(key: i64) -> *mut c_char {
    run("dpopkit_key_get_alg", key, |_| out(key_of(key)?.alg()))
}

/// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
/// This is secret material: protect and free it promptly.
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_pkcs8_pem(key: i64) -> *mut c_char {
    run("dpopkit_key_get_pkcs8_pem", key, |_| out(&key_of(key)?.to_pkcs8_pem()?))
}

/// The private key as a JWK (`kty`, `crv`, `x`, `y`, `d`). Secret material.
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_jwk(key: i64) -> *mut c_char {
    run("dpopkit_key_get_jwk", key, |_| out(&key_of(key)?.to_private_jwk()))
}

/// The public key as a JWK with the RFC 7638 members (`crv`, `kty`, `x`, `y`).
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_public_jwk(key: i64) -> *mut c_char {
    run("dpopkit_key_get_public_jwk", key, |_| out(key_of(key)?.public_jwk()))
}

/// The RFC 7638 SHA-256 JWK thumbprint, base64url: the `jkt` a server binds tokens to.
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_jwk_thumbprint(key: i64) -> *mut c_char {
    run("dpopkit_key_get_jwk_thumbprint", key, |_| out(key_of(key)?.jkt()))
}
