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

use dpopkit::core::fsread::{FileKind, not_regular, read_regular_file};
use dpopkit::core::headers::is_credential_header;
use dpopkit::core::http::{ProxyChoice, load_ca_file};
use dpopkit::core::redact::scrub;
use dpopkit::core::{EcKey, ErrorKind, HttpClient, ResponseInfo};
use zeroize::Zeroizing;

mod args;
use args::*;
mod output;
use output::*;
#[cfg(feature = "gateway")]
mod serve;

const EXIT_HTTP_STATUS: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_ERROR: u8 = 3;

/// `--data @FILE` and `--data @-`: the body is held in memory, so it has a bound.
const BODY_FILE: FileKind = FileKind {
    name: "body file (--data @FILE)",
    max: 64 << 20,
    too_large: ErrorKind::FileIo,
    hint: "give the path of a file to send (or @- for standard input)",
};

/// Largest part of an error response body echoed to stderr.
const MAX_ERROR_BODY: usize = 4096;

const HELP: &str = "\
dpopkit - OAuth 2.0 client_credentials + DPoP (RFC 9449) from the command line

USAGE:
    dpopkit get URL [REQUEST OPTIONS]
    dpopkit request [METHOD] URL [-X METHOD] [--data BODY] [REQUEST OPTIONS]
    dpopkit keygen [--out FILE] [--jwk] [--alg ES256|ES384|EdDSA|RS256|PS256] [--bits N]
    dpopkit keygen --pkcs11 URI [--key-password PIN] [--alg ES256|ES384|RS256|PS256]
    dpopkit jwk --key FILE [--key-password P]
    dpopkit jkt --key FILE [--key-password P]
    dpopkit serve --config FILE [--print-cert]
    dpopkit serve --route PREFIX=URL --caller-secret-env NAME [--listen ADDR]
                  [--plain-http] [--cert-dir DIR] [--print-cert] [REQUEST OPTIONS]
    dpopkit --help | --version

COMMANDS:
    get       GET URL with a DPoP-bound access token; prints the response body to stdout.
    request   Any method (POST, PUT, PATCH, DELETE, ...), optionally with a body: the
              METHOD before the URL, or -X METHOD; without either, POST with --data
              and GET without.
    keygen    Creates a new key: EC P-256 (ES256, the default), EC P-384 (--alg ES384),
              Ed25519 (--alg EdDSA or Ed25519) or RSA (--alg RS256 or PS256: 2048 bits,
              --bits 2048 to 4096; it signs both, preferring the one named), as PKCS#8
              PEM (or a private JWK with --jwk) written to FILE (never overwritten; mode
              0600) or to stdout; prints its thumbprint (jkt) to stdout (to stderr when
              the key goes to stdout). ES256 is what most DPoP servers accept; some
              accept nothing else, and some only RSA.
              With --pkcs11 URI: creates a non-extractable P-256 (or --alg ES384, or a
              2048-bit RSA key with --alg RS256 / PS256) key pair inside the PKCS#11
              token the URI names (object= is its label) and prints its public JWK,
              then its jkt; nothing secret leaves the token.
    jwk       Prints the public JWK of a key.
    jkt       Prints the RFC 7638 thumbprint (jkt) of a key.
    serve     A local HTTPS gateway: requests to a route's PREFIX go to its fixed
              upstream URL with a DPoP-bound token and a fresh proof (for SQL Server's
              sp_invoke_external_rest_endpoint, PowerShell, curl). Callers send the
              secret of the variable --caller-secret-env names in the header
              X-DpopKit-Gateway-Key (or --caller-auth client-cert --client-ca-file
              FILE). Listens on 127.0.0.1:8443 by default, with a
              self-signed certificate kept in --cert-dir (--print-cert prints it);
              --plain-http on loopback only. Options: --listen, --methods GET,POST,
              --tls-cert/--tls-key, --cert-name, --max-concurrency, --max-queue,
              --max-request-body, --no-access-log. Stops on SIGTERM / Ctrl-C after the
              requests in flight. Windows: --windows-service [--service-log FILE]
              in a service's binPath (the SCM's stop control stops it the same way).
              See README \"Gateway\" for the --config file.

REQUEST OPTIONS:
    --key FILE               DPoP private key (required): EC P-256 (ES256), EC P-384
                             (ES384), Ed25519 (EdDSA / Ed25519) or RSA of 2048 to 4096
                             bits (RS256 / PS256, whichever the server takes), as PEM
                             or DER (SEC1 for EC, PKCS#1 for RSA, PKCS#8, encrypted
                             PKCS#8) or as a JWK; P-521 and other curves are not
                             accepted. Or a key in a PKCS#11 token (EC P-256, P-384
                             or RSA):
                             pkcs11:token=T;object=K?module-path=/path/module.so
    --key-password P         Password of an encrypted key, or the token's user PIN
                             (or env DPOPKIT_KEY_PASSWORD)
    --client-id ID           OAuth client id                                  (required)
    --client-secret S        Client secret. Prefer the environment variable
                             DPOPKIT_CLIENT_SECRET: a secret on the command line is
                             visible to other users in `ps` and in shell history.
    --token-endpoint URL     The authorization server's token endpoint
    --issuer URL             The authorization server's issuer: the token endpoint
                             is discovered from its metadata, which also says which
                             DPoP algorithms it accepts (one of --token-endpoint and
                             --issuer is required)
    --scope S                Scope to request
    --audience A             `audience` form parameter of the token request
    --resource R             `resource` form parameter (RFC 8707)
    --auth-method M          client_secret_post (default), client_secret_basic or
                             private_key_jwt (a signed client assertion, no secret)
    --assertion-key FILE     (private_key_jwt) The key that signs the client assertion,
                             in the formats of --key (default: the DPoP key)
    --assertion-key-password P
                             Its password (or env DPOPKIT_ASSERTION_KEY_PASSWORD)
    --ca-file FILE           Trust only the CA certificates of this PEM file for https
                             (default: the bundled Mozilla roots)
    --proxy URL              Send requests through this proxy (http://host:port);
                             \"\" for none. Default: the http_proxy / https_proxy /
                             all_proxy / no_proxy environment, as curl reads it
    --allow-insecure-http    Allow a plain-http token endpoint (or issuer) on another
                             machine: the client secret or assertion then crosses the
                             network unencrypted. Plain http to localhost and
                             127.0.0.1 is always allowed.
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
    -H, --header 'Name: value'
                             Send this header on the request (repeatable), e.g.
                             -H 'Accept: application/json' -H 'Idempotency-Key: 42'.
                             Never sent to the token endpoint, nor after a redirect to
                             another origin. Authorization, DPoP, Host, Content-Length,
                             Transfer-Encoding and Connection are set by dpopkit.
    -i, --include            Print the status line and the response headers before
                             the body (on stdout)
    -o, --output FILE        Write the body of a 2xx response to FILE, byte for byte:
                             for PDFs, images and other binary bodies. A new file
                             (mode 0600) is renamed over FILE: a symbolic link at FILE
                             is replaced, not followed; a directory, FIFO or device is
                             refused. \"-\" is stdout.
    -X, --request METHOD     (request) The method
    --data BODY              (request) The request body: the text itself, @FILE for
                             the bytes of FILE (a regular file), or @- for standard
                             input; at most 64 MiB
    --content-type TYPE      (request) Content-Type of the body (or -H 'Content-Type: ...')

ENVIRONMENT:
    DPOPKIT_CLIENT_SECRET    The client secret (used when --client-secret is not given)
    DPOPKIT_KEY_PASSWORD     The key password or PIN (used when --key-password is not given)
    DPOPKIT_ASSERTION_KEY_PASSWORD
                             The password of the --assertion-key file
    DPOPKIT_PKCS11_MODULE    The PKCS#11 module when a pkcs11: URI has no module-path
    DPOPKIT_TOKEN_CACHE      The token cache directory (used when --token-cache is not given)

EXIT STATUS:
    0 success (2xx), 1 the server answered another HTTP status, 2 usage error,
    3 other errors (key, token endpoint, network, files).
    On failure the error (and the HTTP status) is printed to stderr.

FILES:
    Files read (--key, --assertion-key, --ca-file, a pkcs11: pin-source, --data @FILE)
    must be regular files: a FIFO, a device (/dev/zero) or a directory is refused, not
    waited on, and each kind has a size bound (keys 1 MiB, CA files 16 MiB, PIN files
    4096 bytes, bodies 64 MiB).

OUTPUT:
    Credentials a server echoes back (secret, token, proof) are shown as ****.
    Control characters from a server (escape sequences) are shown as \\x1b etc.
    on stderr, and on stdout when it is a terminal; a redirected stdout (or -o FILE)
    gets the body's bytes unchanged (but for masked credentials).
";

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
        "get" => with_parsed(rest, &[CLIENT_OPTS, REQUEST_OPTS], cmd_get),
        "request" => with_parsed(rest, &[CLIENT_OPTS, REQUEST_OPTS], cmd_request),
        "keygen" => with_parsed(rest, &[KEYGEN_OPTS], cmd_keygen),
        #[cfg(feature = "gateway")]
        "serve" => with_parsed(rest, &[serve::SERVE_OPTS, CLIENT_OPTS], serve::cmd_serve),
        #[cfg(not(feature = "gateway"))]
        "serve" => usage("this dpopkit was built without the gateway: build it with the cargo feature `gateway` (on by default)"),
        "jwk" => with_parsed(rest, &[KEY_OPTS], |p| cmd_key_info(p, false)),
        "jkt" => with_parsed(rest, &[KEY_OPTS], |p| cmd_key_info(p, true)),
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

fn with_parsed(args: &[String], specs: &[Spec], f: impl FnOnce(&Parsed) -> Outcome) -> Outcome {
    match parse(args, specs)? {
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
    if p.value("--data").is_some() || p.value("--content-type").is_some() || p.value("--request").is_some() {
        return usage("--data, --content-type and -X belong to 'request', not 'get': dpopkit request -X METHOD URL --data BODY");
    }
    send(p, "GET", url, None)
}

fn cmd_request(p: &Parsed) -> Outcome {
    let (positional_method, url) = match p.positional.as_slice() {
        [url] => (None, url),
        [method, url] => (Some(method.as_str()), url),
        _ => return usage("request takes a URL, with the METHOD before it or as -X METHOD"),
    };
    let method = match (positional_method, p.value("--request")) {
        (Some(a), Some(b)) if a != b => return usage(format!("two methods: '{a}' and -X '{b}'")),
        (Some(m), _) | (None, Some(m)) => m,
        (None, None) if p.value("--data").is_some() => "POST",
        (None, None) => "GET",
    };
    if p.value("--content-type").is_some() && p.value("--data").is_none() {
        return usage("--content-type needs --data");
    }
    let data = match p.value("--data") {
        None => None,
        Some("@-") => {
            // A pipe has no size to check first: read one byte past the bound, no further.
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(std::io::stdin().lock(), BODY_FILE.max + 1), &mut buf)
                .map_err(|e| other(format!("cannot read the body from standard input: {e}")))?;
            if buf.len() as u64 > BODY_FILE.max {
                return Err(other(format!(
                    "the body from standard input (--data @-) is larger than the {} bytes a body may have",
                    BODY_FILE.max
                )));
            }
            Some(buf)
        }
        Some(d) => match d.strip_prefix('@') {
            Some(path) => Some(std::mem::take(&mut *read_regular_file(Path::new(path), &BODY_FILE).map_err(|e| other(e.message))?)),
            None => Some(d.as_bytes().to_vec()),
        },
    };
    send(p, method, url, data.as_deref())
}

fn key_password(p: &Parsed) -> Option<Zeroizing<String>> {
    password_of(p, "--key-password", "DPOPKIT_KEY_PASSWORD")
}

fn password_of(p: &Parsed, option: &str, env: &str) -> Option<Zeroizing<String>> {
    p.value(option).map(|s| Zeroizing::new(s.to_string())).or_else(|| std::env::var(env).ok().map(Zeroizing::new)).filter(|s| !s.is_empty())
}

fn load_key(p: &Parsed) -> Result<EcKey, Failure> {
    let path = p.required("--key")?;
    let password = key_password(p);
    EcKey::load_file(Path::new(path), password.as_deref().map(String::as_str)).map_err(|e| other(e.message))
}

/// `-H 'Name: value'` as (name, value); the value may be a credential, so it is never shown.
fn header_arg(h: &str) -> Result<(&str, &str), Failure> {
    match h.split_once(':') {
        Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => Ok((name, value.trim_matches([' ', '\t']))),
        Some((name, _)) if !name.trim().is_empty() && !name.trim().contains(char::is_whitespace) => {
            usage(format!("-H '{}: ...': no space before the colon (it would not be a valid header name)", name.trim()))
        }
        _ => usage("-H needs the form 'Name: value', e.g. -H 'Accept: application/json'"),
    }
}

fn send(p: &Parsed, method: &str, url: &str, body: Option<&[u8]>) -> Outcome {
    // Check the whole command line before touching files or the network.
    p.required("--key")?;
    let client_id = p.required("--client-id")?;
    let private_key_jwt = auth_method_args(p)?;
    let secret = client_secret(p, private_key_jwt)?;
    let timeout = timeout_arg(p)?;
    let (content_type, headers) = header_args(p, body)?;
    let output = p.value("--output").filter(|o| *o != "-");
    if let Some(path) = output {
        check_output(Path::new(path))?;
    }

    // Secrets masked once more in everything printed (the library masks them already).
    let mut secret_list: Vec<&str> = secret.iter().map(|s| s.as_str()).collect();
    secret_list.extend(headers.iter().filter(|(n, _)| is_credential_header(n)).map(|(_, v)| *v).filter(|v| !v.is_empty()));
    let secrets = secret_list.as_slice();

    let client = HttpClient::new();
    configure_client(p, &client, &headers, ClientOptions { client_id, secret: secret.as_deref().map(String::as_str), timeout }, secrets)?;
    let result = client.request(Some(method), url, content_type.as_deref(), body);
    print_result(p, result, output, secrets)
}

/// What [`configure_client`] takes from the checked command line.
struct ClientOptions<'a> {
    client_id: &'a str,
    secret: Option<&'a str>,
    timeout: Option<Duration>,
}

/// Configures `client` from the request options: settings and request headers, the DPoP
/// and assertion keys, the AuthToken and the session log. Shared by `get`/`request` and
/// `serve --route`; `secrets` are masked in error texts.
fn configure_client(p: &Parsed, client: &HttpClient, headers: &[(&str, &str)], opts: ClientOptions<'_>, secrets: &[&str]) -> Outcome {
    configure(client, p, headers, opts.timeout, secrets)?;
    let key = load_key(p)?;
    client.set_dpop_key(Arc::new(key));
    if let Some(path) = p.value("--assertion-key") {
        let password = password_of(p, "--assertion-key-password", "DPOPKIT_ASSERTION_KEY_PASSWORD");
        let key = EcKey::load_file(Path::new(path), password.as_deref().map(String::as_str))
            .map_err(|e| other(format!("--assertion-key: {}", e.message)))?;
        client.set_client_assertion_key(Some(Arc::new(key)));
    }
    set_auth_token(client, p, opts.client_id, opts.secret, secrets)?;
    if let Some(log) = p.value("--session-log") {
        client.set_session_log(Some(Path::new(log))).map_err(|e| other(scrub(&e.message, secrets)))?;
    }
    Ok(())
}

/// The client id, the client secret and the timeout of a route (see [`route_client_options`]).
#[cfg(feature = "gateway")]
type RouteClient<'a> = (&'a str, Option<Zeroizing<String>>, Option<Duration>);

/// The request options that `serve --route` shares with `get`, checked: the client id, the
/// client secret (`None` for private_key_jwt) and the timeout.
#[cfg(feature = "gateway")]
fn route_client_options(p: &Parsed) -> Result<RouteClient<'_>, Failure> {
    p.required("--key")?;
    let client_id = p.required("--client-id")?;
    let private_key_jwt = auth_method_args(p)?;
    let secret = client_secret(p, private_key_jwt)?;
    Ok((client_id, secret, timeout_arg(p)?))
}

/// `--auth-method` and the options that go with it; true for private_key_jwt.
fn auth_method_args(p: &Parsed) -> Result<bool, Failure> {
    let token_endpoint = p.value("--token-endpoint");
    let issuer = p.value("--issuer");
    if token_endpoint.is_none() && issuer.is_none() {
        return usage("--token-endpoint (or --issuer, to discover it) is required");
    }
    let auth_method = p.value("--auth-method");
    let private_key_jwt = auth_method == Some("private_key_jwt");
    if let Some(m) = auth_method {
        if !matches!(m, "client_secret_post" | "client_secret_basic" | "private_key_jwt") {
            return usage(format!("--auth-method must be client_secret_post, client_secret_basic or private_key_jwt, not '{m}'"));
        }
    }
    if !private_key_jwt && p.value("--assertion-key").is_some() {
        return usage("--assertion-key goes with --auth-method private_key_jwt");
    }
    if p.value("--assertion-key-password").is_some() && p.value("--assertion-key").is_none() {
        return usage("--assertion-key-password goes with --assertion-key");
    }
    Ok(private_key_jwt)
}

/// The client secret: `--client-secret` or `DPOPKIT_CLIENT_SECRET`; none with private_key_jwt.
fn client_secret(p: &Parsed, private_key_jwt: bool) -> Result<Option<Zeroizing<String>>, Failure> {
    if private_key_jwt {
        if p.value("--client-secret").is_some() {
            return usage("--client-secret does not go with private_key_jwt: the client authenticates with a signed assertion");
        }
        return Ok(None);
    }
    let s = match p.value("--client-secret") {
        Some(s) => Zeroizing::new(s.to_string()),
        None => match std::env::var("DPOPKIT_CLIENT_SECRET") {
            Ok(s) => Zeroizing::new(s),
            Err(_) => {
                return usage(
                    "no client secret: set DPOPKIT_CLIENT_SECRET (recommended) or give --client-secret \
                     (or use --auth-method private_key_jwt)",
                );
            }
        },
    };
    if s.is_empty() {
        return usage("the client secret is empty");
    }
    Ok(Some(s))
}

fn timeout_arg(p: &Parsed) -> Result<Option<Duration>, Failure> {
    match p.value("--timeout-ms") {
        None => Ok(None),
        Some(t) => match t.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
            _ => usage(format!("--timeout-ms must be a positive number of milliseconds, not '{t}'")),
        },
    }
}

/// The content type (`--content-type` or `-H 'Content-Type: ...'`) and the other `-H` headers.
#[allow(clippy::type_complexity)]
fn header_args<'a>(p: &'a Parsed, body: Option<&[u8]>) -> Result<(Option<String>, Vec<(&'a str, &'a str)>), Failure> {
    let mut content_type = p.value("--content-type").map(str::to_string);
    let mut headers = Vec::new();
    for h in p.all("--header") {
        let (name, value) = header_arg(h)?;
        if name.eq_ignore_ascii_case("content-type") {
            if body.is_none() {
                return usage("-H 'Content-Type: ...' needs a body (request ... --data BODY)");
            }
            if content_type.replace(value.to_string()).is_some() {
                return usage("the Content-Type is given twice (--content-type and -H)");
            }
            continue;
        }
        headers.push((name, value));
    }
    Ok((content_type, headers))
}

/// Request headers and transport settings (timeout, CA file, proxy) on the client.
fn configure(client: &HttpClient, p: &Parsed, headers: &[(&str, &str)], timeout: Option<Duration>, secrets: &[&str]) -> Outcome {
    let fail = |e: dpopkit::core::Error| other(scrub(&e.message, secrets));
    for (name, value) in headers {
        match client.set_request_header(name, value) {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::InvalidArgument => return usage(format!("-H: {}", scrub(&e.message, secrets))),
            Err(e) => return Err(fail(e)),
        }
    }
    let mut settings = client.settings();
    if let Some(t) = timeout {
        settings.request_timeout = t;
        settings.connect_timeout = settings.connect_timeout.min(t);
    }
    if let Some(ca) = p.value("--ca-file") {
        settings.trust = load_ca_file(Path::new(ca)).map_err(|e| other(format!("--ca-file: {}", e.message)))?;
    }
    match p.value("--proxy") {
        None => {}
        Some("") => settings.proxy = ProxyChoice::None,
        Some(u) => settings.proxy = ProxyChoice::Url(u.to_string()),
    }
    match client.set_settings(settings) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::InvalidArgument => usage(scrub(&e.message, secrets)),
        Err(e) => Err(fail(e)),
    }
}

/// The AuthToken made of the options; its errors name the options, not the members.
fn set_auth_token(client: &HttpClient, p: &Parsed, client_id: &str, secret: Option<&str>, secrets: &[&str]) -> Outcome {
    let mut auth = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        auth.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    };
    put("client_id", client_id);
    if let Some(s) = secret {
        put("client_secret", s);
    }
    for (opt, member) in [
        ("--token-endpoint", "token_endpoint"),
        ("--issuer", "issuer"),
        ("--scope", "scope"),
        ("--audience", "audience"),
        ("--resource", "resource"),
        ("--auth-method", "client_auth_method"),
    ] {
        if let Some(v) = p.value(opt) {
            put(member, v);
        }
    }
    if p.flag("--allow-insecure-http") {
        put("allow_insecure_http", "true");
    }
    let token_cache = p.value("--token-cache").map(str::to_string).or_else(|| std::env::var("DPOPKIT_TOKEN_CACHE").ok());
    if let Some(dir) = token_cache.as_deref().filter(|d| !d.is_empty()) {
        create_private_dir(Path::new(dir))?;
        put("token_cache_dir", dir);
    }
    let auth_json = Zeroizing::new(serde_json::Value::Object(auth).to_string());
    client.set_auth_token(&auth_json).map_err(|e| {
        let mut f = other(scrub(&e.message, secrets));
        if let Failure::Error(msg, _) = &mut f {
            *msg = msg.replace("AuthToken \"token_cache_dir\"", "the token cache directory (--token-cache or DPOPKIT_TOKEN_CACHE)");
            if msg.contains("\"allow_insecure_http\"") {
                msg.push_str(" (on the command line: --allow-insecure-http)");
            }
        }
        f
    })
}

/// Prints the response (or writes it to `--output`), or turns the error into the exit.
/// The library masks the call's credentials in everything it hands back (error texts,
/// bodies, headers); they are masked here once more, and control characters are
/// neutralised in everything from the server that reaches a terminal.
fn print_result(p: &Parsed, result: dpopkit::core::Result<ResponseInfo>, output: Option<&str>, secrets: &[&str]) -> Outcome {
    let terminal = std::io::stdout().is_terminal();
    match result {
        Ok(resp) => {
            if p.flag("--include") {
                write_stdout(head(&resp, secrets, terminal).as_bytes())?;
            }
            match output {
                Some(path) => write_file(Path::new(path), &resp.body),
                None if terminal => write_stdout(for_terminal(&scrub(&String::from_utf8_lossy(&resp.body), secrets)).as_bytes()),
                None => write_stdout(&resp.body),
            }
        }
        Err(e) => {
            let status = e.status();
            let mut msg = scrub(&e.message, secrets);
            if status != 0 && !msg.contains(&status.to_string()) {
                msg.push_str(&format!(" (HTTP status {status})"));
            }
            if e.kind == ErrorKind::HttpStatus {
                if let Some(r) = &e.response {
                    if p.flag("--include") {
                        write_stdout(head(r, secrets, terminal).as_bytes())?;
                    }
                    let text = String::from_utf8_lossy(&r.body);
                    let shown: String = text.chars().take(MAX_ERROR_BODY).collect();
                    if !shown.trim().is_empty() {
                        msg.push_str(&format!("\nresponse body: {}", scrub(shown.trim_end(), secrets)));
                    }
                }
                return Err(Failure::Error(msg, EXIT_HTTP_STATUS));
            }
            Err(other(msg))
        }
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
        if !matches!(alg, "ES256" | "ES384" | "RS256" | "PS256") {
            return usage(format!("--alg with --pkcs11 must be ES256, ES384, RS256 or PS256, not '{alg}'"));
        }
        if p.value("--bits").is_some() {
            return usage("--bits does not go with --pkcs11: a token RSA key is created with 2048 bits");
        }
        let key = EcKey::generate_in_token(uri, pin.as_deref().map(String::as_str), alg).map_err(|e| other(e.message))?;
        return write_stdout(format!("{}\n{}\n", key.public_jwk(), key.jkt()).as_bytes());
    }
    if p.value("--key-password").is_some() {
        return usage("--key-password goes with --pkcs11 (a key file is written unencrypted, mode 0600)");
    }
    let alg = match p.value("--alg").unwrap_or("ES256") {
        a @ ("ES256" | "ES384" | "EdDSA" | "RS256" | "PS256") => a,
        "Ed25519" => "EdDSA",
        other => {
            return usage(format!(
                "--alg must be ES256 (EC P-256), ES384 (EC P-384), EdDSA or Ed25519 (Ed25519), RS256 or PS256 (RSA), not '{other}'"
            ));
        }
    };
    let key = match (p.value("--bits"), alg) {
        (None, _) => EcKey::generate_alg(alg),
        (Some(bits), "RS256" | "PS256") => match bits.parse::<usize>() {
            Ok(n) if (2048..=4096).contains(&n) => EcKey::generate_rsa(n, alg),
            _ => return usage(format!("--bits must be a number from 2048 to 4096, not '{bits}'")),
        },
        (Some(_), _) => return usage("--bits goes with --alg RS256 or PS256 (an RSA key)"),
    }
    .map_err(|e| other(e.message))?;
    let mut data: Zeroizing<String> = if p.flag("--jwk") {
        key.to_private_jwk().map_err(|e| other(e.message))?
    } else {
        key.to_pkcs8_pem().map_err(|e| other(e.message))?
    };
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

/// Creates the token cache directory when it does not exist (one level, mode 0700 on unix,
/// a DACL for this user only on Windows); the library checks its owner and mode.
fn create_private_dir(dir: &Path) -> Outcome {
    #[cfg(windows)]
    let created = dpopkit::core::sys_windows::create_private_dir(dir);
    #[cfg(not(windows))]
    let created = {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)
    };
    match created {
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
