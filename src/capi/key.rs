//! PrivateKey objects: the DPoP key (ES256, ES384, EdDSA / Ed25519, RS256 / PS256), from a file, from memory, newly
//! generated, or inside a PKCS#11 token (`pkcs11:` URI).

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
/// PEM PKCS#1 (`RSA PRIVATE KEY`), PEM PKCS#8 (`PRIVATE KEY`), PEM encrypted PKCS#8
/// (`ENCRYPTED PRIVATE KEY`, needs `password`), DER (SEC1, PKCS#1, PKCS#8 or encrypted
/// PKCS#8), or a JWK JSON object with `d` (for RSA also `p`, `q`, `dp`, `dq`, `qi`).
/// EC P-256 (ES256), EC P-384 (ES384), Ed25519 (EdDSA / Ed25519) and RSA keys of 2048 to
/// 4096 bits (RS256 / PS256) are supported; smaller RSA keys and other curves are refused
/// with `DPOPKIT_RESULT_KEY_UNSUPPORTED`.
///
/// `password` may be NULL or "" when the key is not encrypted. Returns 1 on success, 0 on
/// failure (the key object keeps its previous key).
///
/// The file must be a regular file of at most 1 MiB: a FIFO, a device or a directory is
/// refused at once with `DPOPKIT_RESULT_FILE_IO` (never waited on or read without end).
///
/// Parsed keys are kept process-wide under a salted hash of the file's content and the
/// password, so loading the same file again (a new key object per call) costs an open and
/// an fstat instead of a read and a parse; a rewritten file is parsed again. At most 32
/// keys, in memory that is wiped when they go; `dpopkit_token_cache_clear` empties the
/// cache.
///
/// A `path` that is a PKCS#11 URI (`pkcs11:...`) opens a key in a token instead, exactly as
/// `dpopkit_key_load_any_format` does, `password` being the PIN; write `./pkcs11:...` for a
/// file whose name starts with `pkcs11:`.
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

/// Like `dpopkit_key_load_any_format_file`, from text already in memory (PEM or JWK), or
/// a key inside a PKCS#11 token named by an RFC 7512 URI:
///
/// `pkcs11:token=dpop;object=api-key?module-path=/usr/lib/softhsm/libsofthsm2.so`
///
/// Then `password` is the user PIN (else `pin-value=` or `pin-source=FILE` in the URI's query);
/// `module-path` may instead come from the environment variable `DPOPKIT_PKCS11_MODULE`
/// (when that is set, it is the only module a URI may name). Selecting attributes: `token`,
/// `serial`, `manufacturer`, `model`, `slot-id`, `object` (the key's label), `id`, `type=private`.
/// EC P-256 (ES256) and P-384 (ES384) keys are supported. The module is loaded once per
/// process and the token logged in to once, shared by every handle; proofs are signed
/// inside the token (CKM_ECDSA), safely from many threads. `dpopkit_key_get_jwk` and
/// `dpopkit_key_get_pkcs8_pem` fail for such a key (`DPOPKIT_RESULT_KEY_UNSUPPORTED`: not
/// exportable); the public JWK and the thumbprint work.
///
/// Errors: a bad URI -> `INVALID_ARGUMENT`; the module missing or not loadable ->
/// `FILE_IO`; no such token or key, a wrong or locked PIN -> `KEY_FORMAT` (a PIN the token
/// refused is never sent again by this process: tokens lock after a few wrong PINs); a key
/// that is not EC P-256/P-384 -> `KEY_UNSUPPORTED`. Later, a token that fails while signing
/// (removed, PIN refused at a re-login) makes the request fail with `NO_KEY`, and one that
/// does not sign by the call's deadline (`request_ms`) with `TIMEOUT`. No text ever contains
/// the PIN, nor any part of a malformed `pin-value`.
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
/// (EC P-384), "EdDSA" or "Ed25519" (Ed25519), "RS256" or "PS256" (RSA, 2048 bits, which
/// signs both and prefers the one named; generating takes a fraction of a second). Returns
/// 1 on success, 0 on failure (`DPOPKIT_RESULT_INVALID_ARGUMENT` for another name).
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

/// Creates a new key pair inside the PKCS#11 token that `uri` names and loads it into the
/// object: non-extractable (`CKA_EXTRACTABLE` false), sensitive, stored in the token
/// (`CKA_TOKEN`), labelled with the URI's `object=` (required) and `id=` (else 16 random
/// bytes). `pin` is the user PIN (or NULL with `pin-value`/`pin-source` in the URI); `alg` is
/// "ES256" (P-256, also when NULL or "") or "ES384" (P-384, where the token supports it), or
/// "RS256" / "PS256" (RSA, 2048 bits).
/// Refuses (`INVALID_ARGUMENT`) when the token already holds a key with that label or id.
/// Afterwards the object behaves exactly as after `dpopkit_key_load_any_format(key, uri, pin)`:
/// register `dpopkit_key_get_public_jwk` / the thumbprint with the server. Returns 1 on
/// success, 0 on failure.
///
/// # Safety
/// `uri`, `pin` and `alg` are NULL or NUL-terminated UTF-8 strings, borrowed for the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn dpopkit_key_generate_pkcs11(key: i64, uri: *const c_char, pin: *const c_char, alg: *const c_char) -> c_int {
    run("dpopkit_key_generate_pkcs11", key, |_| {
        registry::key(key)?;
        let uri = unsafe { arg(uri, "uri") }?;
        let pin = unsafe { opt_arg(pin, "pin") }?;
        let alg = unsafe { opt_arg(alg, "alg") }?;
        store(key, EcKey::generate_in_token(uri, pin, alg.unwrap_or("ES256"))?)
    })
}

/// The JWS algorithm the key signs DPoP proofs with when the server does not say which it
/// takes: "ES256", "ES384", "EdDSA", "RS256" or "PS256". An Ed25519 key signs as "Ed25519"
/// for a server that lists that name, an RSA key RS256 or PS256, whichever the server
/// lists (`dpop_signing_alg_values_supported`, or the `algs` of its DPoP challenge).
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_alg(key: i64) -> *mut c_char {
    run("dpopkit_key_get_alg", key, |_| out(key_of(key)?.alg()))
}

/// The private key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
/// This is secret material: protect and free it promptly. Fails with
/// `DPOPKIT_RESULT_KEY_UNSUPPORTED` for a key in a PKCS#11 token (not exportable).
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_pkcs8_pem(key: i64) -> *mut c_char {
    run("dpopkit_key_get_pkcs8_pem", key, |_| out(&key_of(key)?.to_pkcs8_pem()?))
}

/// The private key as a JWK (`kty`, `crv`, `x`, `y`, `d`). Secret material. Fails with
/// `DPOPKIT_RESULT_KEY_UNSUPPORTED` for a key in a PKCS#11 token (not exportable).
///
/// Ownership: caller frees the result with `dpopkit_string_free`. NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn dpopkit_key_get_jwk(key: i64) -> *mut c_char {
    run("dpopkit_key_get_jwk", key, |_| out(&key_of(key)?.to_private_jwk()?))
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
