//! `dpopkit`: OAuth 2.0 client_credentials + DPoP (RFC 9449) from the command line, built on
//! `dpopkit::core`. Arguments are parsed by hand (no dependencies beyond the library's).
//!
//! Exit codes: 0 success (2xx), 1 the server answered a non-2xx status, 2 usage error,
//! 3 any other error (key, token endpoint, network, file). Secrets are never printed, not
//! even when a server echoes them back; control characters from a server never reach a
//! terminal raw (see `for_terminal`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dpopkit::core::redact::scrub;
use dpopkit::core::{EcKey, ErrorKind, HttpClient};
use zeroize::Zeroizing;

const EXIT_HTTP_STATUS: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_ERROR: u8 = 3;

/// Largest part of an error response body echoed to stderr.
const MAX_ERROR_BODY: usize = 4096;

const HELP: &str = "\
dpopkit - OAuth 2.0 client_credentials + DPoP (RFC 9449) from the command line

USAGE:
    dpopkit get URL [REQUEST OPTIONS]
    dpopkit request METHOD URL [--data BODY] [--content-type TYPE] [REQUEST OPTIONS]
    dpopkit keygen [--out FILE] [--jwk]
    dpopkit keygen --pkcs11 URI [--key-password PIN] [--alg ES256|ES384]
    dpopkit jwk --key FILE [--key-password P]
    dpopkit jkt --key FILE [--key-password P]
    dpopkit --help | --version

COMMANDS:
    get       GET URL with a DPoP-bound access token; prints the response body to stdout.
    request   Any method (POST, PUT, DELETE, ...), optionally with a body.
    keygen    Creates a new EC P-256 key: PKCS#8 PEM (or a private JWK with --jwk) written
              to FILE (never overwritten; mode 0600) or to stdout; prints its thumbprint
              (jkt) to stdout (to stderr when the key goes to stdout).
              With --pkcs11 URI: creates a non-extractable P-256 (or --alg ES384) key
              pair inside the PKCS#11 token the URI names (object= is its label) and
              prints its public JWK, then its jkt; nothing secret leaves the token.
    jwk       Prints the public JWK of a key.
    jkt       Prints the RFC 7638 thumbprint (jkt) of a key.

REQUEST OPTIONS:
    --key FILE               DPoP private key: EC P-256 as PEM or DER (SEC1, PKCS#8,
                             encrypted PKCS#8) or JWK, or a key in a PKCS#11 token:
                             pkcs11:token=T;object=K?module-path=/path/module.so (required)
    --key-password P         Password of an encrypted key, or the token's user PIN
                             (or env DPOPKIT_KEY_PASSWORD)
    --client-id ID           OAuth client id                                  (required)
    --client-secret S        Client secret. Prefer the environment variable
                             DPOPKIT_CLIENT_SECRET: a secret on the command line is
                             visible to other users in `ps` and in shell history.
    --token-endpoint URL     The authorization server's token endpoint       (required)
    --scope S                Scope to request
    --audience A             `audience` form parameter of the token request
    --resource R             `resource` form parameter (RFC 8707)
    --auth-method M          client_secret_post (default) or client_secret_basic
    --session-log FILE       Append every request and response to FILE, with
                             Authorization, DPoP, secrets and tokens shown as ****
    --timeout-ms N           Time limit of the whole call in ms: redirects, retries and
                             token requests included (default 60000)
    --token-cache DIR        Share the access token with other runs and processes of this
                             user through DIR (or env DPOPKIT_TOKEN_CACHE): one token
                             request per token lifetime instead of one per run. DIR is
                             created (mode 0700) if missing; it must be owned by you and
                             not writable by group or others. It holds DPoP-bound tokens,
                             useless without the key (files mode 0600).
    --data BODY              (request) Request body
    --content-type TYPE      (request) Content-Type of the body

ENVIRONMENT:
    DPOPKIT_CLIENT_SECRET    The client secret (used when --client-secret is not given)
    DPOPKIT_KEY_PASSWORD     The key password or PIN (used when --key-password is not given)
    DPOPKIT_PKCS11_MODULE    The PKCS#11 module when a pkcs11: URI has no module-path
    DPOPKIT_TOKEN_CACHE      The token cache directory (used when --token-cache is not given)

EXIT STATUS:
    0 success (2xx), 1 the server answered another HTTP status, 2 usage error,
    3 other errors (key, token endpoint, network, files).
    On failure the error (and the HTTP status) is printed to stderr.

OUTPUT:
    Credentials a server echoes back (secret, token, proof) are shown as ****.
    Control characters from a server (escape sequences) are shown as \\x1b etc.
    on stderr, and on stdout when it is a terminal; a redirected stdout gets
    the body's bytes unchanged (but for masked credentials).
";

/// Why the program stops early.
enum Failure {
    /// Bad command line: message, exit 2.
    Usage(String),
    /// Anything else: message, exit code.
    Error(String, u8),
}

type Outcome = Result<(), Failure>;

fn usage<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(msg.into()))
}

fn other(msg: impl Into<String>) -> Failure {
    Failure::Error(msg.into(), EXIT_ERROR)
}

/// The options a subcommand accepts: name and whether it takes a value.
type Spec = &'static [(&'static str, bool)];

const REQUEST_OPTS: Spec = &[
    ("--key", true),
    ("--key-password", true),
    ("--client-id", true),
    ("--client-secret", true),
    ("--token-endpoint", true),
    ("--scope", true),
    ("--audience", true),
    ("--resource", true),
    ("--auth-method", true),
    ("--session-log", true),
    ("--timeout-ms", true),
    ("--token-cache", true),
    ("--data", true),
    ("--content-type", true),
];
const KEYGEN_OPTS: Spec = &[("--out", true), ("--jwk", false), ("--pkcs11", true), ("--key-password", true), ("--alg", true)];
const KEY_OPTS: Spec = &[("--key", true), ("--key-password", true)];

#[derive(Default)]
struct Parsed {
    positional: Vec<String>,
    values: Vec<(&'static str, String)>,
    flags: Vec<&'static str>,
}

impl Parsed {
    fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    fn required(&self, name: &str) -> Result<&str, Failure> {
        match self.value(name) {
            Some(v) => Ok(v),
            None => usage(format!("{name} is required")),
        }
    }
}

/// Parses `--name value`, `--name=value`, flags and positionals; `--` ends the options.
/// Returns `None` when help was asked for.
fn parse(args: &[String], spec: Spec) -> Result<Option<Parsed>, Failure> {
    let mut p = Parsed::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            p.positional.extend(it.by_ref().cloned());
            break;
        }
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if !arg.starts_with('-') || arg == "-" {
            p.positional.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let Some(&(name, takes_value)) = spec.iter().find(|(n, _)| *n == name) else {
            return usage(format!("unknown option '{name}'"));
        };
        if takes_value {
            let value = match inline {
                Some(v) => v,
                None => match it.next() {
                    Some(v) => v.clone(),
                    None => return usage(format!("{name} needs a value")),
                },
            };
            if p.value(name).is_some() {
                return usage(format!("{name} is given twice"));
            }
            p.values.push((name, value));
        } else {
            if inline.is_some() {
                return usage(format!("{name} takes no value"));
            }
            p.flags.push(name);
        }
    }
    Ok(Some(p))
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os().skip(1).map(|a| a.into_string()).collect() {
        Ok(a) => a,
        Err(_) => return finish(usage("arguments must be valid UTF-8")),
    };
    let Some(command) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(EXIT_USAGE);
    };
    let rest = &args[1..];
    let outcome = match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(())
        }
        "-V" | "--version" | "version" => {
            println!("dpopkit {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "get" => with_parsed(rest, REQUEST_OPTS, cmd_get),
        "request" => with_parsed(rest, REQUEST_OPTS, cmd_request),
        "keygen" => with_parsed(rest, KEYGEN_OPTS, cmd_keygen),
        "jwk" => with_parsed(rest, KEY_OPTS, |p| cmd_key_info(p, false)),
        "jkt" => with_parsed(rest, KEY_OPTS, |p| cmd_key_info(p, true)),
        other => usage(format!("unknown command '{other}'")),
    };
    finish(outcome)
}

fn finish(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("dpopkit: {}", for_terminal(&msg));
            eprintln!("Try 'dpopkit --help' for more information.");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Error(msg, code)) => {
            eprintln!("dpopkit: error: {}", for_terminal(&msg));
            ExitCode::from(code)
        }
    }
}

fn with_parsed(args: &[String], spec: Spec, f: impl FnOnce(&Parsed) -> Outcome) -> Outcome {
    match parse(args, spec)? {
        Some(p) => f(&p),
        None => {
            print!("{HELP}");
            Ok(())
        }
    }
}

fn cmd_get(p: &Parsed) -> Outcome {
    let [url] = p.positional.as_slice() else {
        return usage("get takes exactly one URL");
    };
    if p.value("--data").is_some() || p.value("--content-type").is_some() {
        return usage("--data and --content-type belong to 'request', not 'get'");
    }
    send(p, "GET", url, None, None)
}

fn cmd_request(p: &Parsed) -> Outcome {
    let [method, url] = p.positional.as_slice() else {
        return usage("request takes a METHOD and a URL");
    };
    let content_type = p.value("--content-type");
    let data = p.value("--data");
    if content_type.is_some() && data.is_none() {
        return usage("--content-type needs --data");
    }
    send(p, method, url, content_type, data.map(str::as_bytes))
}

fn key_password(p: &Parsed) -> Option<Zeroizing<String>> {
    p.value("--key-password")
        .map(|s| Zeroizing::new(s.to_string()))
        .or_else(|| std::env::var("DPOPKIT_KEY_PASSWORD").ok().map(Zeroizing::new))
        .filter(|s| !s.is_empty())
}

fn load_key(p: &Parsed) -> Result<EcKey, Failure> {
    let path = p.required("--key")?;
    let password = key_password(p);
    EcKey::load_file(Path::new(path), password.as_deref().map(String::as_str)).map_err(|e| other(e.message))
}

fn send(p: &Parsed, method: &str, url: &str, content_type: Option<&str>, body: Option<&[u8]>) -> Outcome {
    // Check the whole command line before touching files or the network.
    p.required("--key")?;
    let client_id = p.required("--client-id")?;
    let token_endpoint = p.required("--token-endpoint")?;
    let secret: Zeroizing<String> = match p.value("--client-secret") {
        Some(s) => Zeroizing::new(s.to_string()),
        None => match std::env::var("DPOPKIT_CLIENT_SECRET") {
            Ok(s) => Zeroizing::new(s),
            Err(_) => {
                return usage("no client secret: set DPOPKIT_CLIENT_SECRET (recommended) or give --client-secret");
            }
        },
    };
    if secret.is_empty() {
        return usage("the client secret is empty");
    }
    let auth_method = p.value("--auth-method");
    if let Some(m) = auth_method {
        if m != "client_secret_post" && m != "client_secret_basic" {
            return usage(format!("--auth-method must be client_secret_post or client_secret_basic, not '{m}'"));
        }
    }
    let timeout = match p.value("--timeout-ms") {
        None => None,
        Some(t) => match t.parse::<u64>() {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => return usage(format!("--timeout-ms must be a positive number of milliseconds, not '{t}'")),
        },
    };
    let secrets = [secret.as_str()];
    let fail = |e: dpopkit::core::Error| other(scrub(&e.message, &secrets));

    let key = load_key(p)?;
    let client = HttpClient::new();
    client.set_dpop_key(Arc::new(key));
    let mut auth = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        auth.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    };
    put("token_endpoint", token_endpoint);
    put("client_id", client_id);
    put("client_secret", &secret);
    for (opt, member) in [("--scope", "scope"), ("--audience", "audience"), ("--resource", "resource")] {
        if let Some(v) = p.value(opt) {
            put(member, v);
        }
    }
    if let Some(m) = auth_method {
        put("client_auth_method", m);
    }
    let token_cache = p.value("--token-cache").map(str::to_string).or_else(|| std::env::var("DPOPKIT_TOKEN_CACHE").ok());
    if let Some(dir) = token_cache.as_deref().filter(|d| !d.is_empty()) {
        create_private_dir(Path::new(dir))?;
        put("token_cache_dir", dir);
    }
    let auth_json = Zeroizing::new(serde_json::Value::Object(auth).to_string());
    client.set_auth_token(&auth_json).map_err(|e| {
        other(scrub(&e.message, &secrets).replace("AuthToken \"token_cache_dir\"", "the token cache directory (--token-cache or DPOPKIT_TOKEN_CACHE)"))
    })?;
    drop(auth_json);
    if let Some(log) = p.value("--session-log") {
        client.set_session_log(Some(Path::new(log))).map_err(fail)?;
    }
    if let Some(t) = timeout {
        let mut s = client.settings();
        s.request_timeout = t;
        s.connect_timeout = s.connect_timeout.min(t);
        client.set_settings(s).map_err(fail)?;
    }

    // The library masks the call's credentials in everything it hands back (error texts,
    // bodies); the secret is masked here once more, and control characters are neutralised
    // in everything from the server that reaches a terminal.
    match client.request(Some(method), url, content_type, body) {
        Ok(resp) if std::io::stdout().is_terminal() => {
            write_stdout(for_terminal(&scrub(&String::from_utf8_lossy(&resp.body), &secrets)).as_bytes())
        }
        Ok(resp) => write_stdout(&resp.body),
        Err(e) => {
            let status = e.status();
            let mut msg = scrub(&e.message, &secrets);
            if status != 0 && !msg.contains(&status.to_string()) {
                msg.push_str(&format!(" (HTTP status {status})"));
            }
            if e.kind == ErrorKind::HttpStatus {
                if let Some(r) = &e.response {
                    let text = String::from_utf8_lossy(&r.body);
                    let shown: String = text.chars().take(MAX_ERROR_BODY).collect();
                    if !shown.trim().is_empty() {
                        msg.push_str(&format!("\nresponse body: {}", scrub(shown.trim_end(), &secrets)));
                    }
                }
                return Err(Failure::Error(msg, EXIT_HTTP_STATUS));
            }
            Err(other(msg))
        }
    }
}

/// Text from a server made safe to print on a terminal: control characters other than
/// newline and tab (ESC and the rest of C0, DEL, C1, a lone CR) and the Unicode bidi
/// overrides become visible escapes (`\x1b`, `\u{202e}`), so a response cannot clear the
/// screen, retitle the window, rewrite a line or reorder what is shown.
fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' if chars.peek() == Some(&'\n') => {}
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}') => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

fn write_stdout(bytes: &[u8]) -> Outcome {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(other(format!("cannot write to stdout: {e}"))),
    }
}

fn cmd_key_info(p: &Parsed, thumbprint: bool) -> Outcome {
    if !p.positional.is_empty() {
        return usage(format!("unexpected argument '{}'", p.positional[0]));
    }
    let key = load_key(p)?;
    let text = if thumbprint { key.jkt() } else { key.public_jwk() };
    write_stdout(format!("{text}\n").as_bytes())
}

fn cmd_keygen(p: &Parsed) -> Outcome {
    if !p.positional.is_empty() {
        return usage(format!("unexpected argument '{}' (use --out FILE)", p.positional[0]));
    }
    if let Some(uri) = p.value("--pkcs11") {
        if p.value("--out").is_some() || p.flag("--jwk") {
            return usage("--out and --jwk do not go with --pkcs11: a token key never leaves the token");
        }
        let pin = key_password(p);
        let alg = p.value("--alg").unwrap_or("ES256");
        let key = EcKey::generate_in_token(uri, pin.as_deref().map(String::as_str), alg).map_err(|e| other(e.message))?;
        return write_stdout(format!("{}\n{}\n", key.public_jwk(), key.jkt()).as_bytes());
    }
    if p.value("--key-password").is_some() || p.value("--alg").is_some() {
        return usage("--key-password and --alg go with --pkcs11 (a key file is written unencrypted, ES256)");
    }
    let key = EcKey::generate().map_err(|e| other(e.message))?;
    let mut data: Zeroizing<String> =
        if p.flag("--jwk") { key.to_private_jwk().map_err(|e| other(e.message))? } else { key.to_pkcs8_pem().map_err(|e| other(e.message))? };
    if !data.ends_with('\n') {
        data.push('\n');
    }
    match p.value("--out") {
        Some(path) => {
            write_new_private_file(Path::new(path), data.as_bytes())?;
            write_stdout(format!("{}\n", key.jkt()).as_bytes())
        }
        None => {
            write_stdout(data.as_bytes())?;
            eprintln!("jkt: {}", key.jkt());
            Ok(())
        }
    }
}

/// Creates the token cache directory when it does not exist (one level, mode 0700 on unix);
/// the library checks its owner and mode.
fn create_private_dir(dir: &Path) -> Outcome {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(other(format!("cannot create the token cache directory '{}': {e}", dir.display()))),
    }
}

/// Creates `path` (never replacing an existing file), readable only by the owner on unix.
fn write_new_private_file(path: &Path, data: &[u8]) -> Outcome {
    let shown = path.display();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => other(format!("'{shown}' already exists; refusing to overwrite it")),
        _ => other(format!("cannot create '{shown}': {e}")),
    })?;
    if let Err(e) = file.write_all(data).and_then(|_| file.sync_all()) {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(other(format!("cannot write '{shown}': {e}")));
    }
    Ok(())
}
