"""dpopkit: OAuth 2.0 client_credentials with DPoP (RFC 9449), Python bindings (ctypes).

Quick start::

    import dpopkit

    with dpopkit.PrivateKey.from_file("ec.pem") as key, dpopkit.Http() as http:
        http.set_dpop_key(key)
        http.auth_token = {"token_endpoint": "https://as.example/token",
                           "client_id": "m2m.dpop", "client_secret": "secret",
                           "scope": "api"}
        print(http.quick_get_str("https://api.example/resource"))

Failures raise :class:`DpopkitError` (``.code``: a :class:`Result`, ``.status``: the HTTP
status of a failed request, 0 for any other failure, ``.text``); the Chilkat-style
``last_*`` properties stay readable after a failure. Every object is a context manager;
``close()`` is idempotent and using a closed object raises ``ValueError``. Assigning an
attribute an object does not have raises ``AttributeError`` (never a silent no-op). Strings
go in and out as UTF-8; binary bodies as ``bytes``.
"""

from __future__ import annotations

import json as _json
import os
from typing import Any, Callable, Mapping, Optional, Union, overload

from . import _native
from ._handle import Handle, raise_thread_error
from .errors import DpopkitError, LibraryNotFoundError, Result

__all__ = [
    "DpopkitError",
    "Http",
    "JsonObject",
    "LibraryNotFoundError",
    "PrivateKey",
    "Result",
    "library_path",
    "live_handles",
    "token_cache_clear",
    "version",
]

__version__ = "0.1.0"

StrOrBytes = Union[str, bytes]
PathType = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

_DEFAULT_MAX_RESPONSE_SIZE = 16 * 1024 * 1024
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1


def version() -> str:
    """The native library's version, e.g. "0.1.0"."""
    v = _native.take_string(_native.lib.dpopkit_version())
    if v is None:
        raise_thread_error()
    return v


def live_handles() -> int:
    """Number of native objects created and not yet destroyed in this process."""
    return int(_native.lib.dpopkit_live_handles())


def token_cache_clear() -> None:
    """Forgets every cached access token and DPoP nonce of this process (after rotating a
    client secret or a key): the next request fetches a new token."""
    if _native.lib.dpopkit_token_cache_clear() != 1:
        raise_thread_error()


def library_path() -> str:
    """The shared library this module loaded."""
    return _native.library_path


def _unsigned(value: int, maximum: int, what: str) -> int:
    # ctypes wraps out-of-range integers silently (-1 -> 4294967295): refuse them here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise ValueError(f"{what} must be between 0 and {maximum}, not {value}")
    return value


class _Generate:
    """``PrivateKey.generate()`` makes a new key object; ``key.generate()`` puts a new
    random key into an existing object (and returns it)."""

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[..., "PrivateKey"]: ...

    @overload
    def __get__(self, obj: "PrivateKey", owner: Optional[type] = None) -> Callable[..., "PrivateKey"]: ...

    def __get__(self, obj: Optional["PrivateKey"], owner: Optional[type] = None) -> Callable[..., "PrivateKey"]:
        if obj is None:
            cls: Any = owner if owner is not None else PrivateKey

            def new_generated(alg: str = "ES256") -> "PrivateKey":
                key: PrivateKey = cls()
                try:
                    return key._generate(alg)
                except BaseException:
                    key.close()
                    raise

            return new_generated
        return obj._generate


class PrivateKey(Handle):
    """A DPoP private key: EC P-256 (ES256), EC P-384 (ES384), Ed25519 (EdDSA / Ed25519) or RSA of 2048 to 4096 bits
    (RS256 / PS256, whichever the server takes). ``PrivateKey()`` is empty: load or generate
    a key into it, or use :meth:`from_file`, :meth:`from_text` or ``PrivateKey.generate()``.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(_native.lib.dpopkit_key_new())

    @classmethod
    def from_file(cls, path: PathType, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """A new key object loaded from a file (PEM SEC1/PKCS#8/encrypted PKCS#8, DER, JWK)."""
        key = cls()
        try:
            return key.load_any_format_file(path, password)
        except BaseException:
            key.close()
            raise

    @classmethod
    def from_text(cls, text: StrOrBytes, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """A new key object loaded from PEM or JWK text."""
        key = cls()
        try:
            return key.load_any_format(text, password)
        except BaseException:
            key.close()
            raise

    generate = _Generate()

    def load_any_format_file(self, path: PathType, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """Loads a key from a file in any supported format (PEM SEC1/PKCS#8/encrypted
        PKCS#8, DER, JWK; ``dpopkit_key_load_any_format_file``, Chilkat's
        LoadAnyFormatFile). On failure the object keeps its previous key. Returns ``self``."""
        h = self.handle
        p = _native.encode_path(path, "path")
        pw = _native.encode_optional(password, "password")
        self._check(_native.lib.dpopkit_key_load_any_format_file(h, p, pw), h)
        return self

    def load_any_format(self, text: StrOrBytes, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """Loads a key from PEM or JWK text (``dpopkit_key_load_any_format``, Chilkat's
        LoadAnyFormat). On failure the object keeps its previous key. Returns ``self``."""
        h = self.handle
        data = _native.encode(text, "text")
        pw = _native.encode_optional(password, "password")
        self._check(_native.lib.dpopkit_key_load_any_format(h, data, pw), h)
        return self

    def load_file(self, path: PathType, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """Alias of :meth:`load_any_format_file` (the earlier name, kept so existing code
        keeps working; new code should use the C name)."""
        return self.load_any_format_file(path, password)

    def load(self, text: StrOrBytes, password: Optional[StrOrBytes] = None) -> "PrivateKey":
        """Alias of :meth:`load_any_format` (the earlier name, kept so existing code keeps
        working; new code should use the C name)."""
        return self.load_any_format(text, password)

    def generate_pkcs11(self, uri: StrOrBytes, pin: Optional[StrOrBytes] = None, alg: Optional[StrOrBytes] = None) -> "PrivateKey":
        """Creates a new key pair inside a PKCS#11 token (``dpopkit_key_generate_pkcs11``):
        ``uri`` is a ``pkcs11:`` URI naming the token and the new object (with
        ``module-path``), ``pin`` the user PIN (or ``None`` with ``pin-value`` /
        ``pin-source`` in the URI), ``alg`` ``ES256`` (default when ``None``),
        ``ES384``, ``RS256`` or ``PS256`` (RSA, 2048 bits). The private key never leaves the token. Returns ``self``."""
        h = self.handle
        u = _native.encode(uri, "uri")
        p = _native.encode_optional(pin, "pin")
        a = _native.encode_optional(alg, "alg")
        self._check(_native.lib.dpopkit_key_generate_pkcs11(h, u, p, a), h)
        return self

    def _generate(self, alg: str = "ES256") -> "PrivateKey":
        h = self.handle
        if alg == "ES256":
            self._check(_native.lib.dpopkit_key_generate(h), h)
        else:
            self._check(_native.lib.dpopkit_key_generate_alg(h, _native.encode(alg, "alg")), h)
        return self

    @property
    def alg(self) -> str:
        """The preferred JWS algorithm of the key: ``ES256``, ``ES384``, ``EdDSA``, ``RS256`` or ``PS256`` (an Ed25519 key
        signs as ``Ed25519`` for a server that lists that name; an RSA key RS256 or PS256, whichever the server lists)."""
        h = self.handle
        return self._string(_native.lib.dpopkit_key_get_alg(h), h)

    @property
    def pkcs8_pem(self) -> str:
        """The private key as unencrypted PKCS#8 PEM (secret material)."""
        h = self.handle
        return self._string(_native.lib.dpopkit_key_get_pkcs8_pem(h), h)

    @property
    def jwk(self) -> str:
        """The private key as a JWK JSON text (secret material)."""
        h = self.handle
        return self._string(_native.lib.dpopkit_key_get_jwk(h), h)

    @property
    def public_jwk(self) -> str:
        """The public key as a JWK JSON text (RFC 7638 members)."""
        h = self.handle
        return self._string(_native.lib.dpopkit_key_get_public_jwk(h), h)

    @property
    def jwk_thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint, base64url (the ``jkt`` tokens are bound to)."""
        h = self.handle
        return self._string(_native.lib.dpopkit_key_get_jwk_thumbprint(h), h)


class JsonObject(Handle):
    """A JSON object with string members, e.g. to build the AuthToken description."""

    __slots__ = ()

    def __init__(self, text: Optional[StrOrBytes] = None) -> None:
        super().__init__(_native.lib.dpopkit_json_new())
        if text is not None:
            try:
                self.load(text)
            except BaseException:
                self.close()
                raise

    def update_string(self, name: StrOrBytes, value: StrOrBytes) -> None:
        """Sets top-level member ``name`` to the string ``value`` (added or replaced)."""
        h = self.handle
        n = _native.encode(name, "name")
        v = _native.encode(value, "value")
        self._check(_native.lib.dpopkit_json_update_string(h, n, v), h)

    def emit(self) -> str:
        """Compact JSON text, members in insertion order."""
        h = self.handle
        return self._string(_native.lib.dpopkit_json_emit(h), h)

    def load(self, text: StrOrBytes) -> None:
        """Replaces the content with the JSON object in ``text`` (unchanged on failure)."""
        h = self.handle
        t = _native.encode(text, "text")
        self._check(_native.lib.dpopkit_json_load(h, t), h)

    def string_of(self, name: StrOrBytes) -> str:
        """Member ``name`` as a string (numbers and booleans as JSON text);
        ``DpopkitError`` with ``Result.JSON`` if absent or an object/array."""
        h = self.handle
        n = _native.encode(name, "name")
        return self._string(_native.lib.dpopkit_json_string_of(h, n), h)

    def __str__(self) -> str:
        """The JSON text with secret-looking members (``client_secret``, passwords, tokens,
        assertions, a JWK's ``d``) shown as ``****``, so that printing or logging the
        AuthToken never shows the secret. ``emit()`` gives the full text."""
        text = self.emit()
        try:
            value = _json.loads(text)
        except ValueError:
            return text
        return _json.dumps(_mask_secrets(value), separators=(",", ":"), ensure_ascii=False)


_SECRET_NAMES = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "pin", "client_assertion", "assertion"})
_SECRET_SUFFIXES = ("secret", "password", "passphrase", "_token", "private_key")


def _is_secret_name(name: str) -> bool:
    n = name.lower()
    return n in _SECRET_NAMES or n.endswith(_SECRET_SUFFIXES)


def _mask_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("****" if _is_secret_name(k) and v is not None else _mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_secrets(v) for v in value]
    return value


class Http(Handle):
    """An HTTP client with its own connection pool that fetches a DPoP-bound access token
    (client_credentials) and sends ``Authorization: DPoP`` with a fresh proof on each
    request. One object may be used by many threads at once; ``last_*`` are per thread."""

    __slots__ = (
        "_session_log_filename",
        "_max_response_size",
        "_follow_redirects",
        "_ca_file",
        "_use_os_trust_store",
        "_proxy",
    )

    def __init__(self) -> None:
        super().__init__(_native.lib.dpopkit_http_new())
        self._session_log_filename: Optional[str] = None
        self._max_response_size = _DEFAULT_MAX_RESPONSE_SIZE
        self._follow_redirects = True
        self._ca_file: Optional[str] = None
        self._use_os_trust_store = False
        self._proxy: Optional[str] = None

    def _status_for_error(self, h: int) -> int:
        return int(_native.lib.dpopkit_http_last_status(h))

    # -- configuration ------------------------------------------------------------------
    def set_dpop_key(self, key: PrivateKey) -> None:
        """Uses ``key`` for DPoP proofs (the Http keeps its own copy of the key)."""
        if not isinstance(key, PrivateKey):
            raise TypeError(f"key must be a dpopkit.PrivateKey, not {type(key).__name__}")
        h = self.handle
        self._check(_native.lib.dpopkit_http_set_dpop_key(h, key.handle), h)

    def set_client_assertion_key(self, key: Optional[PrivateKey]) -> None:
        """The key that signs private_key_jwt client assertions (``None``: the DPoP key)."""
        if key is not None and not isinstance(key, PrivateKey):
            raise TypeError(f"key must be a dpopkit.PrivateKey or None, not {type(key).__name__}")
        h = self.handle
        self._check(_native.lib.dpopkit_http_set_client_assertion_key(h, 0 if key is None else key.handle), h)

    def _get_auth_token(self) -> str:
        raise AttributeError("Http.auth_token is write-only (it holds the client secret)")

    def _set_auth_token(self, value: Union[StrOrBytes, "JsonObject", Mapping[str, Any]]) -> None:
        if isinstance(value, JsonObject):
            value = value.emit()
        elif isinstance(value, Mapping):
            value = _json.dumps(dict(value))
        h = self.handle
        data = _native.encode(value, "auth_token")
        self._check(_native.lib.dpopkit_http_set_auth_token(h, data), h)

    auth_token = property(
        _get_auth_token,
        _set_auth_token,
        doc="AuthToken description (JSON text; a JsonObject or a dict also works): "
        "token_endpoint (or issuer / metadata_url, to discover it), client_id, client_secret; "
        "optional scope, audience, resource, client_auth_method (or token_endpoint_auth_method), "
        "client_assertion_audience, client_assertion_kid, clock_skew_correction, max_clock_skew, "
        "allow_bearer, allow_insecure_http, default_expires_in, token_cache_dir. Any other member is "
        "sent as a form field of the token request. Write-only. The members are described in "
        "include/dpopkit.h (dpopkit_http_set_auth_token).",
    )

    @property
    def session_log_filename(self) -> Optional[str]:
        """File the session log is appended to (secrets shown as ****); None or "" stops."""
        return self._session_log_filename

    @session_log_filename.setter
    def session_log_filename(self, path: Optional[PathType]) -> None:
        h = self.handle
        if path is None:
            data: Optional[bytes] = None
            shown: Optional[str] = None
        else:
            data = _native.encode_path(path, "session_log_filename")
            shown = data.decode("utf-8") or None
        self._check(_native.lib.dpopkit_http_set_session_log_filename(h, data), h)
        self._session_log_filename = shown

    def set_timeouts(self, connect_ms: int, request_ms: int) -> None:
        """Connect timeout and whole-call timeout (redirects, retries and token requests
        included), in milliseconds (both > 0)."""
        h = self.handle
        c = _unsigned(connect_ms, _U32_MAX, "connect_ms")
        r = _unsigned(request_ms, _U32_MAX, "request_ms")
        self._check(_native.lib.dpopkit_http_set_timeouts(h, c, r), h)

    @property
    def max_response_size(self) -> int:
        """Largest response body accepted, in bytes (default 16 MiB)."""
        return self._max_response_size

    @max_response_size.setter
    def max_response_size(self, max_bytes: int) -> None:
        h = self.handle
        n = _unsigned(max_bytes, _U64_MAX, "max_response_size")
        self._check(_native.lib.dpopkit_http_set_max_response_size(h, n), h)
        self._max_response_size = n

    @property
    def follow_redirects(self) -> bool:
        """Follow up to 5 redirects of API requests (default True; credentials go only to
        the original origin). False: a 3xx is a failure (``Result.HTTP_STATUS``)."""
        return self._follow_redirects

    @follow_redirects.setter
    def follow_redirects(self, follow: bool) -> None:
        h = self.handle
        self._check(_native.lib.dpopkit_http_set_follow_redirects(h, 1 if follow else 0), h)
        self._follow_redirects = bool(follow)

    @property
    def ca_file(self) -> Optional[str]:
        """PEM file of the only CA certificates trusted for https (None or "": the bundled
        Mozilla roots again)."""
        return self._ca_file

    @ca_file.setter
    def ca_file(self, path: Optional[PathType]) -> None:
        h = self.handle
        data = None if path is None else _native.encode_path(path, "ca_file")
        self._check(_native.lib.dpopkit_http_set_ca_file(h, data), h)
        self._ca_file = (data.decode("utf-8") or None) if data is not None else None

    @property
    def use_os_trust_store(self) -> bool:
        """Verify https servers with the operating system's trust store (default False:
        the bundled Mozilla roots)."""
        return self._use_os_trust_store

    @use_os_trust_store.setter
    def use_os_trust_store(self, use_os: bool) -> None:
        h = self.handle
        self._check(_native.lib.dpopkit_http_set_use_os_trust_store(h, 1 if use_os else 0), h)
        self._use_os_trust_store = bool(use_os)

    @property
    def proxy(self) -> Optional[str]:
        """HTTP proxy URL, e.g. "http://127.0.0.1:3128". None (the default): from the
        environment (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY, read when set); "": no
        proxy at all."""
        return self._proxy

    @proxy.setter
    def proxy(self, proxy_url: Optional[StrOrBytes]) -> None:
        h = self.handle
        data = _native.encode_optional(proxy_url, "proxy")
        self._check(_native.lib.dpopkit_http_set_proxy(h, data), h)
        self._proxy = None if data is None else data.decode("utf-8")

    def set_request_header(self, name: StrOrBytes, value: StrOrBytes) -> None:
        """Sends ``name: value`` on every API request from now on (replacing an earlier
        value of that name, any spelling): ``Accept``, ``Idempotency-Key``, ``If-Match``,
        a correlation id, an API key. Never sent on token or metadata requests, nor to
        another origin than the URL a call was given. ``Authorization``, ``DPoP``,
        ``Host``, ``Content-Length``, ``Transfer-Encoding``, ``Connection`` are refused
        (``DpopkitError`` with ``Result.INVALID_ARGUMENT`` and the reason); so are names
        that are not RFC 9110 tokens and values with CR, LF or NUL. Credential-like
        headers (``Cookie``, ``*-Api-Key``, ``*Token*``) are ``****`` in the session log."""
        h = self.handle
        n = _native.encode(name, "name")
        v = _native.encode(value, "value")
        self._check(_native.lib.dpopkit_http_set_request_header(h, n, v), h)

    def remove_request_header(self, name: StrOrBytes) -> None:
        """Stops sending the header ``name`` (any spelling; no error when it was not set)."""
        h = self.handle
        n = _native.encode(name, "name")
        self._check(_native.lib.dpopkit_http_remove_request_header(h, n), h)

    def clear_request_headers(self) -> None:
        """Stops sending every header set with :meth:`set_request_header`."""
        h = self.handle
        self._check(_native.lib.dpopkit_http_clear_request_headers(h), h)

    # -- requests -------------------------------------------------------------------------
    def quick_get_str(self, url: StrOrBytes) -> str:
        """GET ``url``; the body of a 2xx response, else ``DpopkitError``."""
        h = self.handle
        u = _native.encode(url, "url")
        return self._string(_native.lib.dpopkit_http_quick_get_str(h, u), h, request=True)

    def quick_get_bytes(self, url: StrOrBytes) -> bytes:
        """GET ``url``; the body of a 2xx response as ``bytes`` (any byte values: a PDF, an
        image; ``b""`` when empty), else ``DpopkitError``."""
        h = self.handle
        u = _native.encode(url, "url")
        data = _native.call_bytes(_native.lib.dpopkit_http_quick_get_bytes, h, u)
        if data is None:
            self._raise(h, request=True)
        return data

    def quick_request_bytes(
        self,
        method: StrOrBytes,
        url: StrOrBytes,
        content_type: Optional[StrOrBytes] = None,
        body: Optional[Union[bytes, bytearray, memoryview, str]] = None,
    ) -> bytes:
        """Any method with an optional body of any bytes (a ``str`` is sent as UTF-8); the
        body of a 2xx response as ``bytes``, else ``DpopkitError``."""
        h = self.handle
        m = _native.encode(method, "method")
        u = _native.encode(url, "url")
        ct = _native.encode_optional(content_type, "content_type")
        if body is None:
            data: Optional[bytes] = None
        elif isinstance(body, str):
            data = body.encode("utf-8")
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
        else:
            raise TypeError(f"body must be bytes, bytearray, memoryview or str, not {type(body).__name__}")
        length = 0 if data is None else len(data)
        out = _native.call_bytes(_native.lib.dpopkit_http_quick_request_bytes, h, m, u, ct, data, length)
        if out is None:
            self._raise(h, request=True)
        return out

    def quick_request_str(
        self,
        method: StrOrBytes,
        url: StrOrBytes,
        content_type: Optional[StrOrBytes] = None,
        body: Optional[StrOrBytes] = None,
    ) -> str:
        """Any method with an optional body; the body of a 2xx response, else
        ``DpopkitError``."""
        h = self.handle
        m = _native.encode(method, "method")
        u = _native.encode(url, "url")
        ct = _native.encode_optional(content_type, "content_type")
        b = _native.encode_optional(body, "body")
        return self._string(_native.lib.dpopkit_http_quick_request_str(h, m, u, ct, b), h, request=True)

    # -- last response (per calling thread) -----------------------------------------------
    @property
    def last_status(self) -> int:
        """HTTP status of this thread's last request (0: no response received)."""
        return int(_native.lib.dpopkit_http_last_status(self.handle))

    @property
    def last_method_success(self) -> bool:
        """Whether this thread's last call on the object succeeded."""
        return bool(_native.lib.dpopkit_http_last_method_success(self.handle) == 1)

    @property
    def last_response_body(self) -> Optional[str]:
        """Body of this thread's last response, whatever its status ("" when none;
        None when it is not UTF-8 text)."""
        return _native.take_string(_native.lib.dpopkit_http_last_response_body(self.handle))

    @property
    def last_response_header(self) -> str:
        """Headers of this thread's last response, ``Name: value`` lines joined by CRLF."""
        return _native.take_string(_native.lib.dpopkit_http_last_response_header(self.handle)) or ""

    @property
    def last_response_body_bytes(self) -> bytes:
        """Body of this thread's last response, whatever its status, as ``bytes`` (``b""``
        when none)."""
        h = self.handle
        data = _native.call_bytes(_native.lib.dpopkit_http_last_response_body_bytes, h)
        if data is None:
            self._raise(h)
        return data

    @property
    def last_status_text(self) -> str:
        """Standard reason phrase of this thread's last status ("OK", "Created", "Not
        Found"; "" when no response was received)."""
        return _native.take_string(_native.lib.dpopkit_http_last_status_text(self.handle)) or ""

    def last_response_header_value(self, name: StrOrBytes) -> Optional[str]:
        """The value of header ``name`` of this thread's last response (case-insensitive;
        repeated fields joined with ", "), or ``None`` when it has no such header. Reading
        a header after a failed call keeps that call's ``last_error_text``."""
        h = self.handle
        n = _native.encode(name, "name")
        ptr = _native.lib.dpopkit_http_last_response_header_value(h, n)
        if not ptr:
            if _native.lib.dpopkit_last_error_code(h) == Result.NOT_FOUND:
                return None
            self._raise(h)
        return _native.take_string(ptr)
