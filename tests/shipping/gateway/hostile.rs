//! `dpopkit serve` attacked as a hostile upstream, caller and local user would (second
//! review of issue 22), with the helpers of `gateway.rs`.

use super::*;

/// A config file with one route `/o/` to `upstream`, `extra` at the top level and
/// `route_extra` in the route; the client secret from DPOPKIT_CLIENT_SECRET.
fn one_route_config(peers: &Peers, upstream: &str, extra: &str, route_extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nplain_http = true\n{extra}\n[[route]]\nprefix = \"/o/\"\nupstream = \"{upstream}\"\nkey = \"{}\"\n{route_extra}\n[route.auth_token]\nclient_id = \"m2m.dpop\"\ntoken_endpoint = \"{}\"\nscope = \"api\"\nclient_secret_env = \"DPOPKIT_CLIENT_SECRET\"\n",
        fixture("ec_pkcs8.pem").display(),
        peers.token_endpoint
    )
}

#[test]
fn an_upstream_switching_protocols_or_sending_an_informational_status_is_502() {
    // The gateway drops the caller's Upgrade, so an upstream's 101 answers nothing that was
    // asked: passed back, it told the caller the connection had switched protocols (hyper
    // then closed it, dropping the caller's pipelined requests); a 1xx is never a final
    // response (RFC 9110 §15.2).
    let peers = Peers::start(&[]);
    let upstream = FaultServer::start(|_| {
        Action::Respond(
            101,
            vec![("Upgrade".into(), "websocket".into()), ("Connection".into(), "Upgrade".into())],
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
    });
    let gw = start_route(&peers, &upstream.url("/base/"), &[], "switch");
    let r = get(&gw.addr, "/orders/ws");
    assert_eq!(r.status, 502, "{}{}", r.head, r.body);
    assert_eq!(r.header("x-dpopkit-gateway-error").as_deref(), Some("upstream_protocol"), "{}", r.head);
    assert!(r.body.contains("101"), "the error says what the upstream sent: {}", r.body);
    assert_eq!(upstream.requests().len(), 1);
}

#[test]
fn a_queued_request_ends_within_its_route_timeout() {
    // A request that waited in the queue for an upstream slot then got the route's whole
    // timeout again for its upstream call: with max_concurrency 1 and an upstream taking
    // most of the 3 s timeout, the second caller had its answer after 2 × 3 s, the caller
    // of a hanging upstream its 504 at twice the deadline (and SIGTERM, which waits the
    // longest timeout plus 5 s, cut such requests without an answer).
    let peers = Peers::start(&[]);
    let slow = FaultServer::start(|_| {
        std::thread::sleep(Duration::from_millis(2500));
        Action::Respond(200, vec![], b"done".to_vec())
    });
    let dir = scratch("queued");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        one_route_config(&peers, &slow.url("/"), "caller_secret_env = \"GW_KEY\"\nmax_concurrency = 1\nmax_queue = 4", "timeout_ms = 3000"),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", config.to_str().unwrap()], "queued");
    let addr = gw.addr.clone();
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200 * i));
                let t = Instant::now();
                let r = get(&addr, "/o/work");
                (r.status, t.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, Duration)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(results[0].0, 200, "{results:?}\n{}", gw.stderr());
    for (status, took) in &results {
        assert!(*took < Duration::from_millis(3600), "a request took {took:?} (status {status}), past its 3 s timeout: {results:?}");
    }
    assert!(matches!(results[1].0, 503 | 504), "the queued request: 503 (no slot in time) or 504: {results:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn secret_files_others_can_read_are_refused_and_errors_name_the_caller_secret_file() {
    // caller_secret_file (new) and client_secret_file were read whatever their mode: any
    // local user could read the caller credential (and use the API as the gateway) or the
    // client secret. And a bad caller_secret_file was reported as the "client secret file
    // (client_secret_file)", sending the operator to the wrong setting.
    use std::os::unix::fs::PermissionsExt;
    let peers = Peers::start(&[]);
    let dir = scratch("secretfiles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let caller = dir.join("caller.key");
    std::fs::write(&caller, format!("{KEY}\n")).unwrap();
    let client = dir.join("client.secret");
    std::fs::write(&client, "secret\n").unwrap();
    let fifo = dir.join("fifo.key");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let config = dir.join("gateway.toml");
    let run = |caller_file: &std::path::Path| {
        let text = one_route_config(&peers, "http://127.0.0.1:9/", "", &format!("caller_secret_file = \"{}\"", caller_file.display()))
            .replace("client_secret_env = \"DPOPKIT_CLIENT_SECRET\"", &format!("client_secret_file = \"{}\"", client.display()));
        std::fs::write(&config, text).unwrap();
        serve_until_exit(Command::new(env!("CARGO_BIN_EXE_dpopkit")).args(["serve", "--config"]).arg(&config).env_remove("GW_KEY"))
    };
    let set = |p: &std::path::Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    set(&caller, 0o600);
    set(&client, 0o600);
    let (code, err) = run(&caller);
    assert_eq!(code, None, "private secret files work (killed while serving): {err}");
    set(&caller, 0o644);
    let (code, err) = run(&caller);
    assert_eq!(code, Some(3), "a caller_secret_file others can read was used: {err}");
    assert!(err.contains("caller_secret_file") && err.contains("chmod"), "{err}");
    set(&caller, 0o640);
    set(&client, 0o604);
    let (code, err) = run(&caller);
    assert_eq!(code, Some(3), "a client_secret_file others can read was used: {err}");
    assert!(err.contains("client_secret_file") && err.contains("chmod"), "{err}");
    set(&client, 0o600);
    let (code, err) = run(&fifo);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("not a regular file") && err.contains("caller_secret_file"), "{err}");
    assert!(!err.contains("client secret"), "a bad caller_secret_file is not the client secret file: {err}");
    for secret in [KEY, "secret\n"] {
        assert!(!err.contains(secret), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn idle_connections_cannot_take_the_file_descriptors_the_upstream_calls_need() {
    // Each connection holds about 5 file descriptors (its socket and its thread's runtime),
    // and max_connections (default 512) was not set against RLIMIT_NOFILE (systemd's
    // default soft limit is 1024): idle connections of any local process used them all,
    // and an accepted caller's next request failed with 502 (no socket for the upstream).
    use std::os::unix::process::CommandExt;
    let peers = Peers::start(&[]);
    // The upstream closes every connection, so each request needs a new socket.
    let upstream = FaultServer::start(|_| {
        std::thread::sleep(Duration::from_millis(300));
        Action::Respond(200, vec![("Connection".into(), "close".into())], b"fine".to_vec())
    });
    let args = route_args(&peers, &upstream.url("/base/"), &["--max-concurrency", "6", "--no-access-log"]);
    let log = scratch("fds.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpopkit"));
    child.arg("serve").args(&args).env("GW_KEY", KEY).env("DPOPKIT_CLIENT_SECRET", "secret").env_remove("DPOPKIT_TOKEN_CACHE");
    child.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        child.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 400, rlim_max: 400 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = child.spawn().unwrap();
    let mut gw = Gateway { child: Some(child), log, addr: String::new() };
    let deadline = Instant::now() + Duration::from_secs(20);
    gw.addr = loop {
        if let Some(addr) = listening_addr(&gw.stderr()) {
            break addr;
        }
        assert!(Instant::now() < deadline, "{}", gw.stderr());
        std::thread::sleep(Duration::from_millis(50));
    };

    // Six callers' keep-alive connections, accepted before the flood.
    let ask = |s: &mut TcpStream| -> String {
        s.write_all(format!("GET /orders/x HTTP/1.1\r\nHost: a\r\nX-DpopKit-Gateway-Key: {KEY}\r\n\r\n").as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !(got.ends_with(b"fine") || got.ends_with(b"}")) {
            let n = s.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let mut callers: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(&gw.addr).unwrap()).collect();
    for c in &mut callers {
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let first = ask(c);
        assert!(first.starts_with("HTTP/1.1 200"), "{first}\n{}", gw.stderr());
    }
    // Idle connections, more than the descriptors allow; then the six ask at once (each
    // needs a new upstream socket).
    let idle: Vec<TcpStream> = (0..150).filter_map(|_| TcpStream::connect(&gw.addr).ok()).collect();
    std::thread::sleep(Duration::from_millis(1000));
    let answers: Vec<String> = callers
        .into_iter()
        .map(|mut c| std::thread::spawn(move || ask(&mut c)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for a in &answers {
        assert!(a.starts_with("HTTP/1.1 200"), "a caller's request after the flood: {a}\n{}", gw.stderr());
    }
    assert!(gw.stderr().contains("max_connections"), "the gateway says it lowered max_connections and how to raise it: {}", gw.stderr());
    drop(idle);
}

#[test]
fn past_the_queue_a_request_with_a_body_gets_503_before_its_body_is_read() {
    // The place in the queue was taken only after the whole body had been read: under a
    // flood, a POST got its 503 only once its body (up to max_request_body) had arrived, and
    // the bodies of every open connection (max_connections × max_request_body, 2 GiB by
    // default) were held in memory, not those of the queue.
    let peers = Peers::start(&[]);
    let slow = FaultServer::start(|_| {
        std::thread::sleep(Duration::from_millis(2000));
        Action::Respond(200, vec![], b"done".to_vec())
    });
    let gw = start_route(&peers, &slow.url("/"), &["--max-concurrency", "1", "--max-queue", "1", "--no-access-log"], "early503");
    let addr = gw.addr.clone();
    let busy: Vec<_> = (0..2)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100 * i));
                get(&addr, "/orders/work").status
            })
        })
        .collect();
    // Until the slot and the queue place are taken.
    let began = Instant::now();
    while !request(&addr, "GET", "/metrics", &[], "").body.contains("dpopkit_gateway_in_flight 2") {
        assert!(began.elapsed() < Duration::from_secs(10), "the two requests were not admitted: {}", gw.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    // The head of a POST whose body comes later.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    s.write_all(
        format!("POST /orders/upload HTTP/1.1\r\nHost: a\r\nX-DpopKit-Gateway-Key: {KEY}\r\nContent-Length: 5000\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    let took = t.elapsed();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(took < Duration::from_millis(700), "503 at once, not after the body: {took:?}");
    for t in busy {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(slow.requests().len(), 2, "the refused POST went nowhere");
}

#[test]
fn a_callers_accept_encoding_does_not_make_the_upstream_compress_what_the_gateway_must_withhold() {
    // The caller's Accept-Encoding went upstream (python-requests sends "gzip, deflate" by
    // default, curl --compressed too), but the gateway decodes no Content-Encoding and so
    // cannot check a compressed body for an echoed secret: the library withholds it, and
    // the caller got a placeholder instead of the upstream's answer.
    let peers = Peers::start(&[]);
    let upstream = FaultServer::start(|req| {
        let gzip = req.header("accept-encoding").is_some_and(|v| v.contains("gzip"));
        if gzip {
            // (Bytes that are not a real gzip stream: what counts is the header.)
            Action::Respond(200, vec![("Content-Encoding".into(), "gzip".into())], b"\x1f\x8b compressed answer".to_vec())
        } else {
            Action::Respond(200, vec![("Content-Type".into(), "text/plain".into())], b"the answer".to_vec())
        }
    });
    let gw = start_route(&peers, &upstream.url("/base/"), &["--no-access-log"], "encoding");
    let r = request(&gw.addr, "GET", "/orders/x", &[("X-DpopKit-Gateway-Key", KEY), ("Accept-Encoding", "gzip, deflate")], "");
    assert_eq!(r.status, 200, "{}{}", r.head, r.body);
    assert_eq!(r.body, "the answer", "{}{}", r.head, r.body);
    assert!(upstream.requests()[0].header("accept-encoding").is_none(), "{:?}", upstream.requests()[0].headers);
}

#[cfg(target_os = "linux")]
#[test]
fn a_caller_that_stops_reading_its_responses_is_cut_after_the_header_timeout() {
    // header_timeout bounds reading a request head; nothing bounded writing the answer. A
    // client that pipelined requests (no credential needed: /healthz) and never read the
    // responses kept its connection's thread in hyper's write forever: a few hundred such
    // sockets, from any local process, held every one of max_connections for good.
    let peers = Peers::start(&[]);
    let dir = scratch("slowread");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        one_route_config(&peers, "http://127.0.0.1:9/", "caller_secret_env = \"GW_KEY\"\nheader_timeout_ms = 1000", ""),
    )
    .unwrap();
    let gw = Gateway::start(&["--config", config.to_str().unwrap()], "slowread");
    let threads = || std::fs::read_dir(format!("/proc/{}/task", gw.pid())).unwrap().count();
    let base = threads();
    let pipelined = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n".repeat(2000);
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let s = TcpStream::connect(&gw.addr).unwrap();
        s.set_write_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut w = &s;
        // Until the gateway's answers fill both sides' buffers and this write stalls.
        for _ in 0..200 {
            if w.write_all(pipelined.as_bytes()).is_err() {
                break;
            }
        }
        sockets.push(s);
    }
    assert!(threads() > base, "the connections are being served");
    let began = Instant::now();
    while threads() > base {
        assert!(
            began.elapsed() < Duration::from_secs(8),
            "connections whose caller stopped reading still held {} threads after {:?}",
            threads() - base,
            began.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(sockets);
    let _ = std::fs::remove_dir_all(&dir);
}
