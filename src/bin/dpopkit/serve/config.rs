//! The gateway's configuration file (TOML) and its checks. Every refusal names the line and
//! the fix: a gateway that starts is configured as its operator meant, or it does not start.
//!
//! The file holds no secret: the client secret comes from `client_secret_env` or
//! `client_secret_file`, the caller credential from `caller_secret_env`, the key password
//! from `key_password_env`. See README "Gateway" for the reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dpopkit::core::ErrorKind;
use dpopkit::core::fsread::{FileKind, read_regular_file};
use toml::Spanned;
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

use super::secret_file;

/// The config file itself: configuration, bounded like any file dpopkit reads.
const CONFIG_FILE: FileKind = FileKind {
    name: "gateway config file (--config)",
    max: 1 << 20,
    too_large: ErrorKind::FileIo,
    hint: "give the path of the gateway's TOML configuration file",
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const DEFAULT_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// The shortest caller secret accepted: it is all that stands between a local process and
/// the API (`openssl rand -base64 32` makes a good one).
pub const MIN_CALLER_SECRET: usize = 16;
pub const MAX_ROUTES: usize = 64;

/// Limits and paths of the server (the same for every route).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Upstream calls running at once (each on its connection's thread).
    pub max_concurrency: usize,
    /// Requests waiting for one of those; past it, 503 at once.
    pub max_queue: usize,
    /// Open connections, each served by a thread of its own; past it, new ones are
    /// closed at once.
    pub max_connections: usize,
    pub max_request_body: usize,
    /// Bytes of the request line and header block.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Time to receive the request line and headers (slowloris).
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrency: 32,
            max_queue: 128,
            max_connections: 512,
            max_request_body: 4 << 20,
            max_header_bytes: 16 << 10,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the server certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// `plain_http = true` (loopback only).
    Plain,
    /// `tls_cert` + `tls_key`: PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// A self-signed certificate generated once and kept in `dir` (`--print-cert` exports it).
    Generated { dir: PathBuf, names: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: TlsSource,
    pub limits: Limits,
    pub access_log: bool,
    pub health_path: String,
    pub metrics_path: String,
    /// `client_ca_file`: client certificates issued by these CAs are accepted (and checked
    /// in the TLS handshake); routes with `caller_auth = "client_cert"` require one.
    pub client_ca: Option<PathBuf>,
}

/// One route as written: the request options that make its Http object, and how it is
/// reached. The secrets are resolved (read from their variables and files) here.
pub struct RouteSpec {
    pub line: usize,
    pub prefix: String,
    pub upstream: String,
    pub methods: Vec<String>,
    /// `None`: the route takes client certificates (`caller_auth = "client_cert"`).
    pub caller_secret: Option<Zeroizing<String>>,
    pub timeout: Option<Duration>,
    pub ca_file: Option<PathBuf>,
    pub proxy: Option<String>,
    pub key: PathBuf,
    pub key_password: Option<Zeroizing<String>>,
    pub session_log: Option<PathBuf>,
    pub max_response_body: Option<u64>,
    /// The AuthToken JSON, with the client secret in it.
    pub auth_token: Zeroizing<String>,
    /// `token_cache_dir`, created (0700) before the AuthToken is set.
    pub token_cache_dir: Option<PathBuf>,
}

pub struct FileConfig {
    pub server: ServerConfig,
    pub routes: Vec<RouteSpec>,
}

/// A refusal: `FILE:LINE: what is wrong; the fix`.
#[derive(Debug)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

type Res<T> = Result<T, ConfigError>;

struct Doc<'a> {
    text: &'a str,
}

impl Doc<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let at = span.start.min(self.text.len());
        self.text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn fail<T>(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> Res<T> {
        Err(ConfigError { line: self.line(span), message: message.into() })
    }
}

type Val<'a> = Spanned<DeValue<'a>>;

/// A table's members by name, each with its span; unknown names refused with the list.
struct Members<'a, 'b> {
    doc: &'b Doc<'b>,
    entries: Vec<(String, std::ops::Range<usize>, &'b Val<'a>)>,
}

impl<'a, 'b> Members<'a, 'b> {
    fn of(doc: &'b Doc<'b>, table: &'b DeTable<'a>, what: &str, known: &[&str]) -> Res<Members<'a, 'b>> {
        let mut entries = Vec::new();
        for (k, v) in table.iter() {
            let name = k.get_ref().to_string();
            if !known.contains(&name.as_str()) {
                return doc.fail(k.span(), format!("unknown setting '{name}' in {what}; the settings there are: {}", known.join(", ")));
            }
            entries.push((name, k.span(), v));
        }
        Ok(Members { doc, entries })
    }

    fn get(&self, name: &str) -> Option<&'b Val<'a>> {
        self.entries.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| *v)
    }

    fn str(&self, name: &str) -> Res<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.get_ref().as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => self.doc.fail(v.span(), format!("'{name}' must be a string (in double quotes), not a {}", v.get_ref().type_str())),
            },
        }
    }

    fn bool(&self, name: &str) -> Res<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.get_ref().as_bool() {
                Some(b) => Ok(Some(b)),
                None => self.doc.fail(v.span(), format!("'{name}' must be true or false, not a {}", v.get_ref().type_str())),
            },
        }
    }

    /// A positive integer of at most `max`.
    fn count(&self, name: &str, max: u64) -> Res<Option<u64>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let n = v.get_ref().as_integer().and_then(|i| i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok());
        match n {
            Some(n) if n > 0 && n as u64 <= max => Ok(Some(n as u64)),
            _ => self.doc.fail(v.span(), format!("'{name}' must be a whole number from 1 to {max}")),
        }
    }

    fn strings(&self, name: &str) -> Res<Option<Vec<String>>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let bad = || self.doc.fail(v.span(), format!("'{name}' must be a list of strings, e.g. {name} = [\"GET\", \"POST\"]"));
        let Some(items) = v.get_ref().as_array() else { return bad() };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref().as_str() {
                Some(s) => out.push(s.to_string()),
                None => return bad(),
            }
        }
        Ok(Some(out))
    }

    fn span_of(&self, name: &str) -> std::ops::Range<usize> {
        self.entries.iter().find(|(n, _, _)| n == name).map_or(0..0, |(_, s, _)| s.clone())
    }
}

const SERVER_KEYS: &[&str] = &[
    "listen",
    "plain_http",
    "tls_cert",
    "tls_key",
    "cert_dir",
    "cert_names",
    "caller_secret_env",
    "max_concurrency",
    "max_queue",
    "max_connections",
    "max_request_body",
    "max_header_bytes",
    "max_headers",
    "header_timeout_ms",
    "access_log",
    "health_path",
    "metrics_path",
    "client_ca_file",
    "route",
];

const ROUTE_KEYS: &[&str] = &[
    "prefix",
    "caller_auth",
    "upstream",
    "methods",
    "caller_secret_env",
    "caller_secret_file",
    "timeout_ms",
    "ca_file",
    "proxy",
    "key",
    "key_password_env",
    "session_log",
    "max_response_body",
    "auth_token",
];

/// Reads and checks the config file. `env` reads an environment variable (tests pass a map).
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<FileConfig, String> {
    let shown = path.display().to_string();
    let data = read_regular_file(path, &CONFIG_FILE).map_err(|e| e.message)?;
    let text = std::str::from_utf8(&data).map_err(|_| format!("{shown}: the file is not UTF-8 text (TOML is UTF-8)"))?;
    parse(text, path.parent().unwrap_or(Path::new(".")), env).map_err(|e| format!("{shown}:{}: {}", e.line, e.message))
}

/// Parses the text of a config file; relative paths in it are relative to `base`.
pub fn parse(text: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Res<FileConfig> {
    let doc = Doc { text };
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let line = e.span().map_or(1, |s| doc.line(s));
            return Err(ConfigError {
                line,
                message: format!("not valid TOML: {}; see README \"Gateway\" for the format", e.message().trim()),
            });
        }
    };
    let top = Members::of(&doc, root.get_ref(), "the top level", SERVER_KEYS)?;
    let rel = |p: String| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() || p.to_str().is_some_and(|s| s.starts_with("pkcs11:")) { p } else { base.join(p) }
    };

    let listen_text = top.str("listen")?.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let listen: SocketAddr = match listen_text.parse() {
        Ok(a) => a,
        Err(_) => {
            return doc
                .fail(top.span_of("listen"), format!("listen = \"{listen_text}\" is not an IP address and port, e.g. \"127.0.0.1:8443\""));
        }
    };
    let plain = top.bool("plain_http")?.unwrap_or(false);
    let tls = match (top.str("tls_cert")?, top.str("tls_key")?) {
        _ if plain => {
            if !listen.ip().is_loopback() {
                return doc.fail(
                    top.span_of("plain_http"),
                    format!("plain_http = true is allowed only on a loopback address (127.0.0.1, ::1), not on {listen}: callers' requests and the caller credential would cross the network unencrypted; remove plain_http or listen on 127.0.0.1"),
                );
            }
            TlsSource::Plain
        }
        (Some(c), Some(k)) => TlsSource::Files { cert: rel(c), key: rel(k) },
        (Some(_), None) | (None, Some(_)) => {
            let at = top.span_of(if top.get("tls_cert").is_some() { "tls_cert" } else { "tls_key" });
            return doc
                .fail(at, "tls_cert and tls_key go together: give both PEM files, or neither to use the generated certificate (cert_dir)");
        }
        (None, None) => TlsSource::Generated {
            dir: top.str("cert_dir")?.map(rel).unwrap_or_else(default_cert_dir),
            names: top.strings("cert_names")?.unwrap_or_default(),
        },
    };
    let d = Limits::default();
    let ms = |name: &str, default: Duration| -> Res<Duration> { Ok(top.count(name, 3_600_000)?.map_or(default, Duration::from_millis)) };
    let limits = Limits {
        max_concurrency: top.count("max_concurrency", 4096)?.map_or(d.max_concurrency, |n| n as usize),
        max_queue: top.count("max_queue", 1 << 20)?.map_or(d.max_queue, |n| n as usize),
        max_connections: top.count("max_connections", 16384)?.map_or(d.max_connections, |n| n as usize),
        max_request_body: top.count("max_request_body", 1 << 30)?.map_or(d.max_request_body, |n| n as usize),
        max_header_bytes: top.count("max_header_bytes", 1 << 20)?.map_or(d.max_header_bytes, |n| n as usize),
        max_headers: top.count("max_headers", 1000)?.map_or(d.max_headers, |n| n as usize),
        header_timeout: ms("header_timeout_ms", d.header_timeout)?,
    };
    let health_path = top.str("health_path")?.unwrap_or_else(|| "/healthz".into());
    let metrics_path = top.str("metrics_path")?.unwrap_or_else(|| "/metrics".into());
    for (name, p) in [("health_path", &health_path), ("metrics_path", &metrics_path)] {
        if !p.starts_with('/') || p.contains(['?', '#', ' ']) {
            return doc.fail(top.span_of(name), format!("{name} must be a path that starts with '/', e.g. \"/healthz\""));
        }
    }
    let client_ca = top.str("client_ca_file")?.map(rel);
    if client_ca.is_some() && matches!(tls, TlsSource::Plain) {
        return doc.fail(
            top.span_of("client_ca_file"),
            "client_ca_file needs TLS (client certificates are part of the TLS handshake): remove plain_http",
        );
    }
    let server =
        ServerConfig { listen, tls, limits, access_log: top.bool("access_log")?.unwrap_or(true), health_path, metrics_path, client_ca };
    let default_caller_env = top.str("caller_secret_env")?;

    let Some(routes_v) = top.get("route") else {
        return doc.fail(0..0, "no route: add one or more [[route]] tables with prefix, upstream, key and [route.auth_token]");
    };
    let Some(route_list) = routes_v.get_ref().as_array() else {
        return doc.fail(routes_v.span(), "'route' must be an array of tables: write each route as [[route]] (two brackets)");
    };
    if route_list.len() > MAX_ROUTES {
        return doc.fail(routes_v.span(), format!("at most {MAX_ROUTES} routes"));
    }
    let mut routes: Vec<RouteSpec> = Vec::new();
    for r in route_list.iter() {
        let Some(table) = r.get_ref().as_table() else {
            return doc.fail(r.span(), "each route must be a table: [[route]] followed by its settings");
        };
        let spec = parse_route(&doc, r.span(), table, default_caller_env.as_deref(), server.client_ca.is_some(), env, &rel)?;
        if let Some(other) = routes.iter().find(|o| o.prefix == spec.prefix) {
            return doc.fail(
                r.span(),
                format!("prefix \"{}\" is already the prefix of the route at line {}; each prefix once", spec.prefix, other.line),
            );
        }
        for p in [&server.health_path, &server.metrics_path] {
            if p.starts_with(&spec.prefix) || spec.prefix.trim_end_matches('/') == p {
                return doc.fail(
                    r.span(),
                    format!(
                        "prefix \"{}\" covers {p}, the health or metrics path; choose another prefix (or health_path / metrics_path)",
                        spec.prefix
                    ),
                );
            }
        }
        routes.push(spec);
    }
    Ok(FileConfig { server, routes })
}

fn parse_route(
    doc: &Doc<'_>,
    span: std::ops::Range<usize>,
    table: &DeTable<'_>,
    default_caller_env: Option<&str>,
    client_ca: bool,
    env: &dyn Fn(&str) -> Option<String>,
    rel: &dyn Fn(String) -> PathBuf,
) -> Res<RouteSpec> {
    let m = Members::of(doc, table, "[[route]]", ROUTE_KEYS)?;
    let line = doc.line(span.clone());
    let need = |name: &str, example: &str| -> Res<String> {
        match m.str(name)? {
            Some(v) => Ok(v),
            None => doc.fail(span.clone(), format!("this route has no '{name}'; add e.g. {name} = {example}")),
        }
    };
    let prefix = need("prefix", "\"/orders/\"")?;
    check_prefix(&prefix).or_else(|why| doc.fail(m.span_of("prefix"), why))?;
    let upstream = need("upstream", "\"https://api.example.com/v1/\"")?;
    check_upstream(&upstream).or_else(|why| doc.fail(m.span_of("upstream"), why))?;
    let methods = match m.strings("methods")? {
        None => DEFAULT_METHODS.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut out = Vec::new();
            for meth in list {
                check_method(&meth).or_else(|why| doc.fail(m.span_of("methods"), why))?;
                out.push(meth.to_ascii_uppercase());
            }
            if out.is_empty() {
                return doc.fail(m.span_of("methods"), "methods is empty: list the methods callers may use, e.g. [\"GET\", \"POST\"]");
            }
            out
        }
    };
    let client_cert = match m.str("caller_auth")?.as_deref() {
        None | Some("key") => false,
        Some("client_cert") => true,
        Some(other) => return doc.fail(
            m.span_of("caller_auth"),
            format!(
                "caller_auth = \"{other}\" is not a caller credential; use \"key\" (X-DpopKit-Gateway-Key, the default) or \"client_cert\""
            ),
        ),
    };
    let caller_secret = if client_cert {
        if !client_ca {
            return doc.fail(
                m.span_of("caller_auth"),
                "caller_auth = \"client_cert\" needs client_ca_file at the top level: the CA file that issues the callers' certificates",
            );
        }
        for name in ["caller_secret_env", "caller_secret_file"] {
            if m.get(name).is_some() {
                return doc.fail(
                    m.span_of(name),
                    format!("{name} does not go with caller_auth = \"client_cert\": this route takes client certificates instead"),
                );
            }
        }
        None
    } else if let Some(file) = m.str("caller_secret_file")? {
        // A file (a Windows service or a systemd credential has no environment to give).
        if m.get("caller_secret_env").is_some() {
            return doc.fail(m.span_of("caller_secret_file"), "caller_secret_env and caller_secret_file: give one of them");
        }
        let data = secret_file::read(&rel(file.clone()), &secret_file::CALLER_SECRET_FILE, "caller_secret_file")
            .or_else(|why| doc.fail(m.span_of("caller_secret_file"), why))?;
        let text = Zeroizing::new(std::str::from_utf8(&data).map(|t| t.trim_end_matches(['\r', '\n']).to_string()).unwrap_or_default());
        Some(
            check_caller_secret(text, &format!("the caller_secret_file {file}"))
                .or_else(|why| doc.fail(m.span_of("caller_secret_file"), why))?,
        )
    } else {
        let caller_secret_env = match m.str("caller_secret_env")?.or(default_caller_env.map(str::to_string)) {
            Some(n) => n,
            None => {
                return doc.fail(
                    span,
                    "this route has no caller credential: set caller_secret_env = \"NAME\" (here or at the top level) to the environment variable that holds the secret callers send in X-DpopKit-Gateway-Key (or caller_auth = \"client_cert\" with client_ca_file)",
                );
            }
        };
        Some(
            caller_secret_of(&caller_secret_env, env)
                .or_else(|why| doc.fail(m.span_of("caller_secret_env").start.max(span.start)..span.end, why))?,
        )
    };
    let key = need("key", "\"/etc/dpopkit/dpop-key.pem\" (or a pkcs11: URI)")?;
    let key_password = match m.str("key_password_env")? {
        None => None,
        Some(n) => match env(&n).filter(|v| !v.is_empty()) {
            Some(v) => Some(Zeroizing::new(v)),
            None => {
                return doc.fail(
                    m.span_of("key_password_env"),
                    format!("key_password_env names the variable {n}, which is not set (or empty) in the gateway's environment"),
                );
            }
        },
    };
    let Some(at) = m.get("auth_token") else {
        return doc.fail(
            span,
            "this route has no [route.auth_token] table: add one with client_id, token_endpoint (or issuer), scope and client_secret_env",
        );
    };
    let Some(auth_table) = at.get_ref().as_table() else {
        return doc
            .fail(at.span(), "auth_token must be a table: [route.auth_token] with client_id, token_endpoint, client_secret_env, ...");
    };
    let (auth_token, token_cache_dir) = auth_json(doc, at.span(), auth_table, env, rel)?;
    Ok(RouteSpec {
        line,
        prefix,
        upstream,
        methods,
        caller_secret,
        timeout: m.count("timeout_ms", 3_600_000)?.map(Duration::from_millis),
        ca_file: m.str("ca_file")?.map(rel),
        proxy: m.str("proxy")?,
        key: rel(key),
        key_password,
        session_log: m.str("session_log")?.map(rel),
        max_response_body: m.count("max_response_body", 1 << 32)?,
        auth_token,
        token_cache_dir,
    })
}

/// The AuthToken JSON of `[route.auth_token]`: its members as they are (the library checks
/// them), the client secret from `client_secret_env` or `client_secret_file` — never inline.
fn auth_json(
    doc: &Doc<'_>,
    span: std::ops::Range<usize>,
    table: &DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    rel: &dyn Fn(String) -> PathBuf,
) -> Res<(Zeroizing<String>, Option<PathBuf>)> {
    let mut obj = serde_json::Map::new();
    let mut secret: Option<Zeroizing<String>> = None;
    let mut cache_dir = None;
    for (k, v) in table.iter() {
        let name = k.get_ref().as_ref();
        let val = v.get_ref();
        match name {
            "client_secret" => {
                return doc.fail(
                    k.span(),
                    "the client secret does not go in the config file: put it in an environment variable (client_secret_env = \"NAME\") or a file readable only by the gateway (client_secret_file = \"/etc/dpopkit/secret\")",
                );
            }
            "client_secret_env" => {
                let Some(n) = val.as_str() else {
                    return doc.fail(v.span(), "client_secret_env must be the name of an environment variable, in quotes");
                };
                match env(n).filter(|s| !s.is_empty()) {
                    Some(s) => secret = Some(Zeroizing::new(s)),
                    None => return doc.fail(v.span(), format!("client_secret_env names the variable {n}, which is not set (or empty) in the gateway's environment; set it (e.g. in the systemd unit's EnvironmentFile)")),
                }
            }
            "client_secret_file" => {
                let Some(p) = val.as_str() else { return doc.fail(v.span(), "client_secret_file must be a path, in quotes") };
                let data = secret_file::read(&rel(p.to_string()), &secret_file::CLIENT_SECRET_FILE, "client_secret_file")
                    .or_else(|why| doc.fail(v.span(), why))?;
                let text = std::str::from_utf8(&data).map(|t| t.trim_end_matches(['\r', '\n']).to_string()).unwrap_or_default();
                if text.is_empty() {
                    return doc.fail(v.span(), "the client_secret_file is empty (or not UTF-8 text); write the secret in it");
                }
                secret = Some(Zeroizing::new(text));
            }
            _ => {
                let json = match val {
                    DeValue::String(s) => serde_json::Value::String(s.to_string()),
                    DeValue::Boolean(b) => serde_json::Value::Bool(*b),
                    DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                        Ok(n) => serde_json::Value::from(n),
                        Err(_) => return doc.fail(v.span(), format!("'{name}' is not a usable whole number")),
                    },
                    DeValue::Array(items) => {
                        let mut out = Vec::new();
                        for it in items.iter() {
                            match it.get_ref().as_str() {
                                Some(s) => out.push(serde_json::Value::String(s.to_string())),
                                None => return doc.fail(it.span(), format!("'{name}' must be a list of strings")),
                            }
                        }
                        serde_json::Value::Array(out)
                    }
                    other => {
                        return doc.fail(
                            v.span(),
                            format!(
                                "'{name}' is a {}; AuthToken members are strings, numbers, true/false or lists of strings",
                                other.type_str()
                            ),
                        );
                    }
                };
                if name == "token_cache_dir" {
                    if let serde_json::Value::String(d) = &json {
                        let dir = rel(d.clone());
                        obj.insert(name.to_string(), serde_json::Value::String(dir.display().to_string()));
                        cache_dir = Some(dir);
                        continue;
                    }
                }
                obj.insert(name.to_string(), json);
            }
        }
    }
    let auth_method = obj.get("client_auth_method").and_then(|v| v.as_str()).unwrap_or("client_secret_post");
    match (&secret, auth_method) {
        (None, m) if m != "private_key_jwt" => {
            return doc.fail(span, "this AuthToken has no client secret: add client_secret_env = \"NAME\" (an environment variable) or client_secret_file = \"PATH\" (or use client_auth_method = \"private_key_jwt\")");
        }
        _ => {}
    }
    if let Some(s) = secret {
        obj.insert("client_secret".to_string(), serde_json::Value::String(s.to_string()));
    }
    let text = Zeroizing::new(serde_json::Value::Object(obj).to_string());
    Ok((text, cache_dir))
}

/// The caller credential from its environment variable: set, long enough, one line.
pub fn caller_secret_of(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Zeroizing<String>, String> {
    let Some(v) = env(name).map(Zeroizing::new) else {
        return Err(format!(
            "the caller credential variable {name} (caller_secret_env / --caller-secret-env) is not set in the gateway's environment; set it to a random secret, e.g. `openssl rand -base64 32` (or give caller_secret_file)"
        ));
    };
    check_caller_secret(v, name)
}

/// A caller credential is long enough and fits an HTTP header. `source` names where it came from.
fn check_caller_secret(v: Zeroizing<String>, source: &str) -> Result<Zeroizing<String>, String> {
    if v.len() < MIN_CALLER_SECRET {
        return Err(format!(
            "the caller credential in {source} has {} characters; use at least {MIN_CALLER_SECRET} random ones (e.g. `openssl rand -base64 32`)",
            v.len()
        ));
    }
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("the caller credential in {source} must be printable ASCII without spaces (it travels in an HTTP header)"));
    }
    Ok(v)
}

/// A route prefix: an absolute path that ends with '/', plain characters only.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix.starts_with('/')
        && prefix.ends_with('/')
        && prefix.len() >= 2
        && !prefix.contains("//")
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        && !prefix.split('/').any(|s| s == "." || s == "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "prefix \"{prefix}\" must be a path that starts and ends with '/', of letters, digits and -._~ (no '..', no '//'), e.g. \"/orders/\""
        ))
    }
}

/// An upstream base URL: http(s), no query or fragment or user info, path ending with '/'.
pub fn check_upstream(url: &str) -> Result<(), String> {
    let fix = "e.g. \"https://api.example.com/v1/\"";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("upstream \"{url}\" is not an absolute http(s) URL; {fix}"));
    };
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("upstream \"{url}\" must be an https:// (or http://) URL; {fix}"));
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!("upstream \"{url}\" needs a host and no user:password@; {fix}"));
    }
    if url.contains(['?', '#', '\\', ' ']) || !url.ends_with('/') || path.contains("//") || path.split('/').any(|s| s == "." || s == "..") {
        return Err(format!(
            "upstream \"{url}\" must be a base URL whose path ends with '/' (requests are appended to it), without query, fragment, '..' or '//'; {fix}"
        ));
    }
    dpopkit::core::proof::Target::parse(url).map(|_| ()).map_err(|e| format!("upstream \"{url}\": {}", e.message))
}

pub fn check_method(m: &str) -> Result<(), String> {
    let upper = m.to_ascii_uppercase();
    if matches!(upper.as_str(), "CONNECT" | "TRACE" | "TRACK") {
        return Err(format!("method {upper} cannot be allowed: CONNECT opens a tunnel, TRACE/TRACK echo the token and proof back"));
    }
    if m.is_empty() || m.len() > 32 || !m.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err(format!("'{m}' is not an HTTP method; e.g. \"GET\", \"POST\""));
    }
    Ok(())
}

/// Where the generated certificate is kept when no `cert_dir` / `--cert-dir` is given:
/// `$XDG_CONFIG_HOME/dpopkit/gateway`, `~/.config/dpopkit/gateway`, or on Windows
/// `%APPDATA%\dpopkit\gateway`.
pub fn default_cert_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APPDATA").filter(|_| cfg!(windows)).map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("dpopkit").join("gateway")
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
