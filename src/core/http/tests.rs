use super::*;

fn why(u: &str) -> String {
    parse_proxy(u).err().unwrap_or_else(|| panic!("{u} was accepted"))
}

#[test]
fn proxy_ports_are_checked_not_defaulted() {
    for (u, says) in [
        ("http://proxy:99999", "'99999' is not a number from 1 to 65535"),
        ("http://proxy:abc", "'abc' is not a number"),
        ("http://proxy:0", "'0' is not a number"),
        ("http://proxy:+80", "'+80' is not a number"),
        ("http://proxy:", "no port number"),
        ("http://[::1:3128", "closing ']'"),
        ("http://pro xy:3128", "spaces"),
        ("http://proxy:3128/path", "no path"),
        ("http://a:b:3128", "not a number"),
        ("socks5://proxy:1080", "SOCKS"),
        ("ftp://proxy:21", "only http"),
    ] {
        assert!(why(u).contains(says), "{u}: {}", why(u));
    }
    let p = parse_proxy("http://proxy.example:3128").unwrap();
    assert_eq!((p.proxy.port(), p.via.as_str()), (3128, " (through proxy proxy.example:3128)"));
    assert_eq!(parse_proxy("http://proxy.example").unwrap().proxy.port(), 80);
    assert_eq!(parse_proxy("https://proxy.example/").unwrap().proxy.port(), 443);
    assert_eq!(parse_proxy("127.0.0.1:8080").unwrap().via, " (through proxy 127.0.0.1:8080)");
    assert_eq!(parse_proxy("http://[::1]:3128").unwrap().via, " (through proxy [::1]:3128)");
    let p = parse_proxy("http://user:p%40ss@proxy:3128").unwrap();
    assert_eq!(p.proxy.password(), Some("p@ss"));
    assert!(!p.via.contains("user") && !p.via.contains("ss"), "{}", p.via);
}

#[test]
fn proxy_passwords_are_never_shown() {
    let secret = "s3cr3t-proxy-pass";
    for u in [
        format!("http://user:{secret}@proxy:99999"),
        format!("socks5://user:{secret}@proxy:1080"),
        format!("http://user:{secret}@pro xy:1"),
    ] {
        let e = proxy_from_url(&u).unwrap_err();
        assert!(!e.message.contains(secret) && e.message.contains("****@"), "{}", e.message);
        let debug = format!("{:?}", Settings { proxy: ProxyChoice::Url(u.clone()), ..Settings::default() });
        assert!(!debug.contains(secret), "{debug}");
    }
    assert_eq!(mask_userinfo("http://u:p@h:1/x"), "http://****@h:1/x");
    assert_eq!(mask_userinfo("u:p@h:1"), "****@h:1");
    assert_eq!(mask_userinfo("http://h:1"), "http://h:1");
    let env = EnvRoute::from_vars(|n| (n == "https_proxy").then(|| format!("http://u:{secret}@proxy:70000")));
    let e = env.proxy_for(&Target::parse("https://as.example/token").unwrap()).unwrap_err();
    assert!(e.message.contains("https_proxy") && !e.message.contains(secret), "{}", e.message);
}

fn t(u: &str) -> Target {
    Target::parse(u).unwrap()
}

/// The route decision for proxies that are not on this machine, without any traffic
/// (the tests cannot reach another machine): loopback targets go straight, everything
/// else through the proxy, and plain http through it counts as crossing the network.
#[test]
fn loopback_targets_never_go_through_a_proxy() {
    const LOOPBACK: &[&str] = &[
        "http://127.0.0.1:8080/token",
        "http://127.9.8.7/x",
        "http://localhost:9/t",
        "http://[::1]:9/t",
        "https://127.0.0.1:8443/t",
        "http://[::ffff:127.0.0.1]/",
    ];
    const ELSEWHERE: &[&str] =
        &["http://as.example/token", "https://as.example/token", "http://2130706433:8080/token", "http://0.0.0.0:9/t", "http://10.0.0.1/"];
    let explicit =
        Transport::new(Settings { proxy: ProxyChoice::Url("http://proxy.corp.example:3128".into()), ..Settings::default() }).unwrap();
    let env_vars: &[(&str, &str)] = &[("http_proxy", "http://proxy.corp.example:3128"), ("https_proxy", "http://proxy.corp.example:3128")];
    let env = Route::Env(Box::new(EnvRoute::from_vars(|n| env_vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))));
    let all = Route::Env(Box::new(env_of(&[("ALL_PROXY", "proxy.corp.example:3128")])));
    for route in [&*explicit.route, &env, &all] {
        for u in LOOPBACK {
            assert!(route.proxy_for(&t(u)).unwrap().is_none(), "{u} went through the proxy");
        }
        for u in ELSEWHERE {
            let p = route.proxy_for(&t(u)).unwrap().unwrap_or_else(|| panic!("{u} went direct"));
            assert_eq!(p.via, " (through proxy proxy.corp.example:3128)");
            assert!(!p.on_loopback);
        }
    }
    // Even an unusable proxy variable does not matter to a loopback target.
    let broken = Route::Env(Box::new(env_of(&[("http_proxy", "http://proxy:99999")])));
    assert!(broken.proxy_for(&t("http://127.0.0.1:1/t")).unwrap().is_none());
    assert!(broken.proxy_for(&t("http://as.example/t")).is_err());
    // What crosses the network in clear, on that route.
    let via = Some(" (through proxy proxy.corp.example:3128)".to_string());
    for (u, clear) in [
        ("http://127.0.0.1:8080/token", None),
        ("http://localhost/token", None),
        ("https://127.0.0.1/token", None),
        ("https://as.example/token", None),
        ("http://as.example/token", via.clone()),
        ("http://2130706433/token", via),
    ] {
        assert_eq!(explicit.cleartext_route(&t(u)).unwrap(), clear, "{u}");
    }
    let direct = Transport::new(Settings { proxy: ProxyChoice::None, ..Settings::default() }).unwrap();
    assert_eq!(direct.cleartext_route(&t("http://as.example/token")).unwrap(), Some(String::new()));
    assert_eq!(direct.cleartext_route(&t("http://127.0.0.1/token")).unwrap(), None);
    // The rule itself looks at the whole route: plain http to this machine relayed by a
    // proxy elsewhere would cross the network (the route above never does that).
    let far = parse_proxy("http://proxy.corp.example:3128").unwrap();
    let near = parse_proxy("http://127.0.0.1:3128").unwrap();
    assert!(near.on_loopback && parse_proxy("localhost:1").unwrap().on_loopback && parse_proxy("http://[::1]:1").unwrap().on_loopback);
    assert!(in_clear_over_network(&t("http://127.0.0.1/t"), Some(&far)));
    assert!(!in_clear_over_network(&t("http://127.0.0.1/t"), Some(&near)));
    assert!(!in_clear_over_network(&t("http://127.0.0.1/t"), None));
    assert!(in_clear_over_network(&t("http://as.example/t"), Some(&near)), "a local proxy relays it elsewhere in clear");
    assert!(!in_clear_over_network(&t("https://as.example/t"), Some(&far)), "a CONNECT tunnel: TLS end to end");
}

#[test]
fn loopback_is_an_ip_literal_or_localhost() {
    for yes in [
        "http://localhost",
        "http://LOCALHOST:8080",
        "http://127.0.0.1:9",
        "http://127.255.3.4",
        "http://[::1]:80",
        "http://[::ffff:127.0.0.1]",
    ] {
        assert!(is_loopback_origin(yes), "{yes}");
    }
    for no in [
        "http://localhost.",
        "http://localhost.:8080",
        "http://a.localhost",
        "http://localhost.evil.example",
        "http://127.1",
        "http://2130706433",
        "http://0x7f000001",
        "http://127.0.0.1.nip.io",
        "http://128.0.0.1",
        "http://[::2]",
        "http://0.0.0.0",
        "http://10.0.0.1",
    ] {
        assert!(!is_loopback_origin(no), "{no}");
    }
}

fn env_of(vars: &'static [(&'static str, &'static str)]) -> EnvRoute {
    EnvRoute::from_vars(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))
}

fn via(env: &EnvRoute, url: &str) -> Option<String> {
    env.proxy_for(&Target::parse(url).unwrap()).unwrap().map(|p| p.via.clone())
}

#[test]
fn environment_proxies_follow_curl() {
    const HTTP: &str = "http://as.example/token";
    const HTTPS: &str = "https://as.example/token";
    let p = |port: u16| Some(format!(" (through proxy p:{port})"));
    // Each scheme its own variable; HTTPS_PROXY is not used for http:// and HTTP_PROXY
    // not for https://.
    let env = env_of(&[("HTTPS_PROXY", "p:1")]);
    assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (None, p(1)));
    let env = env_of(&[("HTTP_PROXY", "p:2")]);
    assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(2), None));
    // ALL_PROXY for both when the scheme's own is not set; lower case first.
    let env = env_of(&[("ALL_PROXY", "p:3"), ("https_proxy", "p:4"), ("HTTPS_PROXY", "p:5")]);
    assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(3), p(4)));
    let env = env_of(&[("all_proxy", "p:6"), ("ALL_PROXY", "p:7"), ("http_proxy", ""), ("HTTP_PROXY", " ")]);
    assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (p(6), p(6)));
    // httpoxy: under CGI (REQUEST_METHOD set) HTTP_PROXY may come from a request's
    // `Proxy:` header and is ignored; the lower-case http_proxy and ALL_PROXY are not.
    let env = env_of(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "p:8")]);
    assert_eq!((via(&env, HTTP), via(&env, HTTPS)), (None, None));
    let env = env_of(&[("REQUEST_METHOD", "GET"), ("HTTP_PROXY", "p:8"), ("ALL_PROXY", "p:9")]);
    assert_eq!(via(&env, HTTP), p(9));
    let env = env_of(&[("REQUEST_METHOD", ""), ("HTTP_PROXY", "p:8"), ("http_proxy", "p:10")]);
    assert_eq!(via(&env, HTTP), p(10));
}

#[test]
fn no_proxy_follows_curl() {
    let env = env_of(&[
        ("ALL_PROXY", "p:1"),
        ("NO_PROXY", " example.com, .corp.test ,*.wild.test, 10.0.0.0/8, ::1, [fd00::1] ,127.0.0.1,localhost"),
    ]);
    for direct in [
        "https://example.com/",
        "https://api.example.com/",
        "https://x.corp.test/",
        "https://corp.test/",
        "https://a.wild.test/",
        "http://10.2.3.4:8080/",
        "http://[::1]:8080/",
        "http://[fd00::1]/",
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "https://EXAMPLE.com./",
    ] {
        assert_eq!(via(&env, direct), None, "{direct}");
    }
    for proxied in ["https://notexample.com/", "https://example.com.evil/", "http://11.0.0.1/", "http://127.0.0.2/", "http://[::2]/"] {
        assert!(via(&env, proxied).is_some(), "{proxied}");
    }
    let env = env_of(&[("https_proxy", "p:1"), ("no_proxy", "*"), ("NO_PROXY", "other")]);
    assert_eq!(via(&env, "https://anything.example/"), None);
}
