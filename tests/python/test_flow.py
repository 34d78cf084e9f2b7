"""The sample flow from Python against the real peers: every nonce mode, token reuse,
client_secret_basic, every key format, POST bodies, the session log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import FIXTURES, Peers, claim, contains_jwt, dpopkit, fixture


def sample_flow(peers: Peers, calls: int = 3) -> None:
    with dpopkit.PrivateKey.from_file(fixture("ec_sec1.pem")) as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        for _ in range(calls):
            body = http.quick_get_str(peers.api)
            assert http.last_status == 200
            assert http.last_method_success is True
            assert http.last_error_code == dpopkit.Result.OK
            assert http.last_error_text == ""
            assert claim(body, "client_id") == "m2m.dpop"
            assert claim(body, "scope") == "api"
            cnf = json.loads(claim(body, "cnf") or "{}")
            assert cnf.get("jkt") == key.jwk_thumbprint, "token bound to our key"
        assert http.last_response_body == body
        assert "content-type: application/json" in http.last_response_header.lower()
    assert peers.tokens_issued() == 1, f"{peers.args}: one token for {calls} calls"
    assert peers.rs_stats()["ok"] == calls


def test_sample_flow_in_every_nonce_mode(peers_mode: Peers) -> None:
    sample_flow(peers_mode)


def test_nonce_retries_happen_once_then_nonces_are_reused(start_peers) -> None:
    peers = start_peers("--as-nonce", "--rs-nonce")
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        for _ in range(6):
            http.quick_get_str(peers.api)
    assert peers.token_requests() == 2, "one use_dpop_nonce refusal, one success"
    s = peers.rs_stats()
    assert (s["requests"], s["ok"]) == (7, 6), s


def test_token_is_reused_across_many_calls(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        for _ in range(40):
            http.quick_get_str(peers.api)
            assert http.last_status == 200
    assert peers.tokens_issued() == 1
    assert peers.token_requests() == 1
    assert peers.rs_stats()["ok"] == 40


def test_two_http_objects_with_one_key_share_one_token(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as a, dpopkit.Http() as b:
        for http in (a, b):
            http.set_dpop_key(key)
            http.auth_token = peers.auth_token()
            http.quick_get_str(peers.api)
    assert peers.tokens_issued() == 1


def test_client_secret_basic(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token(client_id="m2m.dpop.basic", client_auth_method="client_secret_basic")
        assert claim(http.quick_get_str(peers.api), "client_id") == "m2m.dpop.basic"


def test_auth_token_from_a_json_object_and_from_a_dict(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http, dpopkit.JsonObject() as auth:
        http.set_dpop_key(key)
        auth.update_string("client_secret", "secret")
        auth.update_string("client_id", "m2m.dpop")
        auth.update_string("token_endpoint", peers.token_endpoint)
        auth.update_string("scope", "api")
        http.auth_token = auth
        assert claim(http.quick_get_str(peers.api), "client_id") == "m2m.dpop"
        http.auth_token = json.loads(peers.auth_token())
        assert claim(http.quick_get_str(peers.api), "client_id") == "m2m.dpop"
        with pytest.raises(AttributeError, match="write-only"):
            http.auth_token  # noqa: B018


def test_post_with_a_body(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        sent = json.dumps({"greeting": "héllo wörld ✓"}, ensure_ascii=False)
        body = http.quick_request_str("POST", peers.api, "application/json", sent)
        assert http.last_status == 200
        assert claim(body, "request_body") == sent, "UTF-8 body round trip"
        # No body at all is fine too.
        body = http.quick_request_str("DELETE", peers.api)
        assert claim(body, "client_id") == "m2m.dpop"


def test_every_key_format_gets_a_200(peers: Peers) -> None:
    expected_jkt = (FIXTURES / "ec.jkt").read_text().strip()
    with dpopkit.Http() as http:
        http.auth_token = peers.auth_token()
        for name, password in [
            ("ec_sec1.pem", None),
            ("ec_pkcs8.pem", None),
            ("ec_pkcs8_enc.pem", "test-password"),
            ("ec_sec1.der", None),
            ("ec_pkcs8.der", None),
            ("ec_pkcs8_enc.der", b"test-password"),
            ("ec.jwk", None),
        ]:
            with dpopkit.PrivateKey.from_file(FIXTURES / name, password) as key:
                assert key.jwk_thumbprint == expected_jkt, name
                http.set_dpop_key(key)
            # The Http keeps its own reference: the key object is closed already.
            http.quick_get_str(peers.api)
    assert peers.tokens_issued() == 1, "all formats hold the same key"
    # Text loading, and a generated key exported and reloaded.
    with dpopkit.PrivateKey.from_text((FIXTURES / "ec.jwk").read_text()) as key:
        assert key.jwk_thumbprint == expected_jkt
    with dpopkit.PrivateKey.generate() as generated, dpopkit.PrivateKey() as reloaded, dpopkit.Http() as http:
        reloaded.load(generated.pkcs8_pem)
        assert reloaded.jwk_thumbprint == generated.jwk_thumbprint
        http.set_dpop_key(reloaded)
        http.auth_token = peers.auth_token()
        http.quick_get_str(peers.api)


def test_session_log_holds_no_secret(start_peers, tmp_path: Path) -> None:
    peers = start_peers("--as-nonce", "--rs-nonce")
    log = tmp_path / "sessionLog.txt"
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        d = json.loads(key.jwk)["d"]
        assert "d" not in json.loads(key.public_jwk)
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        http.session_log_filename = log
        assert http.session_log_filename == str(log)
        http.quick_get_str(peers.api)
        http.session_log_filename = None  # stops logging
        assert http.session_log_filename is None
        size = log.stat().st_size
        http.quick_get_str(peers.api)
        assert log.stat().st_size == size, "nothing logged after logging stopped"
    text = log.read_text()
    assert "POST /token HTTP/1.1" in text and "GET /api/test HTTP/1.1" in text, text
    assert "client_secret=****" in text, text
    assert "=secret" not in text and not contains_jwt(text) and d not in text, text


def test_settings_that_work(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        assert http.max_response_size == 16 * 1024 * 1024
        http.set_timeouts(5000, 20000)
        http.max_response_size = 1 << 20
        assert http.max_response_size == 1 << 20
        http.quick_get_str(peers.api)
        assert http.last_status == 200


def test_redirects_followed_or_refused() -> None:
    """A local server: /r redirects to /ok on the same origin. No peers needed."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/r":
                self.send_response(302)
                self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                body = b"arrived"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/r"
        with dpopkit.Http() as http:
            assert http.follow_redirects is True
            assert http.quick_get_str(url) == "arrived"
            assert http.last_status == 200
            http.follow_redirects = False
            assert http.follow_redirects is False
            with pytest.raises(dpopkit.DpopkitError) as info:
                http.quick_get_str(url)
            assert info.value.code == dpopkit.Result.HTTP_STATUS and info.value.status == 302
            assert "location: /ok" in http.last_response_header.lower()
    finally:
        server.shutdown()
        server.server_close()


def test_trust_and_proxy_settings(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        assert (http.proxy, http.ca_file, http.use_os_trust_store) == (None, None, False)
        http.proxy = ""  # no proxy at all, whatever the environment says
        assert http.proxy == ""
        http.use_os_trust_store = True
        assert http.use_os_trust_store is True
        http.use_os_trust_store = False
        http.ca_file = None
        http.quick_get_str(peers.api)
        assert http.last_status == 200


def test_token_cache_clear_fetches_a_new_token(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        http.quick_get_str(peers.api)
        http.quick_get_str(peers.api)
        assert peers.tokens_issued() == 1
        dpopkit.token_cache_clear()
        http.quick_get_str(peers.api)
        assert peers.tokens_issued() == 2


def test_a_forked_child_and_its_parent_never_send_the_same_proof(peers: Peers) -> None:
    """A process that forks after a DPoP call (a pre-fork server, multiprocessing) copies
    everything dpopkit holds: the token, and the random bits it has ready for the next
    proofs' jti. The child's proofs and the parent's must still differ: the resource
    server remembers jtis (RFC 9449 §11.1) and refuses a repeated one as a replay."""
    import os

    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        http.quick_get_str(peers.api)
        assert http.last_status == 200, http.last_error_text
        pid = os.fork()
        if pid == 0:  # the child: its own Http object (its own connections), the same key
            code = 3
            try:
                with dpopkit.Http() as child:
                    child.set_dpop_key(key)
                    child.auth_token = peers.auth_token()
                    statuses = []
                    for _ in range(3):
                        child.quick_get_str(peers.api)
                        statuses.append(child.last_status)
                    code = 0 if statuses == [200, 200, 200] else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"the child's calls failed: wait status {status}"
        # The parent, after the child: the jtis it sends next were also the child's next.
        for _ in range(3):
            body = http.quick_get_str(peers.api)
            assert http.last_status == 200, f"parent after fork: {http.last_status} {http.last_error_text} {body}"
    assert peers.tokens_issued() == 1
    assert peers.rs_stats()["ok"] == 7
