//! Servers' clocks, learned from the `Date` header of their responses. When a server refuses
//! a proof as `invalid_dpop_proof` and its clock differs from ours by more than
//! [`TOLERANCE`] (and no more than the caller's cap, `max_clock_skew`, default
//! [`DEFAULT_MAX_SKEW`]), the client retries once with `iat` on the server's clock, and from
//! then on dates its proofs for that server's origin that way — never by more than the cap
//! of the call that signs them, so a server whose `Date` jumps cannot move proofs further.
//! A clock is kept per origin: one server's `Date` never moves another origin's proofs.

use std::sync::LazyLock;
use std::time::SystemTime;

use crate::core::state::{BoundedLru, never_in_use};

/// Differences up to this many seconds are normal (Date has a 1 s resolution, requests
/// take time) and never corrected.
pub const TOLERANCE: i64 = 5;

/// The largest offset corrected unless the AuthToken says otherwise (`max_clock_skew`).
pub const DEFAULT_MAX_SKEW: i64 = 3600;

/// The largest `max_clock_skew` accepted (100 years): keeps the arithmetic far from overflow.
pub const LIMIT_MAX_SKEW: i64 = 100 * 366 * 86400;

#[derive(Clone, Copy, Default)]
struct Clock {
    /// Server time minus local time, in seconds, from the latest `Date` header.
    offset: i64,
    /// Proofs for this origin use the server's time (after a refusal showed it matters).
    correct: bool,
}

static CLOCKS: LazyLock<BoundedLru<String, Clock>> = LazyLock::new(|| {
    BoundedLru::new(crate::core::state::limits::CLOCK_ENTRIES, crate::core::state::limits::CLOCK_BYTES, |k, _| k.len() + 32, never_in_use)
});

fn unix(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Records the offset seen in a response's `Date` header (ignored when absent or invalid).
pub fn observe(origin: &str, date: Option<&str>) {
    let Some(server) = date.and_then(|d| httpdate::parse_http_date(d.trim()).ok()) else { return };
    let offset = unix(server) - unix(SystemTime::now());
    if CLOCKS.with(origin, |c| c.offset == offset) == Some(true) {
        return; // the usual case: nothing changed, no write lock on the hot path
    }
    CLOCKS.update(origin.to_string(), |c| c.offset = offset);
}

/// The last offset seen for `origin`, when it is larger than the tolerance.
pub fn significant_offset(origin: &str) -> Option<i64> {
    CLOCKS.with(origin, |c| c.offset).filter(|o| o.abs() > TOLERANCE)
}

/// From now on, date proofs for `origin` on its clock (within each caller's cap).
pub fn enable_correction(origin: &str) {
    CLOCKS.update(origin.to_string(), |c| c.correct = true);
}

/// `iat` for a proof (or assertion) sent to `origin`: local time, or the server's when
/// correction is on for it and its offset is within `max_skew` seconds.
pub fn iat_for(origin: &str, max_skew: i64) -> i64 {
    let now = unix(SystemTime::now());
    match CLOCKS.with(origin, |c| *c) {
        Some(c) if c.correct && c.offset.abs() > TOLERANCE && c.offset.abs() <= max_skew => now + c.offset,
        _ => now,
    }
}

/// Forgets everything (with the token cache).
pub fn clear() {
    CLOCKS.clear();
}

/// "N s ahead of" / "N s behind" this machine, for texts (with days when that is long).
pub fn describe(offset: i64) -> String {
    let n = offset.unsigned_abs();
    let days = if n >= 2 * 86400 { format!(" (about {} days)", (n + 43200) / 86400) } else { String::new() };
    if offset >= 0 { format!("{n} s{days} ahead of") } else { format!("{n} s{days} behind") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_learned_and_applied_only_when_enabled_and_within_the_cap() {
        let ahead = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(60));
        observe("http://skew.test", Some(&ahead));
        let o = significant_offset("http://skew.test").unwrap();
        assert!((59..=61).contains(&o), "{o}");
        let now = unix(SystemTime::now());
        assert!((iat_for("http://skew.test", DEFAULT_MAX_SKEW) - now).abs() <= 1, "not corrected before enabled");
        enable_correction("http://skew.test");
        assert!((iat_for("http://skew.test", DEFAULT_MAX_SKEW) - now - 60).abs() <= 2);
        assert!((iat_for("http://skew.test", 30) - now).abs() <= 1, "60 s is beyond a 30 s cap");
        assert!((iat_for("http://other.test", DEFAULT_MAX_SKEW) - now).abs() <= 1, "per origin");
        // A later Date far ahead does not drag the proofs along.
        let far = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(86400 * 3650));
        observe("http://skew.test", Some(&far));
        assert!((iat_for("http://skew.test", DEFAULT_MAX_SKEW) - now).abs() <= 1);
        observe("http://ok.test", Some(&httpdate::fmt_http_date(SystemTime::now())));
        assert_eq!(significant_offset("http://ok.test"), None);
        observe("http://ok.test", Some("garbage"));
        assert_eq!(describe(-3), "3 s behind");
        assert_eq!(describe(315_360_000), "315360000 s (about 3650 days) ahead of");
    }
}
