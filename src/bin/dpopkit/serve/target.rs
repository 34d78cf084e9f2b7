//! Where a caller's request goes: only to a configured route, and only below its upstream
//! base URL. The request target is checked as received, before any routing: anything that
//! could make the upstream see another path than the one checked here is refused (400),
//! not "normalised" — a gateway and an upstream that normalise differently are how open
//! relays and path-confusion bypasses happen.

/// Why a request target is refused; the text goes to the caller (400).
pub fn check_target(method: &str, scheme_or_authority: bool, path: &str, query: Option<&str>) -> Result<(), String> {
    if method.eq_ignore_ascii_case("CONNECT") {
        return Err("CONNECT is not accepted: this gateway forwards requests to fixed routes, it opens no tunnels".into());
    }
    if scheme_or_authority {
        return Err(
            "absolute-form request targets (http://host/...) are not accepted: send the path only; the upstream of each route is fixed"
                .into(),
        );
    }
    if !path.starts_with('/') {
        return Err("the request target must be a path that starts with '/'".into());
    }
    let bad_byte = |b: u8| b.is_ascii_control() || b == b' ' || b == b'\\' || b == b'#' || b >= 0x80;
    if path.bytes().any(bad_byte) || query.is_some_and(|q| q.bytes().any(|b| b.is_ascii_control() || b == b'#')) {
        return Err("the path holds a backslash, a control character or a byte that must be percent-encoded".into());
    }
    if path.contains("//") {
        return Err("the path holds an empty segment ('//'), which some servers read as another path".into());
    }
    let lower = path.to_ascii_lowercase();
    for (enc, what) in [
        ("%2e", "a percent-encoded dot"),
        ("%2f", "a percent-encoded slash"),
        ("%5c", "a percent-encoded backslash"),
        ("%00", "a NUL"),
        ("%25", "a percent-encoded percent sign (double encoding)"),
    ] {
        if lower.contains(enc) {
            return Err(format!("the path holds {what} ({enc}), which the upstream could decode into another path"));
        }
    }
    // The path as an upstream decodes it: every '%' starts an escape of two hex digits
    // (`%u002e` is a dot to IIS), the bytes are UTF-8 (an overlong `%c0%ae` is a dot to
    // older Java and IIS decoders), no character that compatibility normalisation (NFKC)
    // turns into '.', '/' or '\\', and the '..' check below runs on it (`..%3b` is `..;`,
    // which Tomcat and Spring read as `..`).
    let Some(decoded) = percent_decoded(path) else {
        return Err("the path holds a '%' that is not followed by two hex digits".into());
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Err("the path's percent-encoded bytes are not UTF-8 (an overlong form such as %c0%ae is a dot to some decoders)".into());
    };
    if decoded
        .chars()
        .any(|c| matches!(c, '\u{2024}' | '\u{2025}' | '\u{2026}' | '\u{FE52}' | '\u{FF0E}' | '\u{FF0F}' | '\u{FE68}' | '\u{FF3C}'))
    {
        return Err(
            "the path holds a character that Unicode normalisation turns into '.', '/' or '\\' (a full-width dot or slash, a dot leader)"
                .into(),
        );
    }
    for seg in decoded.split('/') {
        // `..;x` is `..` to Tomcat and others (path parameters).
        let bare = seg.split(';').next().unwrap_or("");
        if !bare.is_empty() && bare.bytes().all(|b| b == b'.') {
            return Err("the path holds a '.' or '..' segment".into());
        }
    }
    Ok(())
}

/// `path` with its `%XX` escapes decoded, or `None` if a '%' is not followed by two hex digits.
fn percent_decoded(path: &str) -> Option<Vec<u8>> {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let (hi, lo) = (b.get(i + 1).copied().and_then(hex)?, b.get(i + 2).copied().and_then(hex)?);
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The route for `path`: the longest prefix that `path` starts with, or the prefix without
/// its final '/' exactly. Returns the route's index and the rest of the path after the prefix.
pub fn route_for<'p>(prefixes: &[&str], path: &'p str) -> Option<(usize, &'p str)> {
    let mut best: Option<(usize, &str, usize)> = None;
    for (i, prefix) in prefixes.iter().enumerate() {
        let rest = if let Some(r) = path.strip_prefix(prefix) {
            r
        } else if path == prefix.trim_end_matches('/') {
            ""
        } else {
            continue;
        };
        if best.is_none_or(|(_, _, len)| prefix.len() > len) {
            best = Some((i, rest, prefix.len()));
        }
    }
    best.map(|(i, rest, _)| (i, rest))
}

/// The upstream URL: the base (ends with '/') + the rest of the path + the query.
pub fn upstream_url(base: &str, rest: &str, query: Option<&str>) -> String {
    let mut url = String::with_capacity(base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
    url.push_str(base);
    url.push_str(rest);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// A `Location` of the upstream as the caller should see it: one under the route's
/// upstream base (absolute URL, or absolute path on that origin) becomes the same place
/// under the route's prefix (as a reverse proxy's `ProxyPassReverse`); anything else stays
/// as it is (the gateway follows no redirect, to any origin).
pub fn caller_location(base: &str, prefix: &str, location: &str) -> Option<String> {
    let origin_end = base.find("://").map(|i| i + 3).and_then(|i| base[i..].find('/').map(|j| i + j))?;
    let (origin, base_path) = base.split_at(origin_end);
    let rest = if let Some(r) = location.strip_prefix(base) {
        r
    } else if location.len() >= origin.len()
        && location[..origin.len()].eq_ignore_ascii_case(origin)
        && location[origin.len()..].starts_with(base_path)
    {
        &location[origin.len() + base_path.len()..]
    } else if location.starts_with('/') && !location.starts_with("//") {
        location.strip_prefix(base_path)?
    } else {
        return None;
    };
    Some(format!("{prefix}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_are_refused() {
        for path in [
            "/orders/../admin",
            "/orders/..",
            "/orders/%2e%2e/admin",
            "/orders/%2E%2e/admin",
            "/orders/.%2e/admin",
            "/orders/a%2fb",
            "/orders/a%2F..%2Fb",
            "/orders/a%5c..%5cb",
            "/orders/a\\..\\b",
            "/orders//evil.example/x",
            "//evil.example/orders/",
            "/orders/./x",
            "/orders/..;/admin",
            "/orders/%252e%252e/admin",
            "/orders/a%00b",
            "orders/x",
            "/orders/..%3b/admin",
            "/orders/%u002e%u002e/admin",
            "/orders/%c0%ae%c0%ae/admin",
            "/orders/%ef%bc%8e%ef%bc%8e/admin",
            "/orders/a%ef%bc%8fb",
            "/orders/a%",
            "/orders/a%4",
            "/orders/a%zz",
        ] {
            assert!(check_target("GET", false, path, None).is_err(), "{path}");
        }
        assert!(check_target("CONNECT", false, "/orders/", None).is_err());
        assert!(check_target("GET", true, "/orders/", None).is_err());
        for path in
            ["/orders/items", "/orders/items/42", "/orders/a.b/c..d", "/orders/%20x", "/orders/", "/orders/caf%C3%A9", "/orders/a;v=1"]
        {
            assert!(check_target("GET", false, path, Some("a=1&b=%2F")).is_ok(), "{path}");
        }
    }

    #[test]
    fn the_longest_prefix_wins_and_the_rest_is_appended() {
        let prefixes = ["/orders/", "/orders/v2/", "/billing/"];
        assert_eq!(route_for(&prefixes, "/orders/items"), Some((0, "items")));
        assert_eq!(route_for(&prefixes, "/orders/v2/items"), Some((1, "items")));
        assert_eq!(route_for(&prefixes, "/orders"), Some((0, "")));
        assert_eq!(route_for(&prefixes, "/ordersX/items"), None);
        assert_eq!(route_for(&prefixes, "/other/"), None);
        assert_eq!(upstream_url("https://api.example.com/v1/", "items", Some("x=1")), "https://api.example.com/v1/items?x=1");
        let base = "https://api.example.com/v1/";
        assert_eq!(caller_location(base, "/orders/", "/v1/items/7").as_deref(), Some("/orders/items/7"));
        assert_eq!(caller_location(base, "/orders/", "https://api.example.com/v1/items/7?x=1").as_deref(), Some("/orders/items/7?x=1"));
        assert_eq!(caller_location(base, "/orders/", "HTTPS://API.example.com/v1/x").as_deref(), Some("/orders/x"));
        assert_eq!(caller_location(base, "/orders/", "/other/7"), None);
        assert_eq!(caller_location(base, "/orders/", "https://evil.example/v1/x"), None);
        assert_eq!(caller_location(base, "/orders/", "//api.example.com/v1/x"), None);
        assert_eq!(caller_location(base, "/orders/", "items/7"), None);
    }
}
