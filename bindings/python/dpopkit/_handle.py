"""The managed base class of every dpopkit object: owns one int64 handle."""

from __future__ import annotations

import re
import threading
from types import TracebackType
from typing import NoReturn, Optional, Type, TypeVar

from . import _native
from .errors import DpopkitError, Result

_T = TypeVar("_T", bound="Handle")


def raise_thread_error() -> NoReturn:
    """Raises the calling thread's latest dpopkit error (for failures without a handle,
    such as a constructor returning 0)."""
    lib = _native.lib
    code = lib.dpopkit_last_error_code(0)
    text = _native.take_string(lib.dpopkit_last_error_text(0)) or ""
    raise DpopkitError(code if code else Result.INTERNAL, 0, text or "dpopkit call failed")


def _snake(name: str) -> str:
    """``SessionLogFilename`` -> ``session_log_filename`` (for the hint of a literal port)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


class Handle:
    """Owns one dpopkit handle. ``close()`` releases it (``dpopkit_destroy``) and may be
    called any number of times; the object is also a context manager, and ``__del__``
    closes it as a safety net. Any use after ``close()`` raises ``ValueError``.

    Objects have ``__slots__``: assigning an attribute that does not exist raises
    ``AttributeError`` (a literal port's ``http.SessionLogFilename = "x"`` would otherwise
    do nothing and report nothing); the error names the snake_case attribute when there
    is one."""

    __slots__ = ("_handle", "_close_lock", "__weakref__")

    def __init__(self, handle: int) -> None:
        self._handle = 0  # set first: __del__ is safe even if the check below raises
        if not handle:
            raise_thread_error()
        self._close_lock = threading.Lock()
        self._handle = int(handle)

    def __setattr__(self, name: str, value: object) -> None:
        try:
            object.__setattr__(self, name, value)
        except AttributeError as e:
            cls = type(self)
            if hasattr(cls, name):
                raise  # a read-only property: Python's own message says so
            hint = ""
            snake = _snake(name)
            if snake != name and hasattr(cls, snake):
                hint = f"; did you mean '{snake}'?"
            raise AttributeError(
                f"'{cls.__name__}' object has no attribute '{name}'{hint} "
                f"(dpopkit objects accept only their documented attributes)"
            ) from e

    # -- lifetime ---------------------------------------------------------------------
    @property
    def handle(self) -> int:
        """The raw int64 handle (for the C ABI); ``ValueError`` once closed."""
        h = self._handle
        if not h:
            raise ValueError(f"{type(self).__name__} object is closed")
        return h

    @property
    def closed(self) -> bool:
        return not getattr(self, "_handle", 0)

    def close(self) -> None:
        """Destroys the native object. Idempotent."""
        lock = getattr(self, "_close_lock", None)
        if lock is None:
            return
        with lock:
            h, self._handle = self._handle, 0
        if h:
            _native.lib.dpopkit_destroy(h)

    def __enter__(self: _T) -> _T:
        self.handle  # refuse a closed object at the `with`
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may already be gone
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"handle={self._handle:#x}"
        return f"<dpopkit.{type(self).__name__} {state}>"

    # -- Chilkat-style last call state (per object and calling thread) ----------------
    @property
    def last_error_code(self) -> Result:
        """Result of the last call on this object from the calling thread."""
        return Result(_native.lib.dpopkit_last_error_code(self.handle))

    @property
    def last_error_text(self) -> str:
        """Text of the last error on this object from the calling thread ("" after a
        success)."""
        return _native.take_string(_native.lib.dpopkit_last_error_text(self.handle)) or ""

    # -- helpers for subclasses ---------------------------------------------------------
    def _status_for_error(self, h: int) -> int:
        """The HTTP status a failed *request* reports (Http overrides it)."""
        return 0

    def _raise(self, h: int, request: bool = False) -> NoReturn:
        """Raises the last error of ``h``. Only a failed request carries an HTTP status: a
        configuration error never shows the status of an earlier request."""
        lib = _native.lib
        code = lib.dpopkit_last_error_code(h)
        text = _native.take_string(lib.dpopkit_last_error_text(h)) or ""
        status = self._status_for_error(h) if request else 0
        raise DpopkitError(code if code else Result.INTERNAL, status, text or "dpopkit call failed")

    def _check(self, ok: int, h: int) -> None:
        if ok != 1:
            self._raise(h)

    def _string(self, ptr: Optional[int], h: int, request: bool = False) -> str:
        if not ptr:
            self._raise(h, request)
        s = _native.take_string(ptr)
        assert s is not None
        return s
