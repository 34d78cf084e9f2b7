//! The gateway's metrics, in the Prometheus text format (version 0.0.4). Labels are route
//! prefixes (from the configuration) and status codes: bounded sets, and never a secret,
//! a path or a query.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the upstream latency histogram, in seconds.
const BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    /// (route or "" when no route matched, status) -> count.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    upstream: Mutex<BTreeMap<String, Histogram>>,
    pub in_flight: AtomicUsize,
    pub rejected_busy: AtomicU64,
    pub rejected_caller: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn request(&self, route: &str, status: u16) {
        *lock(&self.requests).entry((route.to_string(), status)).or_default() += 1;
    }

    pub fn upstream_latency(&self, route: &str, d: Duration) {
        let mut all = lock(&self.upstream);
        let h = all.entry(route.to_string()).or_default();
        if h.counts.is_empty() {
            h.counts = vec![0; BUCKETS.len()];
        }
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.count += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP dpopkit_gateway_requests_total Requests answered, by route prefix and HTTP status.");
        let _ = writeln!(out, "# TYPE dpopkit_gateway_requests_total counter");
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "dpopkit_gateway_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", label(route));
        }
        let _ = writeln!(
            out,
            "# HELP dpopkit_gateway_upstream_duration_seconds Time of the upstream call (token, nonce retries and the request)."
        );
        let _ = writeln!(out, "# TYPE dpopkit_gateway_upstream_duration_seconds histogram");
        for (route, h) in lock(&self.upstream).iter() {
            let r = label(route);
            for (b, c) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(out, "dpopkit_gateway_upstream_duration_seconds_bucket{{route=\"{r}\",le=\"{b}\"}} {c}");
            }
            let _ = writeln!(out, "dpopkit_gateway_upstream_duration_seconds_bucket{{route=\"{r}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "dpopkit_gateway_upstream_duration_seconds_sum{{route=\"{r}\"}} {}", h.sum);
            let _ = writeln!(out, "dpopkit_gateway_upstream_duration_seconds_count{{route=\"{r}\"}} {}", h.count);
        }
        let c = dpopkit::core::counters::snapshot();
        for (name, help, kind, v) in [
            (
                "dpopkit_gateway_in_flight",
                "Requests in the queue now: reading their body, waiting for an upstream slot or calling the upstream.",
                "gauge",
                self.in_flight.load(Ordering::Relaxed) as u64,
            ),
            (
                "dpopkit_gateway_rejected_busy_total",
                "Requests refused with 503 because the queue was full.",
                "counter",
                self.rejected_busy.load(Ordering::Relaxed),
            ),
            (
                "dpopkit_gateway_rejected_caller_total",
                "Requests refused with 401 (no or wrong caller credential).",
                "counter",
                self.rejected_caller.load(Ordering::Relaxed),
            ),
            ("dpopkit_token_requests_total", "Requests sent to token endpoints (retries included).", "counter", c.token_requests),
            (
                "dpopkit_nonce_retries_total",
                "Retries after a use_dpop_nonce challenge (token endpoint or resource server).",
                "counter",
                c.nonce_retries,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        out
    }
}

/// A label value: `\`, `"` and newlines escaped (prefixes are plain already).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
