"""DPoP keys inside a PKCS#11 token (SoftHSM2) from Python: the sample flow with nonces at
the AS and the RS, in this process and as the sample script (tests/python/sample_flow.py,
a pkcs11: URI in place of the key file), 8 threads x 50 calls on one handle with one token
fetch, a key created in the token through dpopkit_key_generate_pkcs11 (non-extractable),
and the error cases. SoftHSM2 must be installed (scripts/setup.sh installs it): without it
these tests FAIL with that message, they are never skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, List

import pytest

from helpers import BINDINGS, Peers, claim, dpopkit
from dpopkit import _native

R = dpopkit.Result
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"
SAMPLE = Path(__file__).resolve().parent / "sample_flow.py"


class Hsm:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "softhsm2.conf"

    def uri(self, token: str, obj: str, extra: str = "") -> str:
        return f"pkcs11:token={token};object={obj}?module-path={MODULE}{extra}"


@pytest.fixture(scope="module")
def hsm() -> Iterator[Hsm]:
    """A SoftHSM2 store in a temporary directory with the tokens these tests use. The
    environment variable is set before this process first loads the module (SoftHSM reads
    it in C_Initialize, once per process); no other test file loads a PKCS#11 module."""
    if not os.path.exists(MODULE) or shutil.which("softhsm2-util") is None:
        pytest.fail(
            f"SoftHSM2 is not installed ({MODULE} / softhsm2-util missing): run `bash scripts/setup.sh` "
            "(apt-get install softhsm2 opensc)",
            pytrace=False,
        )
    root = Path(tempfile.mkdtemp(prefix="dpopkit-py-softhsm-"))
    (root / "tokens").mkdir()
    h = Hsm(root)
    h.conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    for label in ("py-flow", "py-threads", "py-errors"):
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", "12345678", "--pin", PIN],
            env={**os.environ, "SOFTHSM2_CONF": str(h.conf)},
            check=True,
            capture_output=True,
        )
    os.environ["SOFTHSM2_CONF"] = str(h.conf)
    yield h
    shutil.rmtree(root, ignore_errors=True)


def generate_in_token(uri: str, pin: str = PIN, alg: str = "ES256") -> dpopkit.PrivateKey:
    """dpopkit_key_generate_pkcs11 on a fresh PrivateKey (the C route for token key creation)."""
    key = dpopkit.PrivateKey()
    h = key.handle
    ok = _native.lib.dpopkit_key_generate_pkcs11(h, uri.encode(), pin.encode(), alg.encode())
    if ok != 1:
        text = key.last_error_text
        key.close()
        raise AssertionError(f"keygen in the token failed: {text}")
    return key


def test_sample_flow_signs_in_the_token_with_nonces(hsm: Hsm, start_peers) -> None:
    peers: Peers = start_peers("--as-nonce", "--rs-nonce")
    with generate_in_token(hsm.uri("py-flow", "api-key")) as made:
        jkt = made.jwk_thumbprint
        assert made.alg == "ES256"
        with pytest.raises(dpopkit.DpopkitError) as info:
            made.jwk  # noqa: B018 (the property raises)
        assert info.value.code == R.KEY_UNSUPPORTED and "not exportable" in info.value.text
        with pytest.raises(dpopkit.DpopkitError) as info:
            made.pkcs8_pem  # noqa: B018
        assert info.value.code == R.KEY_UNSUPPORTED
        public = json.loads(made.public_jwk)
        assert public["crv"] == "P-256" and "d" not in public
    # Loaded again by URI with the PIN as the password, as a user does.
    with dpopkit.PrivateKey.from_text(hsm.uri("py-flow", "api-key"), PIN) as key, dpopkit.Http() as http:
        assert key.jwk_thumbprint == jkt
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        for _ in range(3):
            body = http.quick_get_str(peers.api)
            assert http.last_status == 200
            assert claim(body, "client_id") == "m2m.dpop"
            assert json.loads(claim(body, "cnf") or "{}")["jkt"] == jkt, "token bound to the key in the token"
    assert peers.tokens_issued() == 1
    assert peers.rs_stats()["ok"] == 3
    assert peers.rs_stats()["rejected"] >= 1, "the RS required a nonce"


def test_sample_script_with_a_uri_in_place_of_the_key_file(hsm: Hsm, start_peers) -> None:
    """tests/python/sample_flow.py as a user runs it: KEY_FILE is the URI, PASSWORD the PIN,
    the module from DPOPKIT_PKCS11_MODULE."""
    peers: Peers = start_peers("--as-nonce", "--rs-nonce")
    generate_in_token(hsm.uri("py-flow", "script-key")).close()
    env = {**os.environ, "PYTHONPATH": str(BINDINGS), "DPOPKIT_PKCS11_MODULE": MODULE}
    out = subprocess.run(
        [sys.executable, str(SAMPLE), peers.token_endpoint, peers.api, "pkcs11:token=py-flow;object=script-key", PIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200 and result["client_id"] == "m2m.dpop", result
    assert result["live_handles"] == 0, result
    assert peers.tokens_issued() == 1


def test_eight_threads_fifty_calls_on_one_handle_one_token_fetch(hsm: Hsm, start_peers) -> None:
    peers: Peers = start_peers("--as-nonce", "--rs-nonce")
    generate_in_token(hsm.uri("py-threads", "api-key")).close()
    errors: List[BaseException] = []
    statuses: List[int] = []
    lock = threading.Lock()
    with dpopkit.PrivateKey.from_text(hsm.uri("py-threads", "api-key"), PIN) as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        start = threading.Barrier(8)

        def calls() -> None:
            try:
                start.wait(timeout=30)
                for _ in range(50):
                    body = http.quick_get_str(peers.api)
                    assert claim(body, "client_id") == "m2m.dpop"
                    with lock:
                        statuses.append(http.last_status)
            except BaseException as e:  # re-raised below
                errors.append(e)

        threads = [threading.Thread(target=calls) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
            assert not t.is_alive()
    if errors:
        raise errors[0]
    assert statuses == [200] * 400
    assert peers.tokens_issued() == 1, "one token fetch for 8 threads x 50 calls"
    assert peers.rs_stats()["ok"] == 400


def test_errors_are_clear_and_never_show_the_pin(hsm: Hsm) -> None:
    generate_in_token(hsm.uri("py-errors", "api-key")).close()
    wrong = "80706050"
    cases = [
        (hsm.uri("py-errors", "api-key").replace(MODULE, "/nonexistent/vendor-pkcs11.so"), wrong, R.FILE_IO, "cannot be opened"),
        (hsm.uri("no-such-token", "api-key"), wrong, R.KEY_FORMAT, "no token matches"),
        (hsm.uri("py-errors", "no-such-key"), PIN, R.KEY_FORMAT, "no private key matching"),
        (hsm.uri("py-errors", "api-key", f"&pin-value={wrong}&bogus=1"), None, R.INVALID_ARGUMENT, "unknown attribute"),
        (hsm.uri("py-errors", "api-key"), wrong, R.KEY_FORMAT, "refused the PIN (CKR_PIN_INCORRECT)"),
        # The same wrong PIN again: not sent to the token (tokens lock after a few tries).
        (hsm.uri("py-errors", "api-key"), wrong, R.KEY_FORMAT, "already refused this PIN"),
        (hsm.uri("py-errors", "api-key", f"&pin-value={wrong}"), None, R.KEY_FORMAT, "already refused this PIN"),
    ]
    for uri, pin, code, needle in cases:
        with pytest.raises(dpopkit.DpopkitError) as info:
            dpopkit.PrivateKey.from_text(uri, pin)
        assert info.value.code == code, (uri, info.value)
        assert needle in info.value.text, info.value.text
        assert wrong not in info.value.text and wrong not in str(info.value), info.value.text
    # load_file takes the URI too; the right PIN still works after the wrong ones.
    with dpopkit.PrivateKey.from_file(hsm.uri("py-errors", "api-key"), PIN) as key:
        assert len(key.jwk_thumbprint) == 43


def test_rsa_key_in_the_token_signs_ps256_and_rs256_proofs(hsm: Hsm, start_peers) -> None:
    with generate_in_token(hsm.uri("py-flow", "rsa-key"), alg="PS256") as made:
        public = json.loads(made.public_jwk)
        assert sorted(public) == ["e", "kty", "n"] and public["kty"] == "RSA"
        for only in ("PS256", "RS256"):
            peers: Peers = start_peers("--as-nonce", "--dpop-algs", only)
            auth = json.dumps({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"})
            with dpopkit.Http() as http:
                http.set_dpop_key(made)
                http.auth_token = auth
                body = http.quick_get_str(peers.api)
                assert http.last_status == 200
                assert json.loads(claim(body, "cnf") or "{}")["jkt"] == made.jwk_thumbprint
            assert peers.rs_stats()["last_proof_header"]["alg"] == only
            assert peers.as_stats()["last_proof_header"]["alg"] == only
