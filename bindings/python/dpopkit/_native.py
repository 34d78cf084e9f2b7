"""Loading of the dpopkit shared library and the one ctypes declaration table.

Rules (include/dpopkit.h is the source of truth):
- every function of the header has exactly one entry in ``_FUNCTIONS`` (tests/python
  checks this against the header, both ways);
- a returned ``char *`` is declared ``c_void_p`` (never ``c_char_p``, which would copy the
  bytes and drop the pointer: a leak) and goes through :func:`take_string`, which reads it
  with ``ctypes.string_at`` and frees it with ``dpopkit_string_free``;
- a returned ``uint8_t *`` (bytes, with their length in ``*out_len``) is ``c_void_p`` too
  and goes through :func:`take_bytes`, which copies it and frees it with
  ``dpopkit_bytes_free``;
- ``int64_t`` -> ``c_int64``, ``uint32_t`` -> ``c_uint32``, ``uint64_t`` -> ``c_uint64``,
  ``int`` -> ``c_int``, ``const char *`` -> ``c_char_p`` (UTF-8 ``bytes`` or ``None``),
  ``const uint8_t *`` -> ``c_char_p`` (any ``bytes``; the length goes separately),
  ``size_t`` -> ``c_size_t``, ``size_t *`` -> ``c_size_t_p``, ``uint8_t *`` (given back to
  dpopkit) -> ``c_void_p``.

The library is looked up in this order: the file named by the environment variable
``DPOPKIT_LIBRARY``; the library beside this package (``dpopkit/libdpopkit.so``,
``.dylib`` or ``dpopkit.dll``, as ``pip install ./bindings/python`` and its wheels carry it);
``ctypes.util.find_library("dpopkit")``. A candidate is used only if it loads and exports
every function of the table.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
import warnings
from ctypes import CDLL, POINTER, byref, c_char_p, c_int, c_int64, c_size_t, c_uint32, c_uint64, c_void_p, string_at
from typing import Any, List, Optional, Tuple

from .errors import LibraryNotFoundError

c_size_t_p = POINTER(c_size_t)

# fmt: off
_FUNCTIONS = {
    "dpopkit_destroy": ([c_int64], c_int),
    "dpopkit_token_cache_clear": ([], c_int),
    "dpopkit_last_error_text": ([c_int64], c_void_p),
    "dpopkit_last_error_code": ([c_int64], c_uint32),
    "dpopkit_string_free": ([c_void_p], None),
    "dpopkit_version": ([], c_void_p),
    "dpopkit_live_handles": ([], c_int64),
    "dpopkit_http_new": ([], c_int64),
    "dpopkit_http_set_dpop_key": ([c_int64, c_int64], c_int),
    "dpopkit_http_set_client_assertion_key": ([c_int64, c_int64], c_int),
    "dpopkit_http_set_auth_token": ([c_int64, c_char_p], c_int),
    "dpopkit_http_set_session_log_filename": ([c_int64, c_char_p], c_int),
    "dpopkit_http_set_timeouts": ([c_int64, c_uint32, c_uint32], c_int),
    "dpopkit_http_set_max_response_size": ([c_int64, c_uint64], c_int),
    "dpopkit_http_set_follow_redirects": ([c_int64, c_int], c_int),
    "dpopkit_http_set_ca_file": ([c_int64, c_char_p], c_int),
    "dpopkit_http_set_use_os_trust_store": ([c_int64, c_int], c_int),
    "dpopkit_http_set_proxy": ([c_int64, c_char_p], c_int),
    "dpopkit_http_quick_get_str": ([c_int64, c_char_p], c_void_p),
    "dpopkit_http_quick_request_str": ([c_int64, c_char_p, c_char_p, c_char_p, c_char_p], c_void_p),
    "dpopkit_http_last_status": ([c_int64], c_int),
    "dpopkit_http_last_method_success": ([c_int64], c_int),
    "dpopkit_http_last_response_body": ([c_int64], c_void_p),
    "dpopkit_http_last_response_header": ([c_int64], c_void_p),
    "dpopkit_http_set_request_header": ([c_int64, c_char_p, c_char_p], c_int),
    "dpopkit_http_remove_request_header": ([c_int64, c_char_p], c_int),
    "dpopkit_http_clear_request_headers": ([c_int64], c_int),
    "dpopkit_http_quick_get_bytes": ([c_int64, c_char_p, c_size_t_p], c_void_p),
    "dpopkit_http_quick_request_bytes": ([c_int64, c_char_p, c_char_p, c_char_p, c_char_p, c_size_t, c_size_t_p], c_void_p),
    "dpopkit_bytes_free": ([c_void_p], None),
    "dpopkit_http_last_response_header_value": ([c_int64, c_char_p], c_void_p),
    "dpopkit_http_last_status_text": ([c_int64], c_void_p),
    "dpopkit_http_last_response_body_bytes": ([c_int64, c_size_t_p], c_void_p),
    "dpopkit_json_new": ([], c_int64),
    "dpopkit_json_update_string": ([c_int64, c_char_p, c_char_p], c_int),
    "dpopkit_json_emit": ([c_int64], c_void_p),
    "dpopkit_json_load": ([c_int64, c_char_p], c_int),
    "dpopkit_json_string_of": ([c_int64, c_char_p], c_void_p),
    "dpopkit_key_new": ([], c_int64),
    "dpopkit_key_load_any_format_file": ([c_int64, c_char_p, c_char_p], c_int),
    "dpopkit_key_load_any_format": ([c_int64, c_char_p, c_char_p], c_int),
    "dpopkit_key_generate": ([c_int64], c_int),
    "dpopkit_key_generate_alg": ([c_int64, c_char_p], c_int),
    "dpopkit_key_generate_pkcs11": ([c_int64, c_char_p, c_char_p, c_char_p], c_int),
    "dpopkit_key_get_alg": ([c_int64], c_void_p),
    "dpopkit_key_get_pkcs8_pem": ([c_int64], c_void_p),
    "dpopkit_key_get_jwk": ([c_int64], c_void_p),
    "dpopkit_key_get_public_jwk": ([c_int64], c_void_p),
    "dpopkit_key_get_jwk_thumbprint": ([c_int64], c_void_p),
}
# fmt: on

ENV_VAR = "DPOPKIT_LIBRARY"


def library_filename() -> str:
    """The shared library's file name on this platform."""
    if sys.platform == "win32":
        return "dpopkit.dll"
    if sys.platform == "darwin":
        return "libdpopkit.dylib"
    return "libdpopkit.so"


def _declare(lib: CDLL) -> None:
    for name, (argtypes, restype) in _FUNCTIONS.items():
        fn = getattr(lib, name)  # AttributeError: not a (complete) dpopkit library
        fn.argtypes = argtypes
        fn.restype = restype


def _try(path: str) -> CDLL:
    lib = CDLL(path)
    _declare(lib)
    return lib


def _load() -> Tuple[CDLL, str]:
    tried: List[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        path = os.path.join(env, library_filename()) if os.path.isdir(env) else env
        try:
            return _try(path), path
        except (OSError, AttributeError) as e:
            tried.append(f"1. ${ENV_VAR}={env!r}: {e}")
    else:
        tried.append(f"1. ${ENV_VAR}: not set")

    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), library_filename())
    if os.path.exists(beside):
        try:
            lib = _try(beside)
            if env:
                warnings.warn(f"${ENV_VAR} ({env!r}) is unusable; using {beside}", RuntimeWarning, stacklevel=3)
            return lib, beside
        except (OSError, AttributeError) as e:
            tried.append(f"2. beside the package, {beside}: {e}")
    else:
        tried.append(f"2. beside the package: {beside} does not exist")

    found = ctypes.util.find_library("dpopkit")
    if found:
        try:
            lib = _try(found)
            if env:
                warnings.warn(f"${ENV_VAR} ({env!r}) is unusable; using {found}", RuntimeWarning, stacklevel=3)
            return lib, found
        except (OSError, AttributeError) as e:
            tried.append(f"3. ctypes.util.find_library('dpopkit') -> {found!r}: {e}")
    else:
        tried.append("3. ctypes.util.find_library('dpopkit'): not found on the system library path")

    raise LibraryNotFoundError(
        "dpopkit: cannot load the dpopkit shared library. Places tried:\n  "
        + "\n  ".join(tried)
        + "\nInstall the package from the dpopkit source tree (`pip install ./bindings/python` "
        "builds the library with cargo and puts it inside), install the C library system-wide "
        f"(bindings/c/install.sh, then ldconfig), or set {ENV_VAR} to a built {library_filename()}."
    )


lib, library_path = _load()


def take_string(ptr: Optional[int]) -> Optional[str]:
    """Copies a ``char *`` returned by dpopkit into a ``str`` and frees it (exactly once).
    ``None`` for NULL."""
    if not ptr:
        return None
    try:
        data = string_at(ptr)
    finally:
        lib.dpopkit_string_free(ptr)
    return data.decode("utf-8")


def take_bytes(ptr: Optional[int], length: int) -> Optional[bytes]:
    """Copies ``length`` bytes returned by dpopkit into ``bytes`` and frees them (exactly
    once, with ``dpopkit_bytes_free``). ``None`` for NULL; an empty result is ``b""``."""
    if not ptr:
        return None
    try:
        data = string_at(ptr, length)
    finally:
        lib.dpopkit_bytes_free(ptr)
    return data


def call_bytes(fn: Any, *args: Any) -> Optional[bytes]:
    """Calls a dpopkit function whose last argument is ``size_t *out_len`` and returns its
    bytes (``None`` on failure)."""
    n = c_size_t(0)
    ptr = fn(*args, byref(n))
    return take_bytes(ptr, n.value)


def encode(value: Any, what: str) -> bytes:
    """A string argument as NUL-terminated UTF-8 ``bytes`` (``str`` is encoded, ``bytes``
    passed as is). A NUL inside would silently cut the C string short, so it is refused."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise ValueError(f"{what} contains a NUL character, which a C string cannot carry")
    return data


def encode_optional(value: Any, what: str) -> Optional[bytes]:
    return None if value is None else encode(value, what)


def encode_path(value: Any, what: str) -> bytes:
    """A file path (``str``, ``bytes`` or ``os.PathLike``) as UTF-8 bytes."""
    return encode(os.fspath(value), what)
