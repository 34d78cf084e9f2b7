"""Proof algorithms from Python against the real peers (issue 23): RSA keys in every format
and generated, at servers that take only RS256 or only PS256 (by their metadata), Ed25519
by its RFC 9864 name, the RS challenge's algs retry, and the refusals that name the fix.
The RS verifies every proof with jose and records the JOSE header it verified."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Callable, List, Optional, Tuple

import pytest

from helpers import FIXTURES, Peers, claim, dpopkit

R = dpopkit.Result

RSA_FILES: List[Tuple[str, Optional[str]]] = [
    ("rsa.pem", None),
    ("rsa_pkcs1.pem", None),
    ("rsa_pkcs1.der", None),
    ("rsa_pkcs8.der", None),
    ("rsa_pkcs8_enc.pem", "test-password"),
    ("rsa.jwk", None),
    ("rsa4096.pem", None),
]


def discovery_auth(peers: Peers) -> str:
    return json.dumps({"client_id": "m2m.dpop", "client_secret": "secret", "issuer": peers.issuer, "scope": "api"})


def audit(header: dict, key: dpopkit.PrivateKey) -> str:
    """typ, the public jwk (RFC 7638 members only, the key's own, its thumbprint), the alg."""
    assert header["typ"] == "dpop+jwt", header
    jwk = header["jwk"]
    assert sorted(jwk) == (["e", "kty", "n"] if jwk["kty"] == "RSA" else ["crv", "kty", "x"]), header
    assert json.dumps(jwk, separators=(",", ":")) == key.public_jwk
    digest = hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == key.jwk_thumbprint
    return str(header["alg"])


def get_audited(peers: Peers, key: dpopkit.PrivateKey, auth: str) -> str:
    with dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = auth
        body = http.quick_get_str(peers.api)
        assert http.last_status == 200, body
        assert json.loads(claim(body, "cnf") or "{}")["jkt"] == key.jwk_thumbprint
    return audit(peers.rs_stats()["last_proof_header"], key)


@pytest.mark.parametrize("only", ["RS256", "PS256"])
def test_rsa_keys_in_every_format_get_200_from_a_server_that_takes_one_rsa_algorithm(start_peers: Callable[..., Peers], only: str) -> None:
    peers = start_peers("--as-nonce", "--rs-nonce", "--dpop-algs", only)
    expected_jkt = (FIXTURES / "rsa.jkt").read_text().strip()
    for name, password in RSA_FILES:
        with dpopkit.PrivateKey.from_file(FIXTURES / name, password) as key:
            if name != "rsa4096.pem":
                assert key.jwk_thumbprint == expected_jkt, name
            assert key.alg == "RS256", name
            assert get_audited(peers, key, discovery_auth(peers)) == only, name
            assert audit(peers.as_stats()["last_proof_header"], key) == only, f"{name} at the AS"
    for alg in ("PS256", "RS256"):
        with dpopkit.PrivateKey.generate(alg) as key:
            assert key.alg == alg
            assert get_audited(peers, key, discovery_auth(peers)) == only, f"generated {alg}"
            # Exported and reloaded: the same key (PKCS#8 PEM and the private JWK).
            for text in (key.pkcs8_pem, key.jwk):
                with dpopkit.PrivateKey.from_text(text) as again:
                    assert again.jwk_thumbprint == key.jwk_thumbprint


def test_the_rs_challenge_makes_an_rsa_key_sign_ps256_once_and_it_is_remembered(start_peers: Callable[..., Peers]) -> None:
    peers = start_peers("--dpop-algs", "RS256,PS256", "--rs-dpop-algs", "PS256")
    # A key of its own: what other tests' metadata chose for the fixture key is remembered
    # process-wide (and would make the RS get PS256 at once).
    with dpopkit.PrivateKey.generate("RS256") as key:
        for _ in range(3):
            assert get_audited(peers, key, peers.auth_token()) == "PS256"
    stats = peers.rs_stats()
    assert (stats["rejected"], stats["ok"]) == (1, 3), stats


@pytest.mark.parametrize("algs,expected", [("Ed25519", "Ed25519"), ("EdDSA,Ed25519", "Ed25519"), ("ES256,EdDSA", "EdDSA")])
def test_ed25519_proofs_take_the_name_the_server_lists(start_peers: Callable[..., Peers], algs: str, expected: str) -> None:
    peers = start_peers("--dpop-algs", algs)
    with dpopkit.PrivateKey.generate("Ed25519") as key:
        assert key.alg == "EdDSA"
        assert get_audited(peers, key, discovery_auth(peers)) == expected
        assert audit(peers.as_stats()["last_proof_header"], key) == expected


def test_keys_the_server_cannot_take_are_refused_with_the_fix(start_peers: Callable[..., Peers]) -> None:
    peers = start_peers("--dpop-algs", "ES256")
    with dpopkit.PrivateKey.from_file(FIXTURES / "rsa.pem") as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = discovery_auth(peers)
        with pytest.raises(dpopkit.DpopkitError) as info:
            http.quick_get_str(peers.api)
        assert info.value.code == R.DPOP_PROOF
        for part in ("ES256 only", "dpop_signing_alg_values_supported", "an RSA key", "--alg ES256"):
            assert part in info.value.text, info.value.text
    assert peers.token_requests() == 0
    with pytest.raises(dpopkit.DpopkitError) as info:
        dpopkit.PrivateKey.from_file(FIXTURES / "rsa1024.pem")
    assert info.value.code == R.KEY_UNSUPPORTED and "1024 bits" in info.value.text
    with pytest.raises(dpopkit.DpopkitError) as info:
        dpopkit.PrivateKey.generate("RS1024")
    assert info.value.code == R.INVALID_ARGUMENT and "PS256" in info.value.text
