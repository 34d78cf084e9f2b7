"""pytest setup for the dpopkit Python bindings: the peers fixtures (one fresh
tests/peers/server.mjs per test that asks, in each nonce mode) and a leak check after every
test. See helpers.py for how the library and the peers are found."""

from __future__ import annotations

import gc
from typing import Callable, Iterator, List

import pytest

from helpers import Peers, dpopkit


@pytest.fixture
def start_peers() -> Iterator[Callable[..., Peers]]:
    """Factory: start_peers("--as-nonce", "--ttl", "2") -> Peers; all stopped after the test."""
    started: List[Peers] = []

    def start(*args: str) -> Peers:
        p = Peers(list(args))
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def peers(start_peers: Callable[..., Peers]) -> Peers:
    """Fresh peers without nonces (a fresh token endpoint: the token cache is process-wide)."""
    return start_peers()


NONCE_MODES = {
    "no-nonce": [],
    "as-nonce": ["--as-nonce"],
    "rs-nonce": ["--rs-nonce"],
    "both-nonces": ["--as-nonce", "--rs-nonce"],
}


@pytest.fixture(params=list(NONCE_MODES), ids=list(NONCE_MODES))
def peers_mode(request: pytest.FixtureRequest, start_peers: Callable[..., Peers]) -> Peers:
    """Fresh peers in each nonce mode: none, at the AS, at the RS, at both."""
    return start_peers(*NONCE_MODES[request.param])


# --------------------------------------------------------------------------------------
# Leak check
# --------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def no_leaked_handles() -> Iterator[None]:
    gc.collect()
    before = dpopkit.live_handles()
    yield
    gc.collect()
    after = dpopkit.live_handles()
    assert after == before, f"native handles leaked by this test: {before} before, {after} after"
