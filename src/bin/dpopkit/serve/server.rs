//! The HTTP side of the gateway: hyper 1 (HTTP/1.1) on tokio, TLS by tokio-rustls.
//!
//! One thread per connection: the accept loop runs on a small runtime and hands each
//! connection (at most `max_connections`) to a thread of its own with a current-thread
//! runtime, where hyper serves it and the upstream call runs the sync core inline. An HTTP/1
//! connection carries one request at a time, so blocking its thread stalls nothing else,
//! and a request crosses no thread: handing each call to a blocking pool and back cost two
//! thread wake-ups per request (about 100 µs of latency on a loaded 2-core machine; see
//! BENCHMARKS.md, "Gateway"). Upstream calls are bounded by a semaphore; a request that
//! finds the queue full gets 503 at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;

use dpopkit::core::redact;
use dpopkit::core::{ErrorKind, HttpClient};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::config::ServerConfig;
use super::metrics::Metrics;
use super::stall::WriteStall;
use super::target::{caller_location, check_target, route_for, upstream_url};

/// The header that carries the caller credential.
pub const CALLER_HEADER: &str = "x-dpopkit-gateway-key";

pub struct Route {
    pub prefix: String,
    pub upstream: String,
    pub methods: Vec<String>,
    /// SHA-256 of the caller secret: compared in constant time, whatever the lengths.
    /// `None` (with no secret): the route takes a client certificate instead.
    pub caller_digest: Option<[u8; 32]>,
    pub caller_secret: Option<Zeroizing<String>>,
    pub client: HttpClient,
    pub timeout: Duration,
}

pub struct Gateway {
    pub server: ServerConfig,
    pub routes: Vec<Route>,
    metrics: Metrics,
    upstream_slots: Arc<Semaphore>,
    admitted: AtomicUsize,
    /// Per route, its caller secret as a secret set, made once: each call's set takes it
    /// with the forms (base64, dumps at every alignment, hex, UTF-16) already made, instead
    /// of making them again per request.
    caller_masks: Vec<redact::Secrets>,
}

impl Gateway {
    pub fn new(server: ServerConfig, routes: Vec<Route>) -> Gateway {
        let slots = Arc::new(Semaphore::new(server.limits.max_concurrency));
        let caller_masks = routes
            .iter()
            .map(|r| {
                let mut set = redact::Secrets::new();
                if let Some(secret) = &r.caller_secret {
                    set.add_token(secret);
                }
                set
            })
            .collect();
        Gateway { server, routes, metrics: Metrics::default(), upstream_slots: slots, admitted: AtomicUsize::new(0), caller_masks }
    }
}

pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Headers that belong to one connection (RFC 9110 §7.6.1), dropped both ways, with the
/// ones `Connection` names.
fn hop_by_hop(name: &str) -> bool {
    matches!(name, "connection" | "keep-alive" | "te" | "trailer" | "transfer-encoding" | "upgrade" | "proxy-connection")
        || name.starts_with("proxy-")
}

/// Request headers never forwarded: the caller's credentials (the gateway sends its own),
/// the gateway's, what the transport sets, the ones with which upstream frameworks take
/// another path or method than the one routed and checked (IIS and Symfony read
/// `X-Original-URL` / `X-Rewrite-URL`, many read a method override), and the forwarding
/// headers a caller could forge (the route's origin is fixed; `X-Forwarded-Prefix` moves
/// Spring's base path), and `Accept-Encoding`: the gateway decodes no `Content-Encoding`,
/// so a compressed answer could not be checked for echoed secrets and would be withheld.
fn never_forwarded(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "dpop"
            | "cookie"
            | CALLER_HEADER
            | "host"
            | "content-length"
            | "content-type"
            | "expect"
            | "accept-encoding"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-override-url"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "forwarded"
            | "x-real-ip"
    ) || name.starts_with("x-forwarded-")
}

/// Response headers not passed back: connection-level ones, cookies meant for the gateway's
/// own session with the upstream, and the nonce the gateway uses itself.
fn not_returned(name: &str) -> bool {
    matches!(name, "content-length" | "set-cookie" | "set-cookie2" | "dpop-nonce")
}

fn named_by_connection(values: impl Iterator<Item = String>) -> Vec<String> {
    values.flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>()).filter(|t| !t.is_empty()).collect()
}

type Resp = Response<Full<Bytes>>;

fn json_error(status: StatusCode, error: &str, description: &str) -> Resp {
    let body = serde_json::json!({ "error": error, "error_description": description }).to_string();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("x-dpopkit-gateway-error", HeaderValue::from_str(error).unwrap_or(HeaderValue::from_static("error")));
    r
}

/// Holds a place in the bounded queue (running or waiting) until dropped.
struct Admission(&'static Gateway);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Outcome {
    resp: Resp,
    route: String,
    upstream: Option<Duration>,
}

async fn dispatch(gw: &'static Gateway, client_cert: bool, req: Request<Incoming>) -> Outcome {
    let plain = |resp: Resp| Outcome { resp, route: String::new(), upstream: None };
    let uri = req.uri().clone();
    let path = uri.path();
    let absolute = uri.scheme().is_some() || uri.authority().is_some();
    if let Err(why) = check_target(req.method().as_str(), absolute, path, uri.query()) {
        return plain(json_error(StatusCode::BAD_REQUEST, "invalid_request_target", &why));
    }
    if path == gw.server.health_path && matches!(req.method().as_str(), "GET" | "HEAD") {
        let mut r = Response::new(Full::new(Bytes::from_static(b"ok\n")));
        r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
        return plain(r);
    }
    if path == gw.server.metrics_path && req.method() == hyper::Method::GET {
        let mut r = Response::new(Full::new(Bytes::from(gw.metrics.render())));
        r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
        return plain(r);
    }
    let prefixes: Vec<&str> = gw.routes.iter().map(|r| r.prefix.as_str()).collect();
    let Some((index, rest)) = route_for(&prefixes, path) else {
        return plain(json_error(StatusCode::NOT_FOUND, "no_route", "no route of this gateway matches the path"));
    };
    let route = &gw.routes[index];
    // One deadline for the whole request, from its head: the body, the wait for an
    // upstream slot and the upstream call all end by it (a queued request gets what is
    // left, not a fresh timeout), so SIGTERM's bound (the longest timeout + 5 s) holds too.
    let deadline = tokio::time::Instant::now() + route.timeout;
    let label = route.prefix.clone();
    let fail = |resp: Resp| Outcome { resp, route: label.clone(), upstream: None };

    // The caller credential: exactly one header, equal to the route's secret.
    let given: Vec<&HeaderValue> = req.headers().get_all(CALLER_HEADER).iter().collect();
    let ok = match (&route.caller_digest, given.as_slice()) {
        (Some(digest), [one]) => bool::from(Sha256::digest(one.as_bytes()).as_slice().ct_eq(digest)),
        // A client certificate, verified against client_ca_file in the handshake.
        (None, _) => client_cert,
        _ => false,
    };
    if !ok {
        gw.metrics.rejected_caller.fetch_add(1, Ordering::Relaxed);
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            "invalid_caller",
            if route.caller_digest.is_some() {
                "send the gateway's caller credential in the X-DpopKit-Gateway-Key header"
            } else {
                "this route needs a client certificate issued by the gateway's client_ca_file"
            },
        );
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("X-DpopKit-Gateway-Key"));
        return fail(r);
    }
    let method = req.method().as_str().to_string();
    if !route.methods.contains(&method) {
        let mut r =
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &format!("this route accepts {}", route.methods.join(", ")));
        if let Ok(v) = HeaderValue::from_str(&route.methods.join(", ")) {
            r.headers_mut().insert("allow", v);
        }
        return fail(r);
    }

    // The headers that go upstream: end-to-end ones only, same names joined.
    let connection_named =
        named_by_connection(req.headers().get_all("connection").iter().filter_map(|v| v.to_str().ok()).map(str::to_string));
    let mut forward: Vec<(String, String)> = Vec::new();
    for (name, value) in req.headers() {
        let n = name.as_str();
        if hop_by_hop(n) || never_forwarded(n) || connection_named.iter().any(|c| c == n) {
            continue;
        }
        let Ok(v) = value.to_str() else {
            return fail(json_error(StatusCode::BAD_REQUEST, "invalid_header", &format!("the value of header '{n}' is not visible ASCII")));
        };
        match forward.iter_mut().find(|(k, _)| k == n) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            None => forward.push((n.to_string(), v.to_string())),
        }
    }
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let query = uri.query().map(str::to_string);
    let url = upstream_url(&route.upstream, rest, query.as_deref());

    // A place in the bounded queue, taken before the body is read: past it, 503 at once
    // (not once a body of up to max_request_body has arrived), and only the requests in
    // the queue hold their bodies in memory, not every open connection.
    let bound = gw.server.limits.max_concurrency + gw.server.limits.max_queue;
    if gw.admitted.fetch_add(1, Ordering::SeqCst) >= bound {
        gw.admitted.fetch_sub(1, Ordering::SeqCst);
        gw.metrics.rejected_busy.fetch_add(1, Ordering::Relaxed);
        let mut r = json_error(StatusCode::SERVICE_UNAVAILABLE, "busy", "the gateway's queue is full; retry later");
        r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        return fail(r);
    }
    gw.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let _admission = Admission(gw);

    // The body, bounded in size and time.
    let limit = gw.server.limits.max_request_body;
    let body = match tokio::time::timeout_at(deadline, Limited::new(req.into_body(), limit).collect()).await {
        Err(_) => return fail(json_error(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body did not arrive in time")),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return fail(json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the request body is larger than the {limit} bytes accepted (max_request_body)"),
            ));
        }
        Ok(Err(_)) => return fail(json_error(StatusCode::BAD_REQUEST, "invalid_body", "the request body could not be read")),
        Ok(Ok(b)) => b.to_bytes(),
    };

    // Then one of the upstream slots.
    let permit = match tokio::time::timeout_at(deadline, gw.upstream_slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            let mut r =
                json_error(StatusCode::SERVICE_UNAVAILABLE, "busy", "no upstream slot became free within the route's timeout; retry later");
            r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
            return fail(r);
        }
    };

    // The upstream call: the sync core, inline on this connection's own thread. It ends
    // by the request's deadline (the core's deadline covers token, nonce retries and the
    // request).
    let (result, took) = {
        let _permit = permit;
        let route = &gw.routes[index];
        // The call's secret set gets the caller credential too: an upstream echoing it is
        // masked in the body and headers handed back, like the token and the proof — in
        // the same forms (base64, and inside a base64, hex or UTF-16 dump of the request).
        let _scope = redact::call_scope();
        let masks = &gw.caller_masks[index];
        if !masks.is_empty() {
            redact::remember(|s| s.extend(masks));
        }
        let headers: Vec<(&str, &str)> = forward.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let began = Instant::now();
        let body = if body.is_empty() && content_type.is_none() { None } else { Some(&body[..]) };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let result = route.client.send_with_headers(&method, &url, &headers, content_type.as_deref(), body, Some(left));
        let took = began.elapsed();
        let result = result.map_err(|e| {
            let mut message = redact::scrub(&e.message, &[route.caller_secret.as_deref().map_or("", String::as_str)]);
            if e.kind == ErrorKind::Timeout && left < route.timeout {
                // The core's text names the budget it was given; say where the rest went.
                let waited = route.timeout.saturating_sub(left).as_millis();
                message = format!(
                    "the request's deadline (the route's timeout_ms, {} ms) passed; {waited} ms of it went to the request body and the queue for an upstream slot: {message}",
                    route.timeout.as_millis()
                );
            }
            (e.kind, message)
        });
        (result, took)
    };
    gw.metrics.upstream_latency(&label, took);
    let resp = match result {
        // The caller's Upgrade is never forwarded, so a 101 answers nothing that was asked,
        // and a 1xx is never a final response (RFC 9110 §15.2): passed back, a 101 told the
        // caller its connection had switched protocols (and hyper closed it).
        Ok(up) if up.status < 200 => json_error(
            StatusCode::BAD_GATEWAY,
            "upstream_protocol",
            &format!("the upstream answered {} (an informational status) as its final response", up.status),
        ),
        Ok(up) => {
            let mut r = Response::new(Full::new(Bytes::from(up.body)));
            *r.status_mut() = StatusCode::from_u16(up.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let connection_named =
                named_by_connection(up.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("connection")).map(|(_, v)| v.clone()));
            for (k, v) in &up.headers {
                let n = k.to_ascii_lowercase();
                if hop_by_hop(&n) || not_returned(&n) || connection_named.contains(&n) {
                    continue;
                }
                let v = match n.as_str() {
                    "location" => caller_location(&route.upstream, &route.prefix, v).unwrap_or_else(|| v.clone()),
                    _ => v.clone(),
                };
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&v)) {
                    r.headers_mut().append(name, value);
                }
            }
            r
        }
        Err((kind, message)) => {
            let (status, code) = match kind {
                ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_request"),
                ErrorKind::Transport | ErrorKind::Tls | ErrorKind::ResponseTooLarge => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
                _ => (StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
            };
            json_error(status, code, &message)
        }
    };
    Outcome { resp, route: label, upstream: Some(took) }
}

/// Runs the gateway until SIGTERM or Ctrl-C; then stops accepting, lets the requests in
/// flight finish (within their routes' timeouts) and returns.
pub fn run(gw: Gateway, tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>, on_listen: impl FnOnce(SocketAddr)) -> Result<(), String> {
    #[cfg(unix)]
    let gw = {
        let mut gw = gw;
        fit_file_descriptors(&mut gw.server.limits);
        gw
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the gateway's runtime: {e}"))?;
    let longest = gw.routes.iter().map(|r| r.timeout).max().unwrap_or(Duration::from_secs(60));
    let gw: &'static Gateway = Box::leak(Box::new(gw));
    let result = rt.block_on(serve(gw, tls, on_listen, longest));
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// File descriptors one connection holds: its socket and its thread's runtime (an epoll,
/// its wakers and the signal driver's socket); 5, counted in /proc/PID/fd.
#[cfg(unix)]
const FDS_PER_CONNECTION: u64 = 5;

/// Makes room for `max_connections`: each connection holds [`FDS_PER_CONNECTION`], and the
/// rest of the process (the listener, logs, the token cache, one upstream socket per slot,
/// the transports' idle pools) needs its own. The soft RLIMIT_NOFILE is raised as far as
/// needed (up to the hard one); when it cannot go that far, max_connections is lowered to
/// what fits, and said: otherwise idle connections (any local process can open them) took
/// every descriptor and the upstream calls of accepted callers failed with 502.
#[cfg(unix)]
fn fit_file_descriptors(limits: &mut super::config::Limits) {
    use dpopkit::core::state::limits::{IDLE_CONNECTIONS, SHARED_TRANSPORTS};
    let reserve = 64 + limits.max_concurrency as u64 + (SHARED_TRANSPORTS * IDLE_CONNECTIONS) as u64;
    let need = limits.max_connections as u64 * FDS_PER_CONNECTION + reserve;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit / setrlimit write and read only `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 || lim.rlim_cur >= need {
        return;
    }
    let raised = libc::rlimit { rlim_cur: need.min(lim.rlim_max), rlim_max: lim.rlim_max };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        lim.rlim_cur = raised.rlim_cur;
    }
    if lim.rlim_cur >= need {
        return;
    }
    let fit = (lim.rlim_cur.saturating_sub(reserve) / FDS_PER_CONNECTION).max(1) as usize;
    eprintln!(
        "dpopkit serve: max_connections lowered from {} to {fit}: this process may open {} files (ulimit -n); {} connections need about {need} (5 each, and {reserve} for the rest); raise the limit (systemd: LimitNOFILE={need}) or set max_connections",
        limits.max_connections, lim.rlim_cur, limits.max_connections
    );
    limits.max_connections = fit;
}

async fn serve(
    gw: &'static Gateway,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    on_listen: impl FnOnce(SocketAddr),
    longest: Duration,
) -> Result<(), String> {
    let listen = gw.server.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    on_listen(local);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = Arc::new(Semaphore::new(gw.server.limits.max_connections));
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let limits = gw.server.limits.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = connections.clone().try_acquire_owned() else {
            drop(stream); // over max_connections
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Off this runtime's reactor, onto the connection thread's own.
        let Ok(stream) = stream.into_std() else { continue };
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let limits = limits.clone();
        let connection = async move {
            let _slot = slot;
            let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { return };
            // A caller that reads nothing of its response for header_timeout is cut.
            let stream = WriteStall::new(stream, limits.header_timeout);
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .max_headers(limits.max_headers)
                .keep_alive(true);
            match acceptor {
                Some(acceptor) => {
                    let Ok(Ok(tls_stream)) = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await else { return };
                    // Verified against client_ca_file in the handshake when one was sent.
                    let client_cert = tls_stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    let svc = service_fn(move |req| handle(gw, peer, client_cert, req));
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(tls_stream), svc)).await;
                }
                None => {
                    let svc = service_fn(move |req| handle(gw, peer, false, req));
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), svc)).await;
                }
            }
        };
        let spawned = std::thread::Builder::new().name("dpopkit-gateway-conn".into()).spawn(move || {
            // A runtime that cannot be made (no file descriptor left): the connection is
            // dropped, like one over max_connections; the slot goes back with it.
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(connection);
            }
        });
        if spawned.is_err() {
            // No thread left: the closure (with the stream and its slot) was dropped.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(listener);
    eprintln!("dpopkit serve: stopping: no new connections; waiting for the requests in flight");
    let bound = longest + Duration::from_secs(5);
    tokio::select! {
        _ = graceful.shutdown() => eprintln!("dpopkit serve: stopped"),
        _ = tokio::time::sleep(bound) => eprintln!("dpopkit serve: stopped; requests still open after {}s were cut", bound.as_secs()),
    }
    Ok(())
}

/// One request: dispatched, counted, logged (without secrets: no header, no query).
async fn handle(gw: &'static Gateway, peer: SocketAddr, client_cert: bool, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let path: String = req.uri().path().chars().take(512).flat_map(|c| c.escape_default()).collect();
    let out = dispatch(gw, client_cert, req).await;
    let status = out.resp.status().as_u16();
    gw.metrics.request(&out.route, status);
    if gw.server.access_log {
        let up = out.upstream.map_or("-".to_string(), |d| format!("{}", d.as_millis()));
        eprintln!(
            "{} {} \"{} {}\" {} route={} upstream_ms={} total_ms={}",
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            peer.ip(),
            method.escape_default(),
            path,
            status,
            if out.route.is_empty() { "-" } else { &out.route },
            up,
            start.elapsed().as_millis()
        );
    }
    Ok(out.resp)
}

/// Asks the running gateway to stop as SIGTERM does (the Windows service's stop control).
/// Asked before the gateway waits for it: it stops as soon as it does.
#[cfg_attr(not(windows), allow(dead_code))]
pub fn request_shutdown() {
    shutdown_request().notify_one();
}

fn shutdown_request() -> &'static tokio::sync::Notify {
    static REQUEST: std::sync::OnceLock<tokio::sync::Notify> = std::sync::OnceLock::new();
    REQUEST.get_or_init(tokio::sync::Notify::new)
}

async fn shutdown_signal() {
    tokio::select! {
        _ = shutdown_request().notified() => {}
        _ = os_signal() => {}
    }
}

async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
