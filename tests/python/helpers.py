"""Shared helpers of the dpopkit Python tests (imported by conftest.py and the tests).

- Imports the in-tree package from bindings/python with the library named by
  DPOPKIT_LIBRARY (tests/pytest.rs sets it to the libdpopkit.so cargo built for the
  test run; when unset, target/debug/libdpopkit.so is used if it exists).
- Peers: one running tests/peers/server.mjs (oidc-provider AS + jose RS on 127.0.0.1),
  started with node (npm ci first if tests/peers/node_modules is missing), stopped by
  closing its stdin.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

__all__ = ["BINDINGS", "FIXTURES", "REPO", "Peers", "claim", "claims", "dpopkit", "fixture", "get_json"]

REPO = Path(__file__).resolve().parents[2]
BINDINGS = REPO / "bindings" / "python"
FIXTURES = REPO / "tests" / "fixtures"
PEERS_DIR = REPO / "tests" / "peers"


def _default_library() -> Optional[Path]:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    for profile in ("debug", "release"):
        candidate = target / profile / "libdpopkit.so"
        if candidate.exists():
            return candidate
    return None


if not os.environ.get("DPOPKIT_LIBRARY"):
    _lib = _default_library()
    if _lib is None:
        raise RuntimeError(
            "DPOPKIT_LIBRARY is not set and target/debug/libdpopkit.so does not exist: "
            "run `cargo build` (or `cargo test --test pytest`, which sets it)"
        )
    os.environ["DPOPKIT_LIBRARY"] = str(_lib)

sys.path.insert(0, str(BINDINGS))

import dpopkit  # noqa: E402  (after sys.path and DPOPKIT_LIBRARY are set)


def fixture(name: str) -> str:
    return str(FIXTURES / name)


# --------------------------------------------------------------------------------------
# Test peers
# --------------------------------------------------------------------------------------
def _ensure_node_modules() -> None:
    if shutil.which("node") is None:
        pytest.fail("node (20+) is needed for the test peers: it is not on PATH", pytrace=False)
    if (PEERS_DIR / "node_modules" / "oidc-provider").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to install the test peers (tests/peers: npm ci)", pytrace=False)
    # Same lock file as tests/common/mod.rs, so parallel runs do not race.
    with open(os.path.join(tempfile.gettempdir(), "dpopkit-npm-ci.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (PEERS_DIR / "node_modules" / "oidc-provider").exists():
                r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEERS_DIR, capture_output=True, text=True)
                if r.returncode != 0:
                    pytest.fail(f"npm ci in tests/peers failed:\n{r.stderr}", pytrace=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode("utf-8"))


class Peers:
    """One running tests/peers/server.mjs (AS + RS on 127.0.0.1)."""

    def __init__(self, args: List[str]) -> None:
        _ensure_node_modules()
        self.args = list(args)
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["node", str(PEERS_DIR / "server.mjs"), *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline().decode("utf-8") if ready else ""
        if not line.strip():
            self.stop()
            self._stderr.seek(0)
            err = self._stderr.read().decode("utf-8", "replace")
            pytest.fail(f"test peers {self.args} did not start:\n{err}", pytrace=False)
        info = json.loads(line)
        self.issuer: str = info["issuer"]
        self.token_endpoint: str = info["token_endpoint"]
        self.rs: str = info["rs"]
        self.api: str = info["api"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()  # the peers exit when their stdin closes
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._stderr.close()

    def auth_token(self, **overrides: str) -> str:
        """The sample's AuthToken JSON (client m2m.dpop / secret, scope api)."""
        auth: Dict[str, str] = {
            "client_secret": "secret",
            "client_id": "m2m.dpop",
            "token_endpoint": self.token_endpoint,
            "scope": "api",
        }
        auth.update(overrides)
        return json.dumps(auth)

    def as_stats(self) -> Dict[str, Any]:
        return get_json(f"{self.issuer}/_stats")

    def tokens_issued(self) -> int:
        return int(self.as_stats()["token_issued"])

    def token_requests(self) -> int:
        return int(self.as_stats()["token_requests"])

    def rs_stats(self) -> Dict[str, Any]:
        return get_json(f"{self.rs}/_stats")


def contains_jwt(text: str) -> bool:
    """Whether `text` holds a JWT (an access token or a DPoP proof): `eyJ...` (a base64url
    JSON header), a dot, `eyJ...` (the claims). A bare "eyJ" can occur by chance inside a
    random nonce or jti (about once in 262,144 positions); a header-dot-claims pair does not."""
    import re

    return re.search(r"eyJ[A-Za-z0-9_-]*\.eyJ", text) is not None


def claims(body: str) -> List[Dict[str, str]]:
    try:
        value = json.loads(body)
    except ValueError as e:
        raise AssertionError(f"RS body is not JSON ({e}): {body!r}") from None
    assert isinstance(value, list), body
    return value


def claim(body: str, name: str) -> Optional[str]:
    for c in claims(body):
        if c.get("type") == name:
            return c.get("value")
    return None
