//! The deadline of one call: every step of it (connect, each read, a PKCS#11 signature)
//! waits only until then.

use super::*;

/// The end of one call. `request_timeout` (the C API's `request_ms`) bounds the whole call:
/// every redirect hop, every nonce / invalid_token / clock-skew retry, the token request and
/// the metadata request. Each request gets what is left of it, never a fresh allowance.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub(super) at: Instant,
    pub(super) budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        let now = Instant::now();
        // An absurd budget (far beyond any real call) saturates instead of overflowing.
        let at = now.checked_add(budget).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86400));
        Deadline { at, budget }
    }

    pub fn at(&self) -> Instant {
        self.at
    }

    /// The whole call's allowance (request_ms).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// What is left; zero once the deadline has passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The `Timeout` error of a call that ran out of time; `doing` says where it was
    /// ("while …", "before …", ": request to … timed out …").
    pub fn exceeded(&self, doing: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "the whole call exceeded request_ms {} ms (redirects, retries and token requests included){doing}",
                self.budget.as_millis()
            ),
        )
    }

    /// What is left for the next request, or the `Timeout` error when nothing is.
    pub fn check(&self, doing: impl FnOnce() -> String) -> Result<Duration> {
        match self.remaining() {
            left if left.is_zero() => Err(self.exceeded(&doing())),
            left => Ok(left),
        }
    }
}
