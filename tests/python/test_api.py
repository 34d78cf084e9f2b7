"""The binding itself: the declaration table against include/dpopkit.h (drift), the Result
enum against the header, version, handle lifetime and leaks, library lookup, JSON and key
helpers."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from helpers import BINDINGS, FIXTURES, REPO, dpopkit, fixture

HEADER = (REPO / "include" / "dpopkit.h").read_text()
NATIVE_PY = (BINDINGS / "dpopkit" / "_native.py").read_text()

# C type in the header -> ctypes name in _native.py. Returned char * are owned by the
# caller: c_void_p (read with string_at, freed with dpopkit_string_free), never c_char_p.
# Returned uint8_t * (bytes) likewise: c_void_p, copied with string_at(ptr, len) and freed
# with dpopkit_bytes_free; size_t *out_len is c_size_t_p (POINTER(c_size_t) in _native).
_ARG = {
    "int64_t": "c_int64", "uint32_t": "c_uint32", "uint64_t": "c_uint64", "int": "c_int", "size_t": "c_size_t",
    "const char *": "c_char_p", "char *": "c_void_p", "const uint8_t *": "c_char_p", "uint8_t *": "c_void_p",
    "size_t *": "c_size_t_p",
}
_RET = {
    "int64_t": "c_int64", "uint32_t": "c_uint32", "uint64_t": "c_uint64", "int": "c_int", "char *": "c_void_p",
    "uint8_t *": "c_void_p", "void": "None",
}


def header_functions() -> Dict[str, Tuple[List[str], str]]:
    out: Dict[str, Tuple[List[str], str]] = {}
    pattern = re.compile(r"^(int64_t|uint64_t|uint32_t|int|void|char \*|uint8_t \*)\s*(dpopkit_\w+)\(([^)]*)\);", re.M)
    for ret, name, params in pattern.findall(HEADER):
        args: List[str] = []
        params = " ".join(params.split())
        if params != "void":
            for param in params.split(","):
                param = param.strip()
                m = re.fullmatch(r"(const char \*|char \*|const uint8_t \*|uint8_t \*|size_t \*|size_t|int64_t|uint64_t|uint32_t|int)\s*\w+", param)
                assert m, f"{name}: parameter type not mapped for Python: {param!r}"
                args.append(_ARG[m.group(1)])
        out[name] = (args, _RET[ret.strip()])
    return out


def table_functions() -> Dict[str, Tuple[List[str], str]]:
    """Parses the _FUNCTIONS table's source text (one entry per line)."""
    body = NATIVE_PY.split("_FUNCTIONS = {", 1)[1].split("\n}", 1)[0]
    out: Dict[str, Tuple[List[str], str]] = {}
    for line in body.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'"(dpopkit_\w+)": \(\[([^\]]*)\], (\w+)\),', line)
        assert m, f"_FUNCTIONS line not in the expected form: {line!r}"
        args = [a.strip() for a in m.group(2).split(",") if a.strip()]
        assert m.group(1) not in out, f"{m.group(1)} declared twice"
        out[m.group(1)] = (args, m.group(3))
    return out


def test_header_parser_sees_every_function() -> None:
    # Guard against a parser that silently skips a declaration it cannot read: every line
    # that starts a declaration of a dpopkit_ function must have been parsed.
    declared = set(re.findall(r"^[a-z][a-z0-9_ ]*\*?\s*(dpopkit_\w+)\(", HEADER, re.M))
    assert declared and declared == set(header_functions())


def test_declaration_table_matches_the_header() -> None:
    header = header_functions()
    table = table_functions()
    assert len(header) >= 30, sorted(header)
    missing = sorted(set(header) - set(table))
    extra = sorted(set(table) - set(header))
    assert not missing, f"functions of include/dpopkit.h missing from _FUNCTIONS: {missing}"
    assert not extra, f"_FUNCTIONS declares functions the header does not have: {extra}"
    for name, (args, ret) in header.items():
        assert table[name] == (args, ret), f"{name}: header says {args} -> {ret}, _FUNCTIONS says {table[name]}"


def test_runtime_table_is_the_parsed_table() -> None:
    from dpopkit import _native

    table = table_functions()
    assert set(_native._FUNCTIONS) == set(table)
    for name, (argtypes, restype) in _native._FUNCTIONS.items():
        # Compare the ctypes objects (c_int64 is c_long on LP64 systems: names differ).
        args, ret = table[name]
        ctype = lambda a: getattr(_native, a) if a == "c_size_t_p" else getattr(ctypes, a)  # noqa: E731
        assert list(argtypes) == [ctype(a) for a in args], name
        assert restype is (None if ret == "None" else ctype(ret)), name
        fn = getattr(_native.lib, name)
        assert list(fn.argtypes) == list(argtypes), name
        assert fn.restype is restype, name
        assert restype is not ctypes.c_char_p, f"{name}: c_char_p restype leaks the string"


def test_result_enum_matches_the_header() -> None:
    header = {m[0]: int(m[1]) for m in re.findall(r"DPOPKIT_RESULT_(\w+) = (\d+),", HEADER)}
    assert len(header) >= 20
    assert {r.name: int(r) for r in dpopkit.Result} == header


def test_version_matches_header_and_package() -> None:
    header_version = re.search(r'#define DPOPKIT_VERSION "([^"]+)"', HEADER)
    assert header_version
    assert dpopkit.version() == header_version.group(1)
    assert dpopkit.__version__ == header_version.group(1)
    pyproject = (BINDINGS / "pyproject.toml").read_text()
    assert f'version = "{header_version.group(1)}"' in pyproject


def test_library_is_the_one_named_by_dpopkit_library() -> None:
    assert os.path.samefile(dpopkit.library_path(), os.environ["DPOPKIT_LIBRARY"])


def test_handles_are_released_on_close_context_exit_and_gc() -> None:
    start = dpopkit.live_handles()
    key = dpopkit.PrivateKey.generate()
    j = dpopkit.JsonObject()
    with dpopkit.Http() as http:
        assert dpopkit.live_handles() == start + 3
        http.set_dpop_key(key)
    assert dpopkit.live_handles() == start + 2
    key.close()
    assert dpopkit.live_handles() == start + 1
    del j  # the __del__ safety net
    gc.collect()
    assert dpopkit.live_handles() == start
    # Failing constructors release what they created.
    with pytest.raises(dpopkit.DpopkitError):
        dpopkit.PrivateKey.from_file(fixture("rsa1024.pem"))
    with pytest.raises(dpopkit.DpopkitError):
        dpopkit.PrivateKey.from_text("nope")
    with pytest.raises(dpopkit.DpopkitError):
        dpopkit.JsonObject("nope")
    gc.collect()
    assert dpopkit.live_handles() == start


def test_no_leaked_handles_after_a_full_flow(peers) -> None:
    gc.collect()
    start = dpopkit.live_handles()
    objects = []
    for _ in range(5):
        key = dpopkit.PrivateKey.from_file(fixture("ec_pkcs8_enc.pem"), "test-password")
        http = dpopkit.Http()
        auth = dpopkit.JsonObject(peers.auth_token())
        http.set_dpop_key(key)
        http.auth_token = auth
        http.quick_get_str(peers.api)
        try:
            http.quick_get_str(f"{peers.rs}/nope")
        except dpopkit.DpopkitError:
            pass
        objects += [key, http, auth]
    assert dpopkit.live_handles() == start + 15
    for o in objects:
        o.close()
    assert dpopkit.live_handles() == start


def test_generate_is_a_classmethod_and_an_instance_method() -> None:
    with dpopkit.PrivateKey.generate() as a, dpopkit.PrivateKey() as b:
        assert isinstance(a, dpopkit.PrivateKey)
        assert b.generate() is b
        first = b.jwk_thumbprint
        b.generate()
        assert b.jwk_thumbprint != first
        assert a.jwk_thumbprint != b.jwk_thumbprint


def test_key_exports() -> None:
    with dpopkit.PrivateKey.from_file(fixture("ec_sec1.pem")) as key:
        assert key.pkcs8_pem.startswith("-----BEGIN PRIVATE KEY-----")
        jwk = json.loads(key.jwk)
        assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256") and "d" in jwk
        public = json.loads(key.public_jwk)
        assert set(public) == {"crv", "kty", "x", "y"}
        assert key.jwk_thumbprint == (FIXTURES / "ec.jkt").read_text().strip()
        with dpopkit.PrivateKey.from_text(key.jwk) as again:
            assert again.jwk_thumbprint == key.jwk_thumbprint
        # Path objects and bytes paths work.
        assert key.load_file(Path(fixture("ec.jwk"))) is key
        assert key.load_file(os.fsencode(fixture("ec.jwk"))) is key


def test_json_object() -> None:
    with dpopkit.JsonObject() as j:
        assert j.emit() == "{}"
        j.update_string("client_id", "m2m.dpop")
        j.update_string("grüße", "✓ ok")
        j.update_string("client_id", "replaced")
        assert j.emit() == '{"client_id":"replaced","grüße":"✓ ok"}'
        assert str(j) == j.emit()
        assert j.string_of("grüße") == "✓ ok"
        j.load('{"n": 42, "b": true, "s": "x"}')
        assert (j.string_of("n"), j.string_of("b"), j.string_of("s")) == ("42", "true", "x")
        assert j.last_error_code == dpopkit.Result.OK


def _run_python(code: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    # Without LD_LIBRARY_PATH (cargo test points it at target/*/deps): with its SONAME link
    # there, ctypes.util.find_library("dpopkit") would find the library, as it should.
    full_env = {k: v for k, v in os.environ.items() if k not in ("DPOPKIT_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH")}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(BINDINGS)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120)


def test_missing_library_is_an_import_error_naming_the_three_places(tmp_path: Path) -> None:
    code = (
        "try:\n"
        "    import dpopkit\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__)\n"
        "    print(e)\n"
        "    raise SystemExit(3)\n"
    )
    r = _run_python(code, {"DPOPKIT_LIBRARY": str(tmp_path / "no-such-libdpopkit.so")})
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("LibraryNotFoundError\n"), r.stdout
    assert "DPOPKIT_LIBRARY" in r.stdout and "no-such-libdpopkit.so" in r.stdout
    assert "beside the package" in r.stdout
    assert "find_library" in r.stdout


def test_dpopkit_library_may_name_a_directory() -> None:
    lib_dir = str(Path(os.environ["DPOPKIT_LIBRARY"]).parent)
    r = _run_python("import dpopkit; print(dpopkit.library_path()); print(dpopkit.version())", {"DPOPKIT_LIBRARY": lib_dir})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == os.path.join(lib_dir, "libdpopkit.so")


def test_a_file_that_is_not_dpopkit_is_not_used(tmp_path: Path) -> None:
    # libc loads but lacks the dpopkit functions: rejected, and the error says why.
    libc = ctypes.util.find_library("c")
    assert libc, "no libc found by ctypes.util.find_library"
    r = _run_python("import dpopkit", {"DPOPKIT_LIBRARY": libc})
    assert r.returncode != 0
    assert "undefined symbol: dpopkit_" in r.stderr or "dpopkit_destroy" in r.stderr, r.stderr


def test_every_returned_string_is_freed_exactly_once(monkeypatch: pytest.MonkeyPatch, peers) -> None:
    """Wraps dpopkit_string_free and the string-returning functions: each non-NULL char *
    the library returns goes back to dpopkit_string_free once, success or failure."""
    from dpopkit import _native

    returned: List[int] = []
    freed: List[int] = []
    real_free = _native.lib.dpopkit_string_free

    def free(ptr: int) -> None:
        freed.append(ptr)
        real_free(ptr)

    monkeypatch.setattr(_native.lib, "dpopkit_string_free", free)
    for name, (_args, restype) in _native._FUNCTIONS.items():
        if restype is ctypes.c_void_p:
            real = getattr(_native.lib, name)

            def wrapper(*a: object, _real=real) -> object:
                ptr = _real(*a)
                if ptr:
                    returned.append(ptr)
                return ptr

            monkeypatch.setattr(_native.lib, name, wrapper)

    dpopkit.version()
    with dpopkit.PrivateKey.from_file(fixture("ec_sec1.pem")) as key, dpopkit.Http() as http:
        key.pkcs8_pem, key.jwk, key.public_jwk, key.jwk_thumbprint, key.last_error_text
        http.set_dpop_key(key)
        http.auth_token = peers.auth_token()
        http.quick_get_str(peers.api)
        http.quick_request_str("POST", peers.api, "text/plain", "hi")
        http.last_response_body, http.last_response_header, http.last_error_text
        with pytest.raises(dpopkit.DpopkitError):
            http.quick_get_str(f"{peers.rs}/nope")  # error text is a returned string too
        with dpopkit.JsonObject('{"a":"b"}') as j:
            j.emit(), j.string_of("a")
            with pytest.raises(dpopkit.DpopkitError):
                j.string_of("missing")
    assert len(returned) >= 15
    assert sorted(freed) == sorted(returned), "every returned string freed once, nothing else freed"


def test_str_of_a_json_object_never_shows_a_secret() -> None:
    """Printing or logging an AuthToken must not show the client secret (issue 10)."""
    auth = {
        "client_id": "m2m.dpop",
        "client_secret": "Py-S3cret-Value-42",
        "token_endpoint": "https://as.example/token",
        "token_type_hint": "kept",
        "refresh_token": "Py-Refresh-Token-43",
        "key": {"kty": "EC", "d": "Py-Private-D-44", "x": "public-x"},
        "Password": "Py-Password-45",
    }
    with dpopkit.JsonObject(json.dumps(auth)) as j:
        for shown in (str(j), f"{j}", "%s" % j):
            for secret in ("Py-S3cret-Value-42", "Py-Refresh-Token-43", "Py-Private-D-44", "Py-Password-45"):
                assert secret not in shown, shown
            masked = json.loads(shown)
            assert masked["client_secret"] == "****" and masked["key"]["d"] == "****"
            assert masked["client_id"] == "m2m.dpop" and masked["token_endpoint"] == "https://as.example/token"
            assert masked["token_type_hint"] == "kept" and masked["key"]["x"] == "public-x"
        assert "Py-S3cret-Value-42" in j.emit(), "emit() still gives the full text"
        assert "Py-S3cret-Value-42" not in repr(j)
