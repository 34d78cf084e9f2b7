//! Arguments: the options of each command, parsed by hand, and the failures they end in.

use super::*;

/// Why the program stops early.
pub(super) enum Failure {
    /// Bad command line: message, exit 2.
    Usage(String),
    /// Anything else: message, exit code.
    Error(String, u8),
}

pub(super) type Outcome = Result<(), Failure>;

pub(super) fn usage<T>(msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure::Usage(msg.into()))
}

pub(super) fn other(msg: impl Into<String>) -> Failure {
    Failure::Error(msg.into(), EXIT_ERROR)
}

/// How an option takes its value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Arity {
    /// A flag: no value.
    Flag,
    /// One value, at most once.
    Once,
    /// One value each time; may be given again (`-H`).
    Many,
}
use Arity::{Flag, Many, Once};

/// The options a subcommand accepts: name and arity.
pub(super) type Spec = &'static [(&'static str, Arity)];

/// Short and alternative spellings of long options (curl's, where they exist).
pub(super) const ALIASES: &[(&str, &str)] =
    &[("-H", "--header"), ("-i", "--include"), ("-o", "--output"), ("-X", "--request"), ("-d", "--data")];

/// The options that set up a client (key, AuthToken, transport): `get`, `request` and the
/// `--route` form of `serve` take them all.
pub(super) const CLIENT_OPTS: Spec = &[
    ("--key", Once),
    ("--key-password", Once),
    ("--client-id", Once),
    ("--client-secret", Once),
    ("--token-endpoint", Once),
    ("--issuer", Once),
    ("--scope", Once),
    ("--audience", Once),
    ("--resource", Once),
    ("--auth-method", Once),
    ("--assertion-key", Once),
    ("--assertion-key-password", Once),
    ("--ca-file", Once),
    ("--proxy", Once),
    ("--allow-insecure-http", Flag),
    ("--session-log", Once),
    ("--timeout-ms", Once),
    ("--token-cache", Once),
];

/// What `get` and `request` take besides [`CLIENT_OPTS`].
pub(super) const REQUEST_OPTS: Spec =
    &[("--header", Many), ("--include", Flag), ("--output", Once), ("--request", Once), ("--data", Once), ("--content-type", Once)];
pub(super) const KEYGEN_OPTS: Spec =
    &[("--out", Once), ("--jwk", Flag), ("--pkcs11", Once), ("--key-password", Once), ("--alg", Once), ("--bits", Once)];
pub(super) const KEY_OPTS: Spec = &[("--key", Once), ("--key-password", Once)];

#[derive(Default)]
pub(super) struct Parsed {
    pub(super) positional: Vec<String>,
    pub(super) values: Vec<(&'static str, String)>,
    pub(super) flags: Vec<&'static str>,
}

impl Parsed {
    pub(super) fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.values.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }

    pub(super) fn required(&self, name: &str) -> Result<&str, Failure> {
        match self.value(name) {
            Some(v) => Ok(v),
            None => usage(format!("{name} is required")),
        }
    }
}

/// Parses `--name value`, `--name=value`, `-H value`, flags and positionals; `--` ends the
/// options. Returns `None` when help was asked for.
/// Parses `args` against the options of every spec in `specs`.
pub(super) fn parse(args: &[String], specs: &[Spec]) -> Result<Option<Parsed>, Failure> {
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
        let (given, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let long = ALIASES.iter().find(|(short, _)| *short == given).map_or(given, |(_, long)| *long);
        let Some(&(name, arity)) = specs.iter().flat_map(|s| s.iter()).find(|(n, _)| *n == long) else {
            return usage(format!("unknown option '{given}'"));
        };
        if arity == Flag {
            if inline.is_some() {
                return usage(format!("{given} takes no value"));
            }
            p.flags.push(name);
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match it.next() {
                Some(v) => v.clone(),
                None => return usage(format!("{given} needs a value")),
            },
        };
        if arity == Once && p.value(name).is_some() {
            return usage(format!("{given} is given twice"));
        }
        p.values.push((name, value));
    }
    Ok(Some(p))
}
