"""Every error the core names, as DpopkitError with its Result code, from Python."""

from __future__ import annotations

import socket

import pytest

from helpers import Peers, dpopkit, fixture

R = dpopkit.Result


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_with(auth_token: str) -> dpopkit.Http:
    http = dpopkit.Http()
    with dpopkit.PrivateKey.generate() as key:
        http.set_dpop_key(key)
    http.auth_token = auth_token
    return http


def test_error_object_shape() -> None:
    e = dpopkit.DpopkitError(17, 404, "GET http://x: HTTP 404")
    assert e.code is R.HTTP_STATUS and e.status == 404 and e.text.endswith("404")
    assert "HTTP_STATUS" in str(e) and "404" in str(e)
    assert isinstance(e, Exception)
    # A code this module does not know (from a newer library) is kept, not lost.
    assert int(dpopkit.DpopkitError(4242, 0, "?").code) == 4242


def test_wrong_secret_is_token_endpoint_401_without_the_secret(peers: Peers) -> None:
    with http_with(peers.auth_token(client_secret="not-the-secret-42")) as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        e = info.value
        assert e.code == R.TOKEN_ENDPOINT
        assert e.status == 401
        assert "invalid_client" in e.text
        assert "not-the-secret-42" not in e.text and "not-the-secret-42" not in str(e)
        # Chilkat-style state stays readable after the exception.
        assert http.last_method_success is False
        assert http.last_error_code == R.TOKEN_ENDPOINT
        assert http.last_error_text == e.text
        assert http.last_status == 401
        assert "invalid_client" in (http.last_response_body or "")


def test_small_rsa_key_is_key_unsupported() -> None:
    with pytest.raises(dpopkit.DpopkitError) as info:
        dpopkit.PrivateKey.from_file(fixture("rsa1024.pem"))
    assert info.value.code == R.KEY_UNSUPPORTED
    assert "1024 bits" in info.value.text and "2048" in info.value.text and "keygen --alg PS256" in info.value.text
    for name in ("p521_sec1.pem", "secp256k1_pkcs8.pem"):
        with pytest.raises(dpopkit.DpopkitError) as info:
            dpopkit.PrivateKey.from_file(fixture(name))
        assert info.value.code == R.KEY_UNSUPPORTED, name
    for name, alg in (("p384_pkcs8.pem", "ES384"), ("p384_sec1.pem", "ES384"), ("ed25519.pem", "EdDSA")):
        with dpopkit.PrivateKey.from_file(fixture(name)) as key:
            assert key.alg == alg, name


def test_missing_file_is_file_io() -> None:
    with dpopkit.PrivateKey() as key:
        with pytest.raises(dpopkit.DpopkitError) as info:
            key.load_file(fixture("does-not-exist.pem"))
        assert info.value.code == R.FILE_IO
        assert "does-not-exist.pem" in info.value.text
        assert key.last_error_code == R.FILE_IO
        assert "does-not-exist.pem" in key.last_error_text


def test_wrong_password_is_key_format_and_keeps_the_previous_key() -> None:
    with dpopkit.PrivateKey.generate() as key:
        before = key.jwk_thumbprint
        with pytest.raises(dpopkit.DpopkitError) as info:
            key.load_file(fixture("ec_pkcs8_enc.pem"), "wrong")
        assert info.value.code == R.KEY_FORMAT
        assert "wrong password" in info.value.text
        assert "test-password" not in info.value.text
        assert key.jwk_thumbprint == before, "a failed load keeps the previous key"
        with pytest.raises(dpopkit.DpopkitError) as info:
            key.load("this is not a key")
        assert info.value.code == R.KEY_FORMAT


def test_unreachable_server_is_transport() -> None:
    port = closed_port()
    auth = f'{{"client_id":"m2m.dpop","client_secret":"secret","token_endpoint":"http://127.0.0.1:{port}/token"}}'
    with http_with(auth) as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str("http://127.0.0.1:9/api")
        assert info.value.code == R.TRANSPORT
        assert f"127.0.0.1:{port}" in info.value.text
        assert info.value.status == 0 and http.last_status == 0


def test_bearer_token_is_token_not_dpop_bound(peers: Peers) -> None:
    with http_with(peers.auth_token(token_endpoint=f"{peers.issuer}/bearer-token")) as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        assert info.value.code == R.TOKEN_NOT_DPOP_BOUND
        assert "allow_bearer" in info.value.text


@pytest.mark.parametrize("kind,expect", [("html", "not JSON"), ("garbage", "not JSON"), ("noaccess", "access_token")])
def test_bad_token_response_is_token_response(peers: Peers, kind: str, expect: str) -> None:
    with http_with(peers.auth_token(token_endpoint=f"{peers.issuer}/bad-token/{kind}")) as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        assert info.value.code == R.TOKEN_RESPONSE, kind
        assert expect in info.value.text, kind


def test_404_from_the_rs_is_http_status(peers: Peers) -> None:
    with http_with(peers.auth_token()) as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(f"{peers.rs}/nope")
        assert info.value.code == R.HTTP_STATUS
        assert info.value.status == 404
        assert http.last_status == 404
        assert http.last_error_code == R.HTTP_STATUS
        assert "not_found" in (http.last_response_body or "")
        # The next success resets the state.
        http.quick_get_str(peers.api)
        assert (http.last_status, http.last_method_success, http.last_error_text) == (200, True, "")


def test_401_from_the_rs_without_credentials(peers: Peers) -> None:
    with dpopkit.Http() as plain:
        with pytest.raises(dpopkit.DpopkitError) as info:
            plain.quick_get_str(peers.api)
        assert info.value.code == R.HTTP_STATUS and info.value.status == 401
        assert "www-authenticate: dpop" in plain.last_response_header.lower()


def test_non_http_url_is_invalid_argument() -> None:
    with dpopkit.Http() as http:
        for url in ("ftp://example.com/x", "not a url", ""):
            with pytest.raises(dpopkit.DpopkitError) as info:
                http.quick_get_str(url)
            assert info.value.code == R.INVALID_ARGUMENT, url
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_request_str("BAD METHOD", "http://127.0.0.1:9/")
        assert info.value.code == R.INVALID_ARGUMENT
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.set_timeouts(0, 1000)
        assert info.value.code == R.INVALID_ARGUMENT
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.max_response_size = 0
        assert info.value.code == R.INVALID_ARGUMENT
        assert http.max_response_size == 16 * 1024 * 1024, "unchanged after a refused setting"


def test_out_of_range_numbers_are_refused_before_ctypes_wraps_them() -> None:
    with dpopkit.Http() as http:
        with pytest.raises(ValueError):
            http.set_timeouts(-1, 1000)
        with pytest.raises(ValueError):
            http.set_timeouts(1000, 2**32)
        with pytest.raises(ValueError):
            http.max_response_size = -1
        with pytest.raises(TypeError):
            http.set_timeouts(1.5, 1000)  # type: ignore[arg-type]


def test_empty_key_object_is_no_key() -> None:
    with dpopkit.PrivateKey() as empty, dpopkit.Http() as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.set_dpop_key(empty)
        assert info.value.code == R.NO_KEY
        with pytest.raises(dpopkit.DpopkitError) as info:
            empty.jwk_thumbprint
        assert info.value.code == R.NO_KEY


def test_missing_dpop_key_is_no_key(peers: Peers) -> None:
    with dpopkit.Http() as http:
        http.auth_token = peers.auth_token()
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        assert info.value.code == R.NO_KEY


def test_bad_auth_token_json_is_auth_token() -> None:
    with dpopkit.Http() as http:
        for bad in ("not json", "[]", '{"client_id":"m2m.dpop","client_secret":"secret"}'):
            with pytest.raises(dpopkit.DpopkitError) as info:
                http.auth_token = bad
            assert info.value.code == R.AUTH_TOKEN, bad
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.auth_token = '{"client_id":"m2m.dpop","client_secret":"s3cr3t-value","token_endpoint":"ftp://x"}'
        assert "s3cr3t-value" not in info.value.text


def test_response_too_large(peers: Peers) -> None:
    with http_with(peers.auth_token()) as http:
        http.max_response_size = 10
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        assert info.value.code == R.RESPONSE_TOO_LARGE


def test_json_errors() -> None:
    with dpopkit.JsonObject('{"a":"1"}') as j:
        with pytest.raises(dpopkit.DpopkitError) as info:
            j.string_of("missing")
        assert info.value.code == R.JSON
        with pytest.raises(dpopkit.DpopkitError) as info:
            j.load("[1, 2]")
        assert info.value.code == R.JSON
        assert j.emit() == '{"a":"1"}', "content unchanged after a failed load"
    with pytest.raises(dpopkit.DpopkitError) as info:
        dpopkit.JsonObject("not json")
    assert info.value.code == R.JSON


def test_strings_python_cannot_pass_safely_are_refused() -> None:
    with dpopkit.JsonObject() as j:
        with pytest.raises(ValueError, match="NUL"):
            j.update_string("a", "before\0after")  # would be cut short in C
        with pytest.raises(UnicodeEncodeError):
            j.update_string("a", "\udcff")  # lone surrogate: not encodable as UTF-8
        with pytest.raises(TypeError):
            j.update_string("a", 42)  # type: ignore[arg-type]
        # bytes are passed as is: invalid UTF-8 reaches the library, which refuses it.
        with pytest.raises(dpopkit.DpopkitError) as info:
            j.update_string("a", b"\xff\xfe")
        assert info.value.code == R.INVALID_UTF8


def test_wrong_object_type_is_a_type_error() -> None:
    with dpopkit.Http() as http, dpopkit.JsonObject() as j:
        with pytest.raises(TypeError):
            http.set_dpop_key(j)  # type: ignore[arg-type]


def test_closed_objects_raise_value_error() -> None:
    key = dpopkit.PrivateKey.generate()
    json_obj = dpopkit.JsonObject()
    http = dpopkit.Http()
    for obj in (key, json_obj, http):
        obj.close()
        obj.close()  # idempotent
        assert obj.closed
        assert "closed" in repr(obj)
    uses = [
        lambda: key.jwk_thumbprint,
        lambda: key.pkcs8_pem,
        lambda: key.jwk,
        lambda: key.public_jwk,
        lambda: key.load_file(fixture("ec_sec1.pem")),
        lambda: key.load("x"),
        lambda: key.generate(),
        lambda: key.last_error_text,
        lambda: key.last_error_code,
        lambda: json_obj.emit(),
        lambda: json_obj.update_string("a", "b"),
        lambda: json_obj.load("{}"),
        lambda: json_obj.string_of("a"),
        lambda: http.quick_get_str("http://127.0.0.1:9/"),
        lambda: http.quick_request_str("GET", "http://127.0.0.1:9/"),
        lambda: setattr(http, "auth_token", "{}"),
        lambda: setattr(http, "session_log_filename", None),
        lambda: setattr(http, "max_response_size", 1000),
        lambda: http.set_timeouts(1, 1),
        lambda: http.last_status,
        lambda: http.last_method_success,
        lambda: http.last_response_body,
        lambda: http.last_response_header,
        lambda: http.last_error_text,
        lambda: http.handle,
        lambda: http.__enter__(),
    ]
    for use in uses:
        with pytest.raises(ValueError, match="closed"):
            use()
    with dpopkit.Http() as live:
        with pytest.raises(ValueError, match="PrivateKey object is closed"):
            live.set_dpop_key(key)


def test_bad_trust_and_proxy_settings(tmp_path) -> None:
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    with dpopkit.Http() as http:
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.ca_file = tmp_path / "missing-ca.pem"
        assert info.value.code == R.FILE_IO
        assert "missing-ca.pem" in info.value.text
        assert http.ca_file is None, "unchanged after a refused setting"
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.ca_file = not_pem
        assert info.value.code in (R.FILE_IO, R.INVALID_ARGUMENT, R.TLS), info.value
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.proxy = "not a proxy url"
        assert info.value.code == R.INVALID_ARGUMENT
        assert http.proxy is None
