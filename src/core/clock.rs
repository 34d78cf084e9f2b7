//! Servers' clocks, learned from the `Date` header of their responses. When a server refuses
//! a proof as `invalid_dpop_proof` and its clock differs from ours by more than
//! [`TOLERANCE`], the client retries once with `iat` on the server's clock, and from then on
//! dates its proofs for that server that way.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::SystemTime;

/// Differences up to this many seconds are normal (Date has a 1 s resolution, requests
/// take time) and never corrected.
pub const TOLERANCE: i64 = 5;

#[derive(Clone, Copy, Default)]
struct Clock {
    /// Server time minus local time, in seconds, from the latest `Date` header.
    offset: i64,
    /// Proofs for this origin use the server's time (after a refusal showed it matters).
    correct: bool,
}

static CLOCKS: LazyLock<RwLock<HashMap<String, Clock>>> = LazyLock::new(Default::default);

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Records the offset seen in a response's `Date` header (ignored when absent or invalid).
pub fn observe(origin: &str, date: Option<&str>) {
    let Some(server) = date.and_then(|d| httpdate::parse_http_date(d.trim()).ok()) else { return };
    let offset = unix(server) - unix(SystemTime::now());
    if CLOCKS.read().unwrap_or_else(|e| e.into_inner()).get(origin).is_some_and(|c| c.offset == offset) {
        return; // the usual case: nothing changed, no write lock on the hot path
    }
    let mut clocks = CLOCKS.write().unwrap_or_else(|e| e.into_inner());
    if clocks.len() > 4096 && !clocks.contains_key(origin) {
        clocks.clear();
    }
    clocks.entry(origin.to_string()).or_default().offset = offset;
}

/// The last offset seen for `origin`, when it is larger than the tolerance.
pub fn significant_offset(origin: &str) -> Option<i64> {
    let clocks = CLOCKS.read().unwrap_or_else(|e| e.into_inner());
    clocks.get(origin).map(|c| c.offset).filter(|o| o.abs() > TOLERANCE)
}

/// From now on, date proofs for `origin` on its clock.
pub fn enable_correction(origin: &str) {
    CLOCKS.write().unwrap_or_else(|e| e.into_inner()).entry(origin.to_string()).or_default().correct = true;
}

/// `iat` for a proof (or assertion) sent to `origin`: local time, or the server's when
/// correction is on for it.
pub fn iat_for(origin: &str) -> i64 {
    let now = unix(SystemTime::now());
    let clocks = CLOCKS.read().unwrap_or_else(|e| e.into_inner());
    match clocks.get(origin) {
        Some(c) if c.correct && c.offset.abs() > TOLERANCE => now + c.offset,
        _ => now,
    }
}

/// Forgets everything (with the token cache).
pub fn clear() {
    CLOCKS.write().unwrap_or_else(|e| e.into_inner()).clear();
}

/// "N s ahead of" / "N s behind" this machine, for texts.
pub fn describe(offset: i64) -> String {
    if offset >= 0 { format!("{offset} s ahead of") } else { format!("{} s behind", -offset) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_learned_and_applied_only_when_enabled() {
        let ahead = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(60));
        observe("http://skew.test", Some(&ahead));
        let o = significant_offset("http://skew.test").unwrap();
        assert!((59..=61).contains(&o), "{o}");
        let now = unix(SystemTime::now());
        assert!((iat_for("http://skew.test") - now).abs() <= 1, "not corrected before enabled");
        enable_correction("http://skew.test");
        assert!((iat_for("http://skew.test") - now - 60).abs() <= 2);
        observe("http://ok.test", Some(&httpdate::fmt_http_date(SystemTime::now())));
        assert_eq!(significant_offset("http://ok.test"), None);
        observe("http://ok.test", Some("garbage"));
        assert_eq!(describe(-3), "3 s behind");
    }
}
