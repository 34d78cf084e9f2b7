//! The zeroize helpers: overwrite secrets in place before their memory is freed. A leaf.

use zeroize::Zeroize;

/// Overwrites every string in a parsed JSON value (used on documents that held secrets:
/// a JWK's `d`, an AuthToken's `client_secret`, a token response).
pub fn wipe_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe_json),
        serde_json::Value::Object(m) => m.values_mut().for_each(wipe_json),
        _ => {}
    }
}
/// Overwrites every header name and value with zeros (their buffers stay allocated, empty).
pub fn wipe_headers(headers: &mut [(String, String)]) {
    for (k, v) in headers.iter_mut() {
        zeroize::Zeroize::zeroize(k);
        zeroize::Zeroize::zeroize(v);
    }
}
