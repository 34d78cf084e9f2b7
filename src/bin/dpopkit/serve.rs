//! `dpopkit serve`: a local gateway that takes plain HTTPS requests (from SQL Server's
//! `sp_invoke_external_rest_endpoint`, PowerShell, curl, ...) and forwards them to fixed
//! upstream APIs with a DPoP-bound token and a fresh proof, through the same core as
//! `dpopkit get`. Routes come from a TOML file (`--config`) or one from the command line
//! (`--route PREFIX=URL` with the request options of `get`).

#[path = "serve/config.rs"]
mod config;
#[path = "serve/metrics.rs"]
mod metrics;
#[path = "serve/secret_file.rs"]
mod secret_file;
#[path = "serve/server.rs"]
mod server;
#[cfg(windows)]
#[path = "serve/service.rs"]
mod service;
#[path = "serve/stall.rs"]
mod stall;
#[path = "serve/target.rs"]
mod target;
#[path = "serve/tls.rs"]
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dpopkit::core::http::{ProxyChoice, load_ca_file};
use dpopkit::core::{EcKey, HttpClient};

use super::Arity::{Flag, Many, Once};
use super::{Failure, Outcome, Parsed, Spec, other, usage};
use config::{Limits, RouteSpec, ServerConfig, TlsSource};

/// The options of `serve`, besides the client options of the `--route` form (`CLIENT_OPTS`).
pub const SERVE_OPTS: Spec = &[
    ("--config", Once),
    ("--listen", Once),
    ("--route", Once),
    ("--methods", Once),
    ("--caller-secret-env", Once),
    ("--caller-auth", Once),
    ("--client-ca-file", Once),
    ("--plain-http", Flag),
    ("--cert-dir", Once),
    ("--cert-name", Many),
    ("--tls-cert", Once),
    ("--tls-key", Once),
    ("--print-cert", Flag),
    ("--max-concurrency", Once),
    ("--max-queue", Once),
    ("--max-request-body", Once),
    ("--no-access-log", Flag),
    ("--windows-service", Flag),
    ("--service-log", Once),
];

/// Options that belong to the --route form only (a --config file says them per route).
const ROUTE_ONLY: &[&str] = &[
    "--route",
    "--methods",
    "--caller-secret-env",
    "--caller-auth",
    "--key",
    "--key-password",
    "--client-id",
    "--client-secret",
    "--token-endpoint",
    "--issuer",
    "--scope",
    "--audience",
    "--resource",
    "--auth-method",
    "--assertion-key",
    "--assertion-key-password",
    "--ca-file",
    "--proxy",
    "--allow-insecure-http",
    "--session-log",
    "--timeout-ms",
    "--token-cache",
];

pub fn cmd_serve(p: &Parsed) -> Outcome {
    let outcome = serve(p);
    // A service whose configuration is refused still tells the SCM it stopped, with an
    // error (at once, instead of the SCM's 30 s start timeout); the text is in its log.
    #[cfg(windows)]
    if p.flag("--windows-service") && outcome.is_err() && !service::started() {
        // (The reason is printed by main, after this returns: the job adds nothing.)
        let _ = service::run(Box::new(|| Err(String::new())));
    }
    outcome
}

fn serve(p: &Parsed) -> Outcome {
    if let Some(extra) = p.positional.first() {
        return usage(format!("unexpected argument '{extra}' (serve takes --config FILE or --route PREFIX=URL ...)"));
    }
    if cfg!(not(windows)) && (p.flag("--windows-service") || p.value("--service-log").is_some()) {
        return usage("--windows-service and --service-log are for Windows; on Linux run the gateway as a systemd unit (README, \"Running it as a service\")".to_string());
    }
    if p.value("--service-log").is_some() && !p.flag("--windows-service") {
        return usage("--service-log goes with --windows-service (in a console the log is stderr)".to_string());
    }
    // First: a service has no console, so even a refused configuration is told there.
    #[cfg(windows)]
    if let Some(path) = p.value("--service-log") {
        service::log_to(Path::new(path)).map_err(other)?;
    }
    let env = |n: &str| std::env::var(n).ok();
    let (server, specs) = match p.value("--config") {
        Some(path) => {
            if let Some(o) = ROUTE_ONLY.iter().find(|o| p.value(o).is_some() || p.flag(o)) {
                return usage(format!("{o} goes with --route; with --config, routes and their options are in the file"));
            }
            for o in [
                "--listen",
                "--client-ca-file",
                "--plain-http",
                "--cert-dir",
                "--tls-cert",
                "--tls-key",
                "--max-concurrency",
                "--max-queue",
                "--max-request-body",
            ] {
                if p.value(o).is_some() || p.flag(o) {
                    return usage(format!("{o} does not go with --config: set it in the file"));
                }
            }
            // --print-cert needs no secret: an administrator runs it without the service's
            // environment, so every variable reads as set (to a placeholder, never used).
            let placeholder = |_: &str| Some("print-cert-placeholder-secret".to_string());
            let env_of: &dyn Fn(&str) -> Option<String> = if p.flag("--print-cert") { &placeholder } else { &env };
            let c = config::load(Path::new(path), env_of).map_err(|e| other(format!("the gateway config is refused: {e}")))?;
            (c.server, Some(c.routes))
        }
        None => (server_from_args(p)?, None),
    };
    if p.flag("--print-cert") {
        let path = tls::cert_path(&server.tls).map_err(other)?;
        // A FIFO or a device named as the certificate must not hang or fill memory here either.
        let pem = dpopkit::core::fsread::read_regular_file(&path, &tls::CERT_FILE).map_err(|e| other(e.message))?;
        return super::write_stdout(&pem);
    }
    let routes = match specs {
        Some(specs) => specs.iter().map(route_from_spec).collect::<Result<Vec<_>, _>>()?,
        None => vec![route_from_args(p)?],
    };
    let tls_config = tls::server_config(&server.tls, server.client_ca.as_deref()).map_err(other)?;
    let scheme = if tls_config.is_some() { "https" } else { "http" };
    let summary: Vec<String> = routes.iter().map(|r| format!("{} -> {}", r.prefix, r.upstream)).collect();
    let cert_note = match &server.tls {
        TlsSource::Generated { dir, .. } => {
            format!(" (self-signed certificate {}; `dpopkit serve --print-cert` prints it)", dir.join(tls::CERT_NAME).display())
        }
        _ => String::new(),
    };
    let gw = server::Gateway::new(server, routes);
    let as_service = p.flag("--windows-service");
    let serve = move || {
        server::run(gw, tls_config, |addr| {
            eprintln!("dpopkit serve: listening on {scheme}://{addr}{cert_note}; routes: {}", summary.join(", "));
            #[cfg(windows)]
            if as_service {
                service::report_running();
            }
        })
    };
    if as_service {
        #[cfg(windows)]
        return service::run(Box::new(serve)).map_err(other);
    }
    serve().map_err(other)
}

fn count(p: &Parsed, name: &str, default: usize) -> Result<usize, Failure> {
    match p.value(name) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => usage(format!("{name} must be a positive whole number, not '{v}'")),
        },
    }
}

/// The server settings of the --route form.
fn server_from_args(p: &Parsed) -> Result<ServerConfig, Failure> {
    let listen_text = p.value("--listen").unwrap_or(config::DEFAULT_LISTEN);
    let Ok(listen) = listen_text.parse::<std::net::SocketAddr>() else {
        return usage(format!("--listen '{listen_text}' is not an IP address and port, e.g. 127.0.0.1:8443"));
    };
    let tls = if p.flag("--plain-http") {
        if !listen.ip().is_loopback() {
            return usage(format!(
                "--plain-http is allowed only on a loopback address (127.0.0.1, ::1), not on {listen}: requests and the caller credential would cross the network unencrypted"
            ));
        }
        TlsSource::Plain
    } else {
        match (p.value("--tls-cert"), p.value("--tls-key")) {
            (Some(c), Some(k)) => TlsSource::Files { cert: c.into(), key: k.into() },
            (None, None) => TlsSource::Generated {
                dir: p.value("--cert-dir").map(PathBuf::from).unwrap_or_else(config::default_cert_dir),
                names: p.all("--cert-name").map(str::to_string).collect(),
            },
            _ => return usage("--tls-cert and --tls-key go together"),
        }
    };
    let d = Limits::default();
    let limits = Limits {
        max_concurrency: count(p, "--max-concurrency", d.max_concurrency)?,
        max_queue: count(p, "--max-queue", d.max_queue)?,
        max_request_body: count(p, "--max-request-body", d.max_request_body)?,
        ..d
    };
    let client_ca = p.value("--client-ca-file").map(PathBuf::from);
    if client_ca.is_some() && matches!(tls, TlsSource::Plain) {
        return usage("--client-ca-file needs TLS (client certificates are part of the TLS handshake): drop --plain-http");
    }
    Ok(ServerConfig {
        listen,
        tls,
        limits,
        access_log: !p.flag("--no-access-log"),
        health_path: "/healthz".into(),
        metrics_path: "/metrics".into(),
        client_ca,
    })
}

/// The one route of the command line: `--route PREFIX=URL` and the request options of
/// `dpopkit get`, configured by the same code (`configure_client`).
fn route_from_args(p: &Parsed) -> Result<server::Route, Failure> {
    let Some(route) = p.value("--route") else {
        return usage(
            "serve needs --config FILE, or --route PREFIX=URL with the request options (--key, --client-id, --token-endpoint, ...)",
        );
    };
    let Some((prefix, upstream)) = route.split_once('=') else {
        return usage("--route takes PREFIX=URL, e.g. --route /orders/=https://api.example.com/v1/");
    };
    config::check_prefix(prefix).or_else(|why| usage(format!("--route: {why}")))?;
    config::check_upstream(upstream).or_else(|why| usage(format!("--route: {why}")))?;
    let methods = match p.value("--methods") {
        None => config::DEFAULT_METHODS.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut out = Vec::new();
            for m in list.split(',').map(str::trim) {
                config::check_method(m).or_else(|why| usage(format!("--methods: {why}")))?;
                out.push(m.to_ascii_uppercase());
            }
            out
        }
    };
    let caller_secret = match p.value("--caller-auth").unwrap_or("key") {
        "key" => {
            let Some(env_name) = p.value("--caller-secret-env") else {
                return usage(
                    "--caller-secret-env NAME is required: the environment variable that holds the secret callers send in X-DpopKit-Gateway-Key (or --caller-auth client-cert with --client-ca-file)",
                );
            };
            Some(config::caller_secret_of(env_name, &|n| std::env::var(n).ok()).map_err(other)?)
        }
        "client-cert" | "client_cert" => {
            if p.value("--client-ca-file").is_none() {
                return usage("--caller-auth client-cert needs --client-ca-file: the CA file that issues the callers' certificates");
            }
            if p.value("--caller-secret-env").is_some() {
                return usage("--caller-secret-env does not go with --caller-auth client-cert");
            }
            None
        }
        other => return usage(format!("--caller-auth must be key or client-cert, not '{other}'")),
    };
    let (client_id, secret, timeout) = super::route_client_options(p)?;
    let client = HttpClient::new();
    let mut secrets: Vec<&str> = caller_secret.iter().map(|s| s.as_str()).collect();
    if let Some(s) = &secret {
        secrets.push(s.as_str());
    }
    let opts = super::ClientOptions { client_id, secret: secret.as_deref().map(String::as_str), timeout };
    super::configure_client(p, &client, &[], opts, &secrets)?;
    no_redirects(&client)?;
    let timeout = client.settings().request_timeout;
    Ok(server::Route {
        prefix: prefix.to_string(),
        upstream: upstream.to_string(),
        methods,
        caller_digest: caller_secret.as_deref().map(|s| server::digest(s)),
        caller_secret,
        client,
        timeout,
    })
}

/// Redirects go back to the caller: the gateway follows none, to no origin.
fn no_redirects(client: &HttpClient) -> Outcome {
    let mut s = client.settings();
    s.follow_redirects = false;
    client.set_settings(s).map_err(|e| other(e.message))
}

fn route_from_spec(spec: &RouteSpec) -> Result<server::Route, Failure> {
    let at = |msg: String| other(format!("the gateway config is refused: route {} (line {}): {msg}", spec.prefix, spec.line));
    let client = HttpClient::new();
    let mut s = client.settings();
    if let Some(t) = spec.timeout {
        s.request_timeout = t;
        s.connect_timeout = s.connect_timeout.min(t);
    }
    if let Some(ca) = &spec.ca_file {
        s.trust = load_ca_file(ca).map_err(|e| at(format!("ca_file: {}", e.message)))?;
    }
    match spec.proxy.as_deref() {
        None => {}
        Some("") => s.proxy = ProxyChoice::None,
        Some(u) => s.proxy = ProxyChoice::Url(u.to_string()),
    }
    if let Some(m) = spec.max_response_body {
        s.max_response_size = m;
    }
    s.follow_redirects = false;
    client.set_settings(s).map_err(|e| at(e.message))?;
    let key =
        EcKey::load_file(&spec.key, spec.key_password.as_deref().map(String::as_str)).map_err(|e| at(format!("key: {}", e.message)))?;
    client.set_dpop_key(Arc::new(key));
    if let Some(dir) = &spec.token_cache_dir {
        super::create_private_dir(dir)?;
    }
    client.set_auth_token(&spec.auth_token).map_err(|e| at(format!("[route.auth_token]: {}", e.message)))?;
    if let Some(log) = &spec.session_log {
        client.set_session_log(Some(log)).map_err(|e| at(format!("session_log: {}", e.message)))?;
    }
    let timeout = client.settings().request_timeout;
    Ok(server::Route {
        prefix: spec.prefix.clone(),
        upstream: spec.upstream.clone(),
        methods: spec.methods.clone(),
        caller_digest: spec.caller_secret.as_deref().map(|s| server::digest(s)),
        caller_secret: spec.caller_secret.clone(),
        client,
        timeout,
    })
}
