"""Issue 12 from Python: request headers, a POST with an Idempotency-Key and its Location,
a binary download (bytes 0..255), status text and header lookup against the real peers
with nonces required; strict attributes (no silent no-op on a misspelt or Chilkat-style
name); configuration errors without a stale HTTP status; the C names of PrivateKey."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import Peers, dpopkit, fixture

R = dpopkit.Result


def test_porting_flow_with_nonces(start_peers, tmp_path: Path) -> None:
    peers: Peers = start_peers("--as-nonce", "--rs-nonce")
    log = tmp_path / "session.log"
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        http.session_log_filename = str(log)
        assert http.last_status_text == ""
        assert http.last_response_header_value("Location") is None
        assert http.last_response_body_bytes == b""

        http.set_request_header("Accept", "application/json")
        http.set_request_header("X-Correlation-Id", "py-corr-1")
        http.set_request_header("X-Api-Key", "py-api-key-123456")
        echoed = json.loads(http.quick_get_bytes(f"{peers.rs}/api/echo-headers"))
        assert echoed["headers"]["accept"] == "application/json"
        assert echoed["headers"]["x-correlation-id"] == "py-corr-1"
        assert echoed["headers"]["x-api-key"] == "****", "an echoed API key is masked"
        assert http.last_status == 200 and http.last_status_text == "OK"
        assert http.last_response_header_value("x-repeated") == "first, second"

        http.set_request_header("Idempotency-Key", "py-idem-1")
        created_raw = http.quick_request_bytes("POST", f"{peers.rs}/api/items", "application/json", b'{"name":"widget"}')
        assert isinstance(created_raw, bytes)
        created = json.loads(created_raw)
        assert created["idempotency_key"] == "py-idem-1"
        assert http.last_status == 201 and http.last_status_text == "Created"
        assert http.last_response_header_value("LOCATION") == f"/api/items/{created['id']}"
        assert http.last_response_header_value("ETag") == f'"item-{created["id"]}"'
        assert http.last_response_header_value("X-Absent") is None
        # The str API sees the headers too; a str body goes as UTF-8.
        assert "py-idem-1" in http.quick_request_str("POST", f"{peers.rs}/api/items", "application/json", "{}")
        assert json.loads(http.quick_request_bytes("POST", f"{peers.rs}/api/items", "application/json", "{}"))["id"] > 0
        http.remove_request_header("idempotency-key")

        data = http.quick_get_bytes(f"{peers.rs}/api/bytes")
        assert data == bytes(range(256))
        assert http.last_response_body_bytes == data
        assert http.last_response_body is None, "not text"
        with pytest.raises(dpopkit.DpopkitError) as e:
            http.quick_get_str(f"{peers.rs}/api/bytes")
        assert e.value.code == R.RESPONSE_NOT_TEXT and "bytes" in e.value.text
        odd = b"\x00\xff\xfe a\x00\xc3("
        assert http.quick_request_bytes("PUT", f"{peers.rs}/api/echo-bytes", "application/octet-stream", odd) == odd
        assert http.quick_request_bytes("PUT", f"{peers.rs}/api/echo-bytes", None, bytearray(odd)) == odd
        assert http.quick_get_bytes(f"{peers.rs}/api/empty") == b""
        assert http.last_status == 204 and http.last_status_text == "No Content"

        # A failure: the error carries the status; the body and headers stay readable.
        with pytest.raises(dpopkit.DpopkitError) as e:
            http.quick_get_bytes(f"{peers.rs}/nowhere")
        assert e.value.code == R.HTTP_STATUS and e.value.status == 404
        text = http.last_error_text
        assert http.last_response_header_value("content-type") == "application/json; charset=utf-8"
        assert http.last_error_text == text, "a header lookup keeps the failed call's error"
        assert json.loads(http.last_response_body_bytes)["error"] == "not_found"
        assert http.last_status_text == "Not Found"

        http.clear_request_headers()
        echoed = json.loads(http.quick_get_bytes(f"{peers.rs}/api/echo-headers"))
        assert "x-correlation-id" not in echoed["headers"] and "x-api-key" not in echoed["headers"]
    assert peers.tokens_issued() == 1
    logged = log.read_text()
    assert "X-Correlation-Id: py-corr-1" in logged and "X-Api-Key: ****" in logged
    assert "py-api-key-123456" not in logged


def test_header_rules_raise_with_the_reason() -> None:
    with dpopkit.Http() as http:
        for name in ["Authorization", "DPoP", "Host", "Content-Length", "Transfer-Encoding", "Connection"]:
            with pytest.raises(dpopkit.DpopkitError) as e:
                http.set_request_header(name, "x")
            assert e.value.code == R.INVALID_ARGUMENT and "cannot be set" in e.value.text, name
            assert e.value.status == 0
        with pytest.raises(dpopkit.DpopkitError) as e:
            http.set_request_header("X-A", "a\r\nX-Injected: 1")
        assert "line break" in e.value.text
        with pytest.raises(dpopkit.DpopkitError):
            http.set_request_header("Bad Name", "v")
        with pytest.raises(ValueError):
            http.set_request_header("X-A", "a\0b")  # a C string cannot carry it
        with pytest.raises(TypeError):
            http.quick_request_bytes("POST", "http://127.0.0.1:9/", None, 42)  # type: ignore[arg-type]
        http.set_request_header("X-Empty", "")
        http.remove_request_header("X-Never-Set")


def test_unknown_attributes_raise_instead_of_doing_nothing() -> None:
    with dpopkit.Http() as http, dpopkit.PrivateKey() as key, dpopkit.JsonObject() as j:
        with pytest.raises(AttributeError) as e:
            http.SessionLogFilename = "x"  # type: ignore[attr-defined]
        assert "session_log_filename" in str(e.value), "the message names the Python attribute"
        assert http.session_log_filename is None
        for obj, name in [(http, "FollowRedirects"), (http, "folow_redirects"), (key, "Password"), (j, "anything")]:
            with pytest.raises(AttributeError):
                setattr(obj, name, 1)
            assert not hasattr(obj, name)
        with pytest.raises(AttributeError):
            http.last_status = 5  # type: ignore[misc]  (read-only)
        # The properties that exist still work.
        http.follow_redirects = False
        assert http.follow_redirects is False
        http.max_response_size = 1000
        assert http.max_response_size == 1000
        http.proxy = ""
        assert http.proxy == ""


def test_configuration_errors_carry_no_earlier_http_status(peers: Peers) -> None:
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        with pytest.raises(dpopkit.DpopkitError) as e:
            http.quick_get_str(f"{peers.rs}/nowhere")
        assert e.value.status == 404
        for configure in [
            lambda: http.set_timeouts(0, 1),
            lambda: setattr(http, "proxy", "socks5://p:1"),
            lambda: setattr(http, "auth_token", "{"),
            lambda: http.set_request_header("Host", "x"),
            lambda: setattr(http, "ca_file", "/nonexistent/ca.pem"),
        ]:
            with pytest.raises(dpopkit.DpopkitError) as e:
                configure()
            assert e.value.status == 0, f"{e.value!r} carries the 404 of the earlier request"
            assert "HTTP 404" not in str(e.value)
        assert http.last_status == 404, "the last status itself is still readable"


def test_private_key_has_the_c_names_and_keeps_the_aliases() -> None:
    with dpopkit.PrivateKey() as key:
        assert key.load_any_format_file(fixture("ec_sec1.pem")) is key
        jkt = key.jwk_thumbprint
        assert key.load_any_format(key.pkcs8_pem) is key and key.jwk_thumbprint == jkt
        assert key.load_file(fixture("ec.jwk")) is key
        assert key.load(key.jwk) is key
        with pytest.raises(dpopkit.DpopkitError) as e:
            key.load_any_format_file(fixture("ec_pkcs8_enc.pem"), "wrong")
        assert e.value.code == R.KEY_FORMAT
        assert "load_any_format_file" in (dpopkit.PrivateKey.load_file.__doc__ or "")
        assert "Alias" not in (dpopkit.PrivateKey.load_any_format_file.__doc__ or "")
        with pytest.raises(dpopkit.DpopkitError) as e:
            key.generate_pkcs11("pkcs11:token=t;object=k?module-path=/nonexistent/dpopkit-test-module.so", "1234")
        assert e.value.code in (R.FILE_IO, R.INVALID_ARGUMENT), e.value
        assert "module" in e.value.text
