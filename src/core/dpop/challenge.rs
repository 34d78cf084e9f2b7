//! `WWW-Authenticate` parsing (RFC 9110 §11.6.1), enough to find a DPoP challenge's params.

/// One challenge: its scheme and its auth-params (names lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: Vec<(String, String)>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses a header value into challenges. Malformed input yields what could be read,
/// never a panic.
pub fn parse(value: &str) -> Vec<Challenge> {
    let s: Vec<char> = value.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == ' ' || s[*i] == '\t') {
            *i += 1;
        }
    };
    let read_token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && is_tchar(s[*i]) {
            *i += 1;
        }
        s[start..*i].iter().collect::<String>()
    };
    while i < s.len() {
        skip_ws(&mut i);
        if i < s.len() && s[i] == ',' {
            i += 1;
            continue;
        }
        let tok = read_token(&mut i);
        if tok.is_empty() {
            i += 1; // not a token char: skip it
            continue;
        }
        let mut j = i;
        skip_ws(&mut j);
        let is_param = j < s.len() && s[j] == '=' && !(j + 1 < s.len() && s[j + 1] == '=') && !out.is_empty();
        if is_param {
            i = j + 1;
            skip_ws(&mut i);
            let val = if i < s.len() && s[i] == '"' {
                i += 1;
                let mut v = String::new();
                while i < s.len() && s[i] != '"' {
                    if s[i] == '\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1;
                v
            } else {
                read_token(&mut i)
            };
            if let Some(c) = out.last_mut() {
                c.params.push((tok.to_ascii_lowercase(), val));
            }
        } else {
            out.push(Challenge { scheme: tok, params: Vec::new() });
            // A token68 after the scheme and a space (e.g. `Negotiate abc==`): skip it. It is
            // token68 only if '=' appears nowhere but at its end (else it is a param).
            if i < s.len() && (s[i] == ' ' || s[i] == '\t') {
                let mut k = i;
                skip_ws(&mut k);
                let start = k;
                while k < s.len() && (is_tchar(s[k]) || s[k] == '/') {
                    k += 1;
                }
                let body_end = k;
                while k < s.len() && s[k] == '=' {
                    k += 1;
                }
                let at_end = k >= s.len() || s[k] == ',' || s[k] == ' ' || s[k] == '\t';
                if body_end > start && at_end {
                    i = k;
                }
            }
        }
    }
    out
}

/// The `error` param of the first DPoP challenge, if any.
pub fn dpop_error(header_values: &[&str]) -> Option<String> {
    header_values
        .iter()
        .flat_map(|v| parse(v))
        .find(|c| c.scheme.eq_ignore_ascii_case("dpop"))
        .and_then(|c| c.param("error").map(str::to_string))
}

/// The `algs` param of the first DPoP challenge (RFC 9449 §7.1: the algorithms the
/// server accepts, space-separated), if any.
pub fn dpop_algs(header_values: &[&str]) -> Option<Vec<String>> {
    header_values
        .iter()
        .flat_map(|v| parse(v))
        .find(|c| c.scheme.eq_ignore_ascii_case("dpop"))
        .and_then(|c| c.param("algs").map(|a| a.split_ascii_whitespace().take(32).map(str::to_string).collect::<Vec<_>>()))
        .filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpop_nonce_challenge() {
        let v = r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#;
        assert_eq!(dpop_error(&[v]).as_deref(), Some("use_dpop_nonce"));
        let c = parse(v);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("error_description"), Some("Resource server requires nonce in DPoP proof"));
    }

    #[test]
    fn several_challenges_and_odd_input() {
        let v = r#"Bearer realm="x", error="invalid_token", DPoP algs="ES256 PS256", error=invalid_token"#;
        let c = parse(v);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].scheme, "DPoP");
        assert_eq!(c[1].param("algs"), Some("ES256 PS256"));
        assert_eq!(dpop_error(&[v]).as_deref(), Some("invalid_token"));
        assert_eq!(dpop_error(&["Negotiate abc==", "dpop error=\"a\\\"b\""]).as_deref(), Some("a\"b"));
        for junk in ["", "=", "\"", "DPoP error=\"unterminated", ",,,", "DPoP ==== ,", "é DPoP error=x"] {
            let _ = parse(junk);
        }
        assert_eq!(parse("Negotiate abc== , DPoP error=\"x\"")[1].param("error"), Some("x"));
        assert_eq!(parse("Basic, DPoP algs=\"ES256\"")[1].param("algs"), Some("ES256"));
        assert_eq!(dpop_error(&["Bearer error=\"use_dpop_nonce\""]), None);
        assert_eq!(dpop_algs(&[v]), Some(vec!["ES256".to_string(), "PS256".to_string()]));
        assert_eq!(dpop_algs(&["DPoP error=\"x\""]), None);
        assert_eq!(dpop_algs(&["DPoP algs=\" \""]), None);
    }
}
