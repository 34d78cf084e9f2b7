"""Result codes and exceptions of dpopkit."""

from __future__ import annotations

import enum
from typing import Any, Optional

__all__ = ["Result", "DpopkitError", "LibraryNotFoundError"]


class Result(enum.IntEnum):
    """Mirror of ``enum dpopkit_result`` in include/dpopkit.h (same names without the
    ``DPOPKIT_RESULT_`` prefix, same numbers; a drift test compares them)."""

    OK = 0
    NULL_ARGUMENT = 1
    INVALID_HANDLE = 2
    WRONG_HANDLE_TYPE = 3
    INVALID_UTF8 = 4
    INVALID_ARGUMENT = 5
    KEY_FORMAT = 6
    KEY_UNSUPPORTED = 7
    FILE_IO = 8
    NO_KEY = 9
    AUTH_TOKEN = 10
    TRANSPORT = 11
    TIMEOUT = 12
    TLS = 13
    TOKEN_ENDPOINT = 14
    TOKEN_NOT_DPOP_BOUND = 15
    TOKEN_RESPONSE = 16
    HTTP_STATUS = 17
    DPOP_NONCE = 18
    RESPONSE_TOO_LARGE = 19
    RESPONSE_NOT_TEXT = 20
    JSON = 21
    DISCOVERY = 22
    DPOP_PROOF = 23
    NOT_FOUND = 24
    PANIC = 100
    INTERNAL = 101

    @classmethod
    def _missing_(cls, value: Any) -> Optional["Result"]:
        # A newer library may report a code this module does not know yet: keep the
        # number rather than failing while reporting an error.
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            return member
        return None


class DpopkitError(Exception):
    """A dpopkit call failed.

    ``code`` is a :class:`Result`, ``status`` the HTTP status of the last response (0 when
    there was none or the call made no request), ``text`` the library's error text (it
    never contains a secret).
    """

    code: Result
    status: int
    text: str

    def __init__(self, code: int, status: int, text: str) -> None:
        self.code = Result(code)
        self.status = int(status)
        self.text = text
        super().__init__(self.code, self.status, self.text)

    def __str__(self) -> str:
        status = f", HTTP {self.status}" if self.status else ""
        return f"[{self.code.name}{status}] {self.text}"

    def __repr__(self) -> str:
        return f"DpopkitError(code=Result.{self.code.name}, status={self.status}, text={self.text!r})"


class LibraryNotFoundError(ImportError):
    """The dpopkit shared library could not be found or loaded."""
