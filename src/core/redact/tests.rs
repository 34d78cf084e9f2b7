use super::*;

#[test]
fn json_form_and_text_bodies_are_masked() {
    let j = redact_body("application/json", br#"{"access_token":"abc.def","token_type":"DPoP","n":{"refresh_token":"r"}}"#, 1000);
    assert!(!j.contains("abc.def") && !j.contains("\"r\"") && j.contains("DPoP"), "{j}");
    let f = redact_body("application/x-www-form-urlencoded", b"client_secret=s3cr3t&client_id=m2m&scope=api", 1000);
    assert_eq!(f, "client_secret=****&client_id=m2m&scope=api");
    let t = redact_body("text/html", br#"<p>{"access_token": "zzzz9999", x}</p>"#, 1000);
    assert!(!t.contains("zzzz9999"), "{t}");
    let t = redact_body("", b"<p>access_token=yyyy8888</p>", 1000);
    assert!(!t.contains("yyyy8888"), "{t}");
    let f = redact_body("", "access_token=x&".repeat(100_000).as_bytes(), usize::MAX);
    assert!(!f.contains("=x") && f.len() > 1_000_000, "linear and complete");
    let o = redact_body("", br#"{"note":"client_secret=","access_token":"SECRETXY"},"#, 1000);
    assert!(!o.contains("SECRETXY"), "one mask must not hide the next name: {o}");
    let b = redact_body("", &[0xff, 0xfe, 0], 1000);
    assert!(b.contains("3 bytes"));
}

/// Runs `f` on a thread and fails if it has not finished after `secs`: a hang guard
/// only (the inputs below take well under a second in a debug build when the work is
/// linear, and hours when it is quadratic), not a timing assertion.
fn finishes_within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs)).expect("still running: super-linear redaction")
}

/// 4 MiB: linear work takes about a second here (unoptimised), quadratic work some
/// 10^11 steps — hours. (The session log cuts bodies to 64 KiB before this runs; the
/// scan itself must be linear all the same.)
const BIG: usize = 4 << 20;

fn runs(unit: &str) -> String {
    unit.repeat(BIG / unit.len())
}

#[test]
fn field_redaction_is_linear_on_megabytes_of_name_runs() {
    // Each `name=` starts a value that, scanned on its own, reaches the end of the text.
    for unit in ["password=", "access_token=password=", "\"d\"assertion=x"] {
        let text = runs(unit);
        let out = finishes_within(300, move || redact_form_like(&text));
        assert!(out.len() < 64 && out.contains(MASK), "{unit}: one value from the first name to the end: {out}");
    }
    // Quoted values end at the next quote, which opens the next name: all masked.
    let text = runs("\"client_secret\":\"password=");
    let out = finishes_within(300, move || redact_form_like(&text));
    assert!(!out.contains("password=") && out.matches(MASK).count() == BIG / 26, "{}", &out[..100]);
    // Values that do end: every one masked, none left.
    let text = runs("password=x&");
    let out = finishes_within(300, move || redact_form_like(&text));
    assert!(!out.contains("=x") && out.matches(MASK).count() == BIG / 11, "all masked");
}

#[test]
fn a_body_is_cut_before_it_is_scanned() {
    let body = runs("password=");
    let n = body.len();
    let out = finishes_within(300, move || redact_body("text/plain", body.as_bytes(), 64 * 1024));
    assert!(out.len() < 64 * 1024 + 64 && out.ends_with(&format!("({n} bytes in all)")), "{}", &out[out.len() - 40..]);
    let body = runs("x");
    let out = redact_body("", body.as_bytes(), 10);
    assert_eq!(out, format!("xxxxxxxxxx... ({BIG} bytes in all)"));
    // Cut inside a character: the complete ones are kept, it is still text.
    let out = redact_body("", "ééé".as_bytes(), 3);
    assert_eq!(out, "é... (6 bytes in all)");
    // Masks make text longer; the result is cut to `max` again.
    let out = redact_body("", "password=x&".repeat(100).as_bytes(), 50);
    assert!(out.starts_with("password=****&password=****") && out.len() < 50 + 30, "{out}");
}

#[test]
fn secret_masking_is_linear_and_complete() {
    // A periodic long secret and a short one found (glued, so kept) at every position.
    let mut s = Secrets::new();
    s.add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    s.add("aaa");
    let body = runs("a").into_bytes();
    let out = finishes_within(300, move || s.scrub_bytes(&body)).expect("changed");
    assert_eq!(out, MASK.repeat(BIG / 64).into_bytes());
    // A short secret that stands alone at every other position: one mask per run.
    let mut s = Secrets::new();
    s.add("-");
    let body = runs("-").into_bytes();
    assert_eq!(finishes_within(300, move || s.scrub_bytes(&body)).expect("changed"), MASK.as_bytes());
    let mut s = Secrets::new();
    s.add("Tok3n-value-aaaaaaaa");
    let body = runs("Tok3n-value-aaaaaaa").into_bytes(); // one short of a match, everywhere
    assert!(finishes_within(300, move || s.scrub_bytes(&body)).is_none());
}

#[test]
fn secrets_in_every_echoed_form() {
    let mut s = Secrets::new();
    s.add_client_secret("m2m.dpop", "a b&c/é\"x");
    let text = "raw a b&c/é\"x form a+b%26c%2F%C3%A9%22x lower a+b%26c%2f%c3%a9%22x \
                pct a%20b%26c%2F%C3%A9%22x json a b&c\\/é\\\"x basic bTJtLmRwb3A6YStiJTI2YyUyRiVDMyVBOSUyMng";
    let out = s.scrub(text);
    assert_eq!(out.matches(MASK).count(), 6, "{out}");
    for word in ["raw", "form", "lower", "pct", "json", "basic"] {
        assert!(out.contains(&format!("{word} ****")), "{word}: {out}");
    }
}

#[test]
fn short_secrets_are_masked_where_they_stand_alone() {
    let mut s = Secrets::new();
    s.add("x7q");
    assert_eq!(s.scrub("client_secret=x7q&a=1 'x7q' \"x7q\" x7q."), "client_secret=****&a=1 '****' \"****\" ****.");
    assert_eq!(s.scrub("ax7q x7qb x7q_ _x7q"), "ax7q x7qb x7q_ _x7q", "glued to a word: left alone");
    let mut s = Secrets::new();
    s.add("secret");
    assert_eq!(s.scrub("client_secret=secret"), "client_secret=****", "the field name stays");
    let mut s = Secrets::new();
    s.add("-!-");
    assert_eq!(s.scrub("a-!-b"), "a****b", "no letter at its edges: masked anywhere");
}

#[test]
fn the_call_scope_collects_and_forgets() {
    remember(|s| s.add("outside-any-call"));
    assert_eq!(scrub("outside-any-call", &[]), "outside-any-call", "nothing is kept outside a call");
    {
        let _outer = call_scope();
        remember_request_headers(&mut [("Authorization".into(), "DPoP the-access-token".into()), ("DPoP".into(), "a.proof.jwt".into())]);
        {
            let _inner = call_scope();
            remember(|s| s.add("inner-secret"));
        }
        assert_eq!(scrub("the-access-token a.proof.jwt inner-secret", &[]), "**** **** ****");
    }
    assert_eq!(scrub("the-access-token", &[]), "the-access-token", "forgotten when the call ends");
}

#[test]
fn values_of_earlier_calls_are_masked_later_bounded_and_expire() {
    use std::time::{Duration, Instant};
    let token = "later-token-value-0123456789";
    let proof = "eyJhbGciOiJFUzI1NiJ9.eyJsYXRlciI6MX0.later-proof-signature";
    let key = super::super::state::salted_hash(&[token.as_bytes()]);
    {
        let _call = call_scope();
        remember_request_headers(&mut [("DPoP".into(), proof.into())]);
        remember(|s| s.add_token(token));
        remember_token_for_later(token, Instant::now() + Duration::from_secs(3600));
    }
    assert_eq!(scrub(&format!("{token} {proof}"), &[]), format!("{token} {proof}"), "nothing is masked outside a call");
    // A later call, on another thread: both masked, the token in its other forms too.
    let text = format!("{token} {proof} {}", STANDARD_NO_PAD.encode(token));
    let masked = std::thread::spawn(move || {
        let _call = call_scope();
        scrub(&text, &[])
    })
    .join()
    .unwrap();
    assert_eq!(masked, "**** **** ****");
    // The forms were made in the kept value, once, for every later call.
    assert_eq!(LATER_TOKENS.with(&key, |l| l.value.forms.get().is_some()), Some(true));
    // Expired values are not used, and are dropped when the next one is kept.
    let brief = "brief-token-value-0123456789";
    remember_for_later(&LATER_TOKENS, brief, Instant::now() + Duration::from_millis(30));
    std::thread::sleep(Duration::from_millis(60));
    {
        let _call = call_scope();
        assert_eq!(scrub(brief, &[]), brief, "an expired value is not masked");
    }
    remember_for_later(&LATER_TOKENS, "next-token-value-0123456789", Instant::now() + Duration::from_secs(60));
    assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.as_str() != brief), "expired: dropped");
    remember_for_later(&LATER_TOKENS, "past-token-value-0123456789", Instant::now());
    assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.as_str() != "past-token-value-0123456789"));
    // Bounded: the most recent proofs are kept (at least MAX_LATER_PROOFS, by chunks), the
    // oldest go.
    let n = MAX_LATER_PROOFS + 2 * PROOF_CHUNK as usize + 1;
    for i in 0..n {
        remember_proof_for_later(&format!("eyJ0.eyJ{i}.bounded-proof-{i:04}"), Instant::now() + PROOF_KEPT_FOR);
    }
    let kept: Vec<String> = LATER_PROOFS.values().iter().map(|l| l.value.raw.to_string()).collect();
    let bound = MAX_LATER_PROOFS + PROOF_CHUNK as usize;
    assert!(kept.len() <= bound && LATER_PROOFS.bytes() <= MAX_LATER_BYTES, "{}", kept.len());
    for i in n - MAX_LATER_PROOFS..n {
        assert!(kept.iter().any(|k| k.ends_with(&format!("-{i:04}"))), "the {MAX_LATER_PROOFS} most recent are kept: {i}");
    }
    assert!(!kept.iter().any(|k| k.ends_with("-0000")));
    // Too long (or too short) values are not kept.
    remember_token_for_later(&"x".repeat(17 << 10), Instant::now() + Duration::from_secs(60));
    assert!(LATER_TOKENS.values().iter().all(|l| l.value.raw.len() <= 16 << 10));
    // dpopkit_token_cache_clear forgets them all.
    forget_later();
    assert_eq!(later_count(), (0, 0));
    let _call = call_scope();
    assert_eq!(scrub(token, &[]), token);
}

#[test]
fn secret_values_of_a_refused_token_response() {
    let v = secret_field_values(br#"{"access_token":"a\/b+c","token_type":"Bearer","n":{"refresh_token":"rrrr"}}"#);
    let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    assert!(v.contains(&"a/b+c") && v.contains(&"a\\/b+c") && v.contains(&"rrrr"), "{v:?}");
    let v = secret_field_values(b"access_token=a%2Fb+c&token_type=bearer");
    let v: Vec<&str> = v.iter().map(|s| s.as_str()).collect();
    assert!(v.contains(&"a%2Fb+c") && v.contains(&"a/b c"), "{v:?}");
}

#[test]
fn headers_and_scrub() {
    assert_eq!(redact_header_value("Authorization", "DPoP x"), MASK);
    assert_eq!(redact_header_value("dpop", "eyJ"), MASK);
    assert_eq!(redact_header_value("Content-Type", "a/b"), "a/b");
    assert_eq!(scrub("a secret-value b", &["secret-value", ""]), "a **** b");
    assert_eq!(scrub("client_secret=secret&x=secret", &["secret"]), "client_secret=****&x=****");
    assert_eq!(scrub("aaaa", &["aa"]), "aaaa", "too short to scrub");
    assert_eq!(scrub("xsecretsecret", &["secret-value"]), "xsecretsecret");
    assert_eq!(scrub("x secret-valuesecret-value", &["secret-value"]), "x ********");
}

/// Masks `text` both ways (needle by needle, and in one automaton pass).
fn both_ways(s: &Secrets, text: &str) -> [String; 2] {
    [false, true].map(|whole| {
        let ranges = s.ranges_by(text.as_bytes(), whole, None);
        let mut out = String::new();
        let mut at = 0;
        for (a, b) in ranges {
            out.push_str(&text[at..a]);
            out.push_str(MASK);
            at = b;
        }
        out.push_str(&text[at..]);
        out
    })
}

#[test]
fn the_automaton_masks_what_the_needles_do() {
    let mut s = Secrets::new();
    s.add_client_secret("m2m", "S3cr&t/Va+l ue%\"\\ü-9f8e7d");
    s.add_token("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtMm0ifQ.c2lnbmF0dXJl");
    s.add("x7q");
    s.add("abcdefghabcdefgh"); // overlaps itself
    s.add("abcdefgh");
    let texts = [
        "a x7q b x7qz client_secret=S3cr%26t%2FVa%2Bl+ue%25%22%5C%C3%BC-9f8e7d",
        "abcdefghabcdefghabcdefgh then abcdefghabcdefgh",
        "\"S3cr&t/Va+l ue%\\\"\\\\ü-9f8e7d\" eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtMm0ifQ.c2lnbmF0dXJl",
        "S3cr\\u0026t\\u002FVa\\u002Bl\\u0020ue\\u0025\\u0022\\u005C\\u00FC\\u002D9f8e7d x7q",
        "S3cr&amp;t&#x2F;Va&#43l ue&#X25;&quot;&#92;&#252;-9f8e7d",
    ];
    for text in texts {
        let [a, b] = both_ways(&s, text);
        for out in [&a, &b] {
            for bad in ["S3cr", "x7q ", "abcdefgh", "eyJhbGci", "9f8e7d"] {
                assert!(!out.contains(bad), "{bad} in {out:?} (from {text:?})");
            }
        }
    }
    // The rule for short secrets is the same both ways.
    let [a, b] = both_ways(&s, "ax7q x7q_ (x7q)");
    assert_eq!(a, "ax7q x7q_ (****)");
    assert_eq!(b, a);
}

#[test]
fn the_decoded_view_maps_back_whole_escapes() {
    let text = b"a&#x41;b\\u00e9%41&amp;z \\uD834\\uDD1E &#43 &bogus; %G1 \\q";
    let v = View::of(text).expect("escapes");
    assert_eq!(String::from_utf8_lossy(&v.bytes), "aAbéA&z 𝄞 + &bogus; %G1 \\q");
    // "Abé" in the view is `&#x41;b\u00e9` in the original.
    let at = memchr::memmem::find(&v.bytes, "Abé".as_bytes()).unwrap();
    let (s, e) = v.original(at, at + "Abé".len());
    assert_eq!(&text[s..e], b"&#x41;b\\u00e9");
    // Half of a decoded character takes the whole escape.
    let (s, e) = v.original(at + 2, at + 3);
    assert_eq!(&text[s..e], b"\\u00e9");
    assert!(View::of(b"plain text").is_none() && View::of(b"100% & done").is_none());
}

#[test]
fn base64_cores_at_every_alignment_are_masked() {
    let secret = "Secret-Value/42+x";
    let mut s = Secrets::new();
    s.add_token(secret);
    for pad in 0..3 {
        for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE] {
            let data = format!("{}client_secret={secret}&client_id=m2m", &"xyz"[..pad]);
            let dump = engine.encode(&data);
            let out = s.scrub(&dump);
            // Whatever is left decodes (at any alignment) to no 6 bytes of the secret.
            let left: String = out.split(MASK).collect::<Vec<_>>().join("");
            for piece in out.split(MASK) {
                for skip in 0..4 {
                    let p = piece.get(skip..).unwrap_or("");
                    let p = &p[..p.len() / 4 * 4];
                    let bytes = engine.decode(p).unwrap_or_default();
                    assert!(!bytes.windows(6).any(|w| secret.as_bytes().windows(6).any(|x| x == w)), "pad {pad}: {out} ({left})");
                }
            }
        }
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02X}")).collect();
    assert_eq!(s.scrub(&format!("dump 00{hex}FF")), "dump 00****FF");
    let utf16: Vec<u8> = secret.encode_utf16().flat_map(u16::to_be_bytes).collect();
    assert!(s.scrub_bytes(&utf16).is_some_and(|o| o == MASK.as_bytes()));
}

#[test]
fn values_learnt_from_a_response_are_bounded() {
    let members: Vec<String> = (0..5000).map(|i| format!(r#"{{"access_token":"tok-{i:05}-abcdefgh"}}"#)).collect();
    let f = finishes_within(300, move || found_secret_values(format!("[{}]", members.join(",")).as_bytes()));
    assert!(f.values.len() == MAX_FOUND_VALUES && !f.complete);
    let body = runs("password=");
    let f = finishes_within(300, move || found_secret_values(body.as_bytes()));
    assert!(f.values.is_empty() && !f.complete, "one value of 4 MiB: beyond the bound");
    let f = found_secret_values(br#"{"access_token":"abc","refresh_token":"abc","id_token":"def"}"#);
    assert!(f.complete && f.values.len() == 2);
    // Beyond the bound the member names still mask, in the body and the headers.
    let mut r = ResponseInfo {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into()), ("X-Echo".into(), "tok-04999-abcdefgh".into())],
        body: br#"{"a":[{"access_token":"tok-04999-abcdefgh"}],"token_type":"Bearer"}"#.to_vec(),
    };
    mask_secret_fields(&mut r, false);
    let body = String::from_utf8_lossy(&r.body);
    assert!(!body.contains("tok-") && body.contains("Bearer"), "{body}");
    assert_eq!(r.headers[1].1, MASK);
    assert_eq!(r.headers[0].1, "application/json");
}

#[test]
fn a_scan_past_the_deadline_masks_the_rest() {
    let mut s = Secrets::new();
    s.add_token("Tok3n-value-aaaaaaaa");
    let text = "x".repeat(3 * DEADLINE_STRIDE);
    let past = std::time::Instant::now();
    let r = s.ranges_by(text.as_bytes(), true, Some(past));
    assert_eq!(r, vec![(DEADLINE_STRIDE, text.len())], "the unchecked part is masked, not let through");
    assert!(s.ranges_by(text.as_bytes(), true, None).is_empty());
}

#[test]
fn a_compressed_body_is_withheld() {
    let mut s = Secrets::new();
    s.add("some-secret-value");
    let mut r = ResponseInfo {
        status: 200,
        headers: vec![("Content-Encoding".into(), "gzip".into()), ("Content-Length".into(), "3".into())],
        body: vec![0x1f, 0x8b, 8],
    };
    s.scrub_response(&mut r);
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("withheld") && body.contains("'gzip'"), "{body}");
    assert!(r.headers.is_empty());
}

/// Random texts over a small alphabet, random secrets: both ways, every occurrence of
/// every needle that must be masked is inside a masked range.
#[test]
fn both_ways_cover_every_occurrence() {
    let seed = std::cell::Cell::new(0x2545_F491_4F6C_DD1Du64);
    let next = |n: usize| {
        let mut x = seed.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seed.set(x);
        (x % n as u64) as usize
    };
    let alphabet = b"ab_-&% ";
    for round in 0..300 {
        let word = |len: usize| -> String { (0..len).map(|_| alphabet[next(alphabet.len())] as char).collect() };
        let secrets: Vec<String> = (0..3).map(|i| word(if i == 0 { 2 + round % 5 } else { 8 + round % 9 })).collect();
        let text = {
            let mut t = String::new();
            while t.len() < 400 {
                t.push_str(&if next(3) == 0 { secrets[next(3)].clone() } else { word(1 + next(6)) });
            }
            t
        };
        let mut s = Secrets::new();
        for x in &secrets {
            s.add(x);
        }
        let hay = text.as_bytes();
        for whole in [false, true] {
            let ranges = s.ranges_by(hay, whole, None);
            let covered = |a: usize, b: usize| ranges.iter().any(|&(s, e)| s <= a && b <= e);
            for v in &s.values {
                for needle in v.needles() {
                    let mut at = 0;
                    while let Some(i) = memchr::memmem::find(&hay[at..], needle) {
                        let (a, b) = (at + i, at + i + needle.len());
                        let must = needle.len() >= WHOLE_WORD_BELOW || stands_alone(hay, a, b);
                        // A long needle overlapping a masked copy of itself is not whole.
                        let broken = needle.len() >= WHOLE_WORD_BELOW && ranges.iter().any(|&(s, e)| s < b && a < e);
                        assert!(
                            !must || covered(a, b) || broken,
                            "round {round}, whole {whole}: {needle:?} at {a} in {text:?}: {ranges:?}"
                        );
                        at = a + 1;
                    }
                }
            }
            // Nothing of a long secret is left whole in the output.
            let out = {
                let mut o = Vec::new();
                let mut at = 0;
                for &(a, b) in &ranges {
                    o.extend_from_slice(&hay[at..a]);
                    o.extend_from_slice(MASK.as_bytes());
                    at = b;
                }
                o.extend_from_slice(&hay[at..]);
                String::from_utf8(o).unwrap()
            };
            for x in &secrets[1..] {
                assert!(!out.contains(x.as_str()), "round {round}, whole {whole}: {x:?} in {out:?}");
            }
        }
    }
}

/// Re-entry never hands out an empty set: masking from inside `remember` (the set is being
/// changed) and remembering from inside `with_call` (the set is being read) both see, and
/// keep, every secret of the call. Before, the first handed the text back unmasked (an
/// empty set when the thread's set was borrowed) and the second dropped the secret.
#[test]
fn re_entering_the_call_scope_never_fails_open() {
    let _call = call_scope();
    remember(|s| s.add("outer-secret-value"));
    remember(|s| {
        let shown = scrub("x outer-secret-value y", &[]);
        assert_eq!(shown, "x **** y", "masking inside remember");
        let cut = shorten(&format!("{}outer-secret-value", "a".repeat(300)));
        assert!(!cut.contains("outer-secret"), "shorten inside remember: {cut}");
        s.add("inner-secret-value");
    });
    with_call(|set| {
        remember(|s| s.add("nested-secret-value"));
        assert_eq!(set.scrub("outer-secret-value"), "****");
        assert_eq!(scrub("nested-secret-value", &[]), "****", "remembered inside with_call, seen at once");
    });
    assert_eq!(scrub("outer-secret-value inner-secret-value nested-secret-value", &[]), "**** **** ****");
}

#[test]
fn calls_share_one_layer_of_earlier_values_made_again_after_each_change() {
    use std::time::{Duration, Instant};
    let token = "layered-token-value-0123456789";
    remember_token_for_later(token, Instant::now() + Duration::from_secs(3600));
    let layer = || {
        let _call = call_scope();
        with_call(|s| s.base[0].clone()).expect("a call starts on the layer of kept values")
    };
    // Unchanged (tests on other threads may keep values meanwhile: then it is made again).
    for _ in 0..100 {
        let before = LATER_CHANGES.load(std::sync::atomic::Ordering::Acquire);
        let (a, b) = (layer(), layer());
        if LATER_CHANGES.load(std::sync::atomic::Ordering::Acquire) == before {
            assert!(std::sync::Arc::ptr_eq(&a, &b), "unchanged: one layer for every call");
            break;
        }
    }
    // A proof sent in a call is in the layer of every call that starts after it.
    let proof = "eyJhbGciOiJFUzI1NiJ9.eyJsYXllcmVkIjoxfQ.layered-proof-signature";
    {
        let _call = call_scope();
        remember_request_headers(&mut [("DPoP".into(), proof.into())]);
    }
    let masked = std::thread::spawn(move || {
        let _call = call_scope();
        scrub(&format!("{token} {proof} {}", URL_SAFE_NO_PAD.encode(proof)), &[])
    })
    .join()
    .unwrap();
    assert_eq!(masked, "**** **** ****");
    // The call's own values and the layer's are masked together, in one text, also
    // where they overlap or touch.
    {
        let _call = call_scope();
        remember(|s| s.add_token("call-own-token-abcdefgh"));
        assert_eq!(scrub_for_call(&format!("x{token}call-own-token-abcdefgh y")), "x******** y");
        assert_eq!(scrub_for_call(&format!("{}call-own-token-abcdefgh", &token[..20])), format!("{}****", &token[..20]));
    }
}

#[test]
fn a_shared_client_secret_masks_what_add_client_secret_does() {
    let (id, secret) = ("client.id", "s3cr3t/+ value&more");
    let mut own = Secrets::new();
    own.add_client_secret(id, secret);
    let mut shared = Secrets::new();
    let s = SharedSecret::client_secret(id, secret);
    shared.add_shared(&s);
    assert_eq!(format!("{s:?}"), "SharedSecret(****)");
    let basic =
        STANDARD_NO_PAD.encode(format!("{id}:{}", secret.replace('/', "%2F").replace('+', "%2B").replace(' ', "+").replace('&', "%26")));
    let text = format!("a {secret} b {basic} c {} d", STANDARD_NO_PAD.encode(secret));
    assert_eq!(shared.scrub(&text), own.scrub(&text));
    assert!(!shared.scrub(&text).contains(secret) && shared.scrub(&text).matches(MASK).count() >= 2, "{}", shared.scrub(&text));
    // `add` of a value held as a client secret (the session log's list) adds no copy.
    shared.add(secret);
    assert_eq!(shared.values.len(), 1);
}

#[test]
fn every_proof_sent_is_masked_by_the_next_call_across_chunks() {
    // Kept one by one: most join the chunk being filled (the layers are brought up to date
    // in place), some start a chunk (the layers are made again); every call that starts
    // after a proof was sent masks it, and the ones before it.
    let proofs: Vec<String> = (0..2 * PROOF_CHUNK + 3).map(|i| format!("eyJhbGciOiJFUzI1NiJ9.eyJuIjo{i}fQ.chunked-proof-{i:04}")).collect();
    for (i, proof) in proofs.iter().enumerate() {
        {
            let _call = call_scope();
            remember_request_headers(&mut [("DPoP".into(), proof.clone())]);
        }
        let _call = call_scope();
        for earlier in &proofs[i.saturating_sub(MAX_LATER_PROOFS - 1)..=i] {
            let text = format!("echo {earlier} and {}", STANDARD_NO_PAD.encode(earlier));
            assert_eq!(scrub_for_call(&text), "echo **** and ****", "proof {i}");
        }
    }
}

/// The bigram filter never rejects a needle that is there, in short texts and long ones,
/// and rejects one whose pairs are not there.
#[test]
fn bigrams_never_reject_a_needle_that_is_there() {
    use super::matcher::Bigrams;
    for len in [3, 100, 256, 257, 5000] {
        let hay: Vec<u8> = (0..len).map(|i| (i * 7919 % 251) as u8).collect();
        let grams = Bigrams::of(&hay);
        for start in (0..len - 2).step_by(7) {
            for n in [2, 3, 8, 20] {
                let end = (start + n).min(len);
                assert!(grams.may_hold(&hay[start..end]), "len {len}: {start}..{end} is in the text");
            }
        }
    }
    assert!(!Bigrams::of(b"aaaaaaaaaaaaaaaa").may_hold(b"zzzz"));
    assert!(!Bigrams::of("a".repeat(1000).as_bytes()).may_hold(b"zzzz"));
}

/// A long text (searched with automata, one per layer) holds proofs kept by earlier calls,
/// some in the chunk being filled (a layer searched with the call's own values) and some
/// perhaps in completed chunks (the shared layer): all are masked, in any form, as is the
/// call's own token.
#[test]
fn a_long_text_is_masked_for_every_layer_of_kept_proofs() {
    use base64::Engine;
    let proofs: Vec<String> =
        (0..3).map(|i| format!("eyJhbGciOiJFUzI1NiJ9.eyJsb25nIjp7fX0.long-text-proof-{i}-{}", "s".repeat(40 + i))).collect();
    for p in &proofs {
        let _call = call_scope();
        remember_request_headers(&mut [("DPoP".into(), p.clone())]);
    }
    let _call = call_scope();
    remember(|s| s.add_token("the-long-text-call-token-0123456789"));
    let filler = "x".repeat(1 << 20);
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&proofs[2]);
    let text = format!("{filler}{} {filler}{b64} {filler}{} {} the-long-text-call-token-0123456789 end", proofs[1], proofs[0], "y");
    let masked = scrub_for_call(&text);
    for p in &proofs[..2] {
        assert!(!masked.contains(p.as_str()), "a kept proof is in a long text");
    }
    assert!(!masked.contains(&b64), "the base64 of a kept proof is in a long text");
    assert!(!masked.contains("the-long-text-call-token"), "the call's own token is in a long text");
    assert!(masked.ends_with(" end") && masked.len() > 3 << 20);
}

/// The base64 of a dump holding a 9-, 10- or 13-byte secret at an alignment where its
/// first bytes share a group with the data before it has, as the characters that depend
/// on the secret alone, fewer characters than the secret has bytes: a header value or
/// name that is just those characters (6 or 9 of the secret's bytes) is shorter than the
/// secret, and was taken to hold none of its forms.
#[test]
fn a_text_shorter_than_the_secret_holding_a_shorter_base64_core_is_masked() {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let all = "k3Y9/w+Q7zLp_R2m";
    for len in 5..=all.len() {
        let secret = &all[..len];
        let mut token = Secrets::new();
        token.add_token(secret);
        let mut client = Secrets::new();
        client.add_client_secret("m2m", secret);
        for lead in 0..3 {
            let full = (len - lead) / 3 * 3;
            if full < 6 {
                continue; // fewer than 6 of the secret's bytes (the rule: no 6 of them left)
            }
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                let core = engine.encode(&secret.as_bytes()[lead..lead + full]);
                for s in [&token, &client] {
                    assert_eq!(s.scrub(&core), MASK, "{len}-byte secret, lead {lead}: {core}");
                    assert!(s.in_header_name(&core), "{len}-byte secret, lead {lead}: header name {core}");
                }
            }
        }
    }
    // The bound the search goes by is never above the shortest needle, for any length.
    for len in 1..=40 {
        let s = "a/b+c%d~".repeat(5);
        let s = &s[..len];
        let kinds = [Kind::Token, Kind::Found, Kind::Encoded, Kind::ClientSecret(Zeroizing::new("m2m".into()))];
        for kind in kinds {
            let v = Value::new(s, kind);
            let shortest = v.needles().map(<[u8]>::len).min().unwrap_or(usize::MAX);
            assert!(v.shortest_needle() <= shortest, "{len} bytes: {} > {shortest}", v.shortest_needle());
        }
    }
}
