//! The `pkcs11:` URI (RFC 7512): parsing, the PIN sources, and how a URI is shown.

use super::*;

/// A parsed `pkcs11:` URI (RFC 7512). `Debug` and [`Pkcs11Uri::shown`] never show the PIN.
#[derive(Default, Clone)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub slot_id: Option<u64>,
    pub module_path: Option<String>,
    pub pin_source: Option<String>,
    pub(super) pin_value: Option<Zeroizing<String>>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// Whether `text` is a PKCS#11 URI (it starts with `pkcs11:`, any case).
pub fn is_uri(text: &str) -> bool {
    let t = text.trim_start();
    t.len() >= 7 && t.is_char_boundary(7) && t[..7].eq_ignore_ascii_case("pkcs11:")
}

pub(super) fn bad_uri(msg: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("invalid PKCS#11 URI: {} (form: pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so)", msg.into()),
    )
}

pub(super) fn pct_decode(value: &str, name: &str) -> Result<Vec<u8>> {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => out.push(v),
                None => return Err(bad_uri(format!("'{name}' has a bad percent-escape (use %XX with two hex digits)"))),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

pub(super) fn pct_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &c in bytes {
        if c.is_ascii_alphanumeric() || b"-._~:/@!$'()*+,".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

impl Pkcs11Uri {
    /// Parses an RFC 7512 URI. Path attributes: `token`, `manufacturer`, `serial`, `model`,
    /// `object`, `id`, `slot-id`, `type` (only `private`); query attributes: `module-path`,
    /// `pin-value`, `pin-source`. Values are percent-decoded. Unknown or unsupported
    /// attributes are refused rather than ignored: an ignored filter could pick another key.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() > MAX_URI {
            return Err(bad_uri(format!("{} bytes, more than {MAX_URI}", text.len())));
        }
        if !is_uri(text) {
            return Err(bad_uri("it does not start with 'pkcs11:'"));
        }
        let rest = &text[7..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        // A query that holds a pin-value, in any form, shows none of its attributes in an error
        // text: a PIN written with a bare '&' spills into the next attribute. (It cannot spill
        // into the path: the path ends at the first '?'.)
        let hide_query = holds_pin_value(query);
        let mut uri = Pkcs11Uri::default();
        let mut seen: Vec<String> = Vec::new();
        for (part, sep, in_query) in [(path, ';', false), (query, '&', true)] {
            let hide = in_query && hide_query;
            for attr in part.split(sep).filter(|a| !a.is_empty()) {
                let split = attr.split_once('=');
                // Only `pin-value=` in the query is a pin-value; anything else that spells it
                // (no '=', a ':' or a space, percent-encoded, in the path, inside another
                // attribute's value) is refused without showing any of it.
                let well_formed = in_query && split.is_some_and(|(n, _)| n.eq_ignore_ascii_case("pin-value"));
                if !well_formed && holds_pin_value(attr) {
                    return Err(malformed_pin_value());
                }
                let Some((name, value)) = split else {
                    return Err(bad_uri(format!("{} has no '='", echo(hide, attr))));
                };
                let name = name.to_ascii_lowercase();
                if seen.contains(&name) {
                    return Err(bad_uri(format!("{} is given twice", echo(hide, &name))));
                }
                seen.push(name.clone());
                uri.set(&name, value, in_query, hide)?;
            }
        }
        if uri.pin_value.is_some() && uri.pin_source.is_some() {
            return Err(bad_uri("it has both pin-value and pin-source: give the PIN one way"));
        }
        Ok(uri)
    }

    pub(super) fn set(&mut self, name: &str, value: &str, in_query: bool, hide: bool) -> Result<()> {
        let bytes = Zeroizing::new(pct_decode(value, name)?);
        let text = || {
            std::str::from_utf8(&bytes).map(str::to_string).map_err(|_| bad_uri(format!("'{name}' is not UTF-8 after percent-decoding")))
        };
        let misplaced = |want_query: bool| {
            if want_query != in_query {
                let (is, should) = if in_query { ("query (after '?')", "path") } else { ("path", "query (after '?')") };
                Err(bad_uri(format!("{} is in the {is}; RFC 7512 puts it in the {should}", echo(hide, name))))
            } else {
                Ok(())
            }
        };
        match name {
            "token" | "manufacturer" | "serial" | "model" | "object" | "id" | "slot-id" | "type" => misplaced(false)?,
            "module-path" | "pin-value" | "pin-source" => misplaced(true)?,
            _ => {}
        }
        match name {
            "token" => self.token = Some(text()?),
            "manufacturer" => self.manufacturer = Some(text()?),
            "serial" => self.serial = Some(text()?),
            "model" => self.model = Some(text()?),
            "object" => self.object = Some(text()?),
            "id" => self.id = Some(bytes.to_vec()),
            "slot-id" => {
                let t = text()?;
                self.slot_id = Some(t.parse().map_err(|_| bad_uri(format!("slot-id {} is not a decimal number", echo(hide, &t))))?);
            }
            "type" => {
                let t = text()?;
                if t != "private" {
                    let shown = if hide { echo(hide, &t) } else { format!("={}", shorten(&t)) };
                    return Err(bad_uri(format!(
                        "type{shown} names no private key: DPoP signs with the private key, use type=private or leave type out"
                    )));
                }
            }
            "module-path" => self.module_path = Some(text()?),
            "pin-value" => {
                let t = std::str::from_utf8(&bytes).map_err(|_| bad_uri("'pin-value' is not UTF-8 after percent-decoding"))?;
                self.pin_value = Some(Zeroizing::new(t.to_string()));
            }
            "pin-source" => self.pin_source = Some(text()?),
            "module-name" => return Err(bad_uri("module-name is not supported: give the full path as module-path")),
            "library-manufacturer" | "library-description" | "library-version" | "slot-description" | "slot-manufacturer" => {
                return Err(bad_uri(format!("'{name}' is not supported: select the token with token=, serial= or slot-id=")));
            }
            other => {
                return Err(bad_uri(format!(
                    "unknown attribute {} (supported: token, manufacturer, serial, model, object, id, slot-id, type; \
                     ?module-path, pin-value, pin-source)",
                    echo(hide, other)
                )));
            }
        }
        Ok(())
    }

    /// The URI as shown in texts: the selecting attributes and the module, never a PIN.
    pub fn shown(&self) -> String {
        let mut path = Vec::new();
        let mut put = |n: &str, v: &Option<String>| {
            if let Some(v) = v {
                path.push(format!("{n}={}", pct_encode(v.as_bytes())));
            }
        };
        put("token", &self.token);
        put("manufacturer", &self.manufacturer);
        put("serial", &self.serial);
        put("model", &self.model);
        put("object", &self.object);
        if let Some(id) = &self.id {
            path.push(format!("id={}", id.iter().map(|b| format!("%{b:02X}")).collect::<String>()));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        let mut s = format!("pkcs11:{}", path.join(";"));
        let mut query = Vec::new();
        if let Some(m) = &self.module_path {
            query.push(format!("module-path={}", pct_encode(m.as_bytes())));
        }
        if self.pin_value.is_some() {
            query.push("pin-value=****".to_string());
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source={}", pct_encode(p.as_bytes())));
        }
        if !query.is_empty() {
            s.push('?');
            s.push_str(&query.join("&"));
        }
        shorten(&s)
    }

    /// The PIN: the caller's password when given (not empty), else `pin-value`, else the
    /// first line of the `pin-source` file; `None` when there is none.
    pub(super) fn pin(&self, password: Option<&str>) -> Result<Option<Zeroizing<String>>> {
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            return Ok(Some(Zeroizing::new(p.to_string())));
        }
        if let Some(p) = &self.pin_value {
            return Ok(Some(p.clone()));
        }
        let Some(source) = &self.pin_source else { return Ok(None) };
        let path = source.strip_prefix("file://").or_else(|| source.strip_prefix("file:")).unwrap_or(source);
        let shown = shorten(path);
        let data = crate::core::fsread::read_regular_file(Path::new(path), &crate::core::fsread::PIN_FILE)?;
        let text = std::str::from_utf8(&data)
            .map_err(|_| Error::new(ErrorKind::FileIo, format!("the PIN file (pin-source) '{shown}' is not UTF-8 text")))?;
        let line = text.lines().next().unwrap_or("");
        Ok(Some(Zeroizing::new(line.to_string())).filter(|p| !p.is_empty()))
    }

    /// The module to load: `module-path`, else `DPOPKIT_PKCS11_MODULE`. When the variable is
    /// set, it is the only module a process may load (an administrator's pin, so that a URI
    /// from a less trusted caller cannot make the process load another library): a
    /// `module-path` that does not name the same file is refused, and the file loaded is
    /// always the variable's, resolved once ([`load_module`] loads exactly the canonical path
    /// it returns). The URI's path is only compared, never loaded: a symbolic link in it that
    /// someone flips between the comparison and the load cannot change what is loaded.
    pub(super) fn module(&self) -> Result<PathBuf> {
        let env = std::env::var_os(MODULE_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let chosen = match (&self.module_path, &env) {
            (Some(m), Some(e)) => {
                let same =
                    Path::new(m) == e.as_path() || matches!((std::fs::canonicalize(m), std::fs::canonicalize(e)), (Ok(a), Ok(b)) if a == b);
                if !same {
                    return err(
                        ErrorKind::InvalidArgument,
                        format!(
                            "the URI names the PKCS#11 module '{}', but {MODULE_ENV} allows only '{}': leave module-path \
                             out of the URI or change {MODULE_ENV}",
                            shorten(m),
                            shorten(&e.display().to_string())
                        ),
                    );
                }
                e.clone()
            }
            (Some(m), None) => PathBuf::from(m),
            (None, Some(e)) => e.clone(),
            (None, None) => {
                return err(
                    ErrorKind::InvalidArgument,
                    format!(
                        "no PKCS#11 module: add ?module-path=/path/to/the/vendor/module to the URI or set {MODULE_ENV} \
                         (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
                    ),
                );
            }
        };
        if !chosen.is_absolute() {
            let whose = if env.is_some() { MODULE_ENV } else { "module-path" };
            return err(
                ErrorKind::InvalidArgument,
                format!(
                    "the PKCS#11 module path '{}' ({whose}) is not absolute: give the full path, so that no library \
                     search order can pick another file",
                    shorten(&chosen.display().to_string())
                ),
            );
        }
        Ok(chosen)
    }
}

pub(super) fn shorten_attr(a: &str) -> String {
    let mut end = a.len().min(40);
    while !a.is_char_boundary(end) {
        end -= 1;
    }
    a[..end].to_string()
}

/// A piece of a URI for an error text, quoted; nothing of it when the URI holds a PIN.
pub(super) fn echo(hide: bool, piece: &str) -> String {
    if hide {
        "(an attribute not shown because the URI holds a pin-value: percent-encode '&', ';' and '?' in a PIN as %26, \
         %3B and %3F)"
            .to_string()
    } else {
        format!("'{}'", shorten_attr(piece))
    }
}

pub(super) fn malformed_pin_value() -> Error {
    bad_uri(
        "it holds a malformed pin-value (not shown, as it holds the PIN): write it as ?pin-value=PIN in the query \
         (after the path and '?', separated from other query attributes by '&', with '&', ';', '?', '%' and spaces \
         in the PIN percent-encoded), or pass the PIN as the password argument",
    )
}

/// Whether `text` spells `pin-value` in any way: any case, any punctuation or spaces
/// between the letters, percent-encoded (up to four times).
pub(super) fn holds_pin_value(text: &str) -> bool {
    let mut bytes = Zeroizing::new(text.as_bytes().to_vec());
    for _ in 0..5 {
        let squeezed: Zeroizing<Vec<u8>> =
            Zeroizing::new(bytes.iter().filter(|b| b.is_ascii_alphanumeric()).map(u8::to_ascii_lowercase).collect());
        if squeezed.windows(8).any(|w| w == b"pinvalue") {
            return true;
        }
        let mut decoded = Zeroizing::new(Vec::with_capacity(bytes.len()));
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(v)) => {
                    decoded.push(v);
                    i += 3;
                }
                (b, _) => {
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        if *decoded == *bytes {
            break;
        }
        bytes = decoded;
    }
    false
}

/// Refuses a key name that is not a `pkcs11:` URI but holds a pin-value (a misspelt
/// scheme, `pkcs11;token=...`), without showing it: it would otherwise be shown as a path.
pub fn refuse_misspelt_uri(text: &str) -> Result<()> {
    if !is_uri(text) && holds_pin_value(text) {
        return err(
            ErrorKind::InvalidArgument,
            "the key is named by a text that holds a pin-value but does not start with 'pkcs11:' (not shown, as it \
             holds a PIN): write pkcs11:token=LABEL;object=KEY?pin-value=PIN, or pass the PIN as the password",
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The process-wide registry
// ---------------------------------------------------------------------------------------
