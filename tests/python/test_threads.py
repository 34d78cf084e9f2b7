"""One Http shared by many Python threads (ctypes releases the GIL during each call)."""

from __future__ import annotations

import threading
from typing import Callable, List

from helpers import Peers, claim, dpopkit

THREADS = 8
CALLS = 25


def run_threads(target: Callable[[int], None]) -> None:
    errors: List[BaseException] = []
    start = threading.Barrier(THREADS)

    def body(i: int) -> None:
        try:
            start.wait(timeout=30)  # all first calls at once: single-flight token fetch
            target(i)
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,), name=f"dpopkit-{i}") for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive(), f"{t.name} still running"
    if errors:
        raise errors[0]


def test_eight_threads_share_one_http(start_peers) -> None:
    peers: Peers = start_peers("--as-nonce")
    statuses: List[List[int]] = [[] for _ in range(THREADS)]
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()

        def calls(i: int) -> None:
            for _ in range(CALLS):
                body = http.quick_get_str(peers.api)
                assert claim(body, "client_id") == "m2m.dpop"
                statuses[i].append(http.last_status)
                assert http.last_method_success is True
                assert http.last_error_code == dpopkit.Result.OK

        run_threads(calls)
    assert statuses == [[200] * CALLS] * THREADS
    assert peers.tokens_issued() == 1, "exactly one token for 8 threads x 25 calls"
    assert peers.rs_stats()["ok"] == THREADS * CALLS


def test_last_status_and_error_are_per_thread(peers: Peers) -> None:
    """Even threads get 200s, odd threads 404s, interleaved on one Http: each thread reads
    its own last_status, last error and last body."""
    with dpopkit.PrivateKey.generate() as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()

        def calls(i: int) -> None:
            for _ in range(CALLS):
                if i % 2 == 0:
                    http.quick_get_str(peers.api)
                    assert http.last_status == 200
                    assert http.last_error_code == dpopkit.Result.OK
                    assert http.last_error_text == ""
                    assert claim(http.last_response_body or "", "client_id") == "m2m.dpop"
                else:
                    try:
                        http.quick_get_str(f"{peers.rs}/nope")
                    except dpopkit.DpopkitError as e:
                        assert e.code == dpopkit.Result.HTTP_STATUS and e.status == 404
                    else:
                        raise AssertionError("a 404 did not raise")
                    assert http.last_status == 404
                    assert http.last_method_success is False
                    assert http.last_error_code == dpopkit.Result.HTTP_STATUS
                    assert "not_found" in (http.last_response_body or "")

        run_threads(calls)
    assert peers.tokens_issued() == 1


def test_closing_while_other_threads_use_the_object(peers: Peers) -> None:
    """close() during calls on other threads: in-flight calls finish, later ones raise
    ValueError (closed here) or DpopkitError INVALID_HANDLE (closed between the check and
    the call); never a crash."""
    http = dpopkit.Http()
    with dpopkit.PrivateKey.generate() as key:
        http.set_dpop_key(key)
    http.auth_token = peers.auth_token()
    http.quick_get_str(peers.api)
    outcomes: List[str] = []

    def calls(i: int) -> None:
        if i == 0:
            http.close()
            return
        for _ in range(5):
            try:
                http.quick_get_str(peers.api)
                outcomes.append("ok")
            except ValueError:
                outcomes.append("closed")
            except dpopkit.DpopkitError as e:
                assert e.code == dpopkit.Result.INVALID_HANDLE, e
                outcomes.append("invalid-handle")

    run_threads(calls)
    assert http.closed
    assert outcomes.count("closed") + outcomes.count("invalid-handle") >= 1
