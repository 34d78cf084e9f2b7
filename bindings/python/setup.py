"""Build hook of the dpopkit Python package (metadata: pyproject.toml; backend: setuptools).

`pip install ./bindings/python`, `pip wheel ./bindings/python` or `python -m build` from the
dpopkit source tree put the shared library inside the package (dpopkit/libdpopkit.so) and
tag the wheel for the platform (py3-none-linux_x86_64: ctypes needs no particular CPython
ABI, but the library is native code). The library comes from, in this order:

1. DPOPKIT_BUILD_LIBRARY=/path/to/libdpopkit.so, if set (bindings/python/build_wheel.sh --lib);
2. cargo, when the package sits in the dpopkit source tree (../../Cargo.toml) and cargo is on
   PATH: `cargo rustc --profile release --lib` (the same command as bindings/c/install.sh, so
   they share one build; nothing is rebuilt when target/release is current);
3. without cargo, an already built target/release or target/debug library.

Outside the source tree (a copy of bindings/python alone) with no DPOPKIT_BUILD_LIBRARY, the
wheel is pure (py3-none-any) and the package loads a system-installed libdpopkit at run time
(bindings/c/install.sh + ldconfig) or the file named by DPOPKIT_LIBRARY.
"""

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))
_OVERRIDE = "DPOPKIT_BUILD_LIBRARY"
_CRATE_VAR = re.compile(
    r"^(CARGO_MANIFEST_\w+|CARGO_PKG_\w+|CARGO_BIN_EXE_.+|OUT_DIR|CARGO_CRATE_NAME|CARGO_BIN_NAME"
    r"|CARGO_PRIMARY_PACKAGE|CARGO_TARGET_TMPDIR)$"
)


def _library_filename() -> str:
    if sys.platform == "win32":
        return "dpopkit.dll"
    if sys.platform == "darwin":
        return "libdpopkit.dylib"
    return "libdpopkit.so"


def _in_source_tree() -> bool:
    try:
        with open(os.path.join(_REPO, "Cargo.toml"), encoding="utf-8") as f:
            manifest = f.read()
    except OSError:
        return False
    return 'name = "dpopkit"' in manifest and os.path.exists(os.path.join(_REPO, "include", "dpopkit.h"))


def _target_dir() -> str:
    t = os.environ.get("CARGO_TARGET_DIR")
    if not t:
        return os.path.join(_REPO, "target")
    return t if os.path.isabs(t) else os.path.join(_REPO, t)


def _fail(message: str) -> "None":
    raise SystemExit("dpopkit: " + message)


def _native_library() -> str:
    """The path of the library to put into the package (builds it when needed)."""
    override = os.environ.get(_OVERRIDE)
    if override:
        if not os.path.isfile(override):
            _fail(f"{_OVERRIDE}={override!r} is not a file")
        return override
    name = _library_filename()
    target = _target_dir()
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if cargo:
        libs_file = os.path.join(target, "release", "dpopkit-native-static-libs.txt")
        cmd = [cargo, "rustc", "--profile", "release", "--lib", "--", "--print", f"native-static-libs={libs_file}"]
        print("dpopkit: building the library: " + " ".join(cmd), file=sys.stderr)
        # Run from inside cargo (a test), the environment carries the variables cargo sets for
        # one crate; some build scripts watch them (ring: CARGO_MANIFEST_DIR, OUT_DIR) and would rebuild.
        env = {k: v for k, v in os.environ.items() if not _CRATE_VAR.match(k)}
        r = subprocess.run(cmd, cwd=_REPO, env=env)
        if r.returncode != 0:
            _fail(f"`{' '.join(cmd)}` failed (exit {r.returncode}) in {_REPO}; see cargo's output above")
        built = os.path.join(target, "release", name)
        if not os.path.isfile(built):
            _fail(f"cargo succeeded but {built} does not exist")
        return built
    for profile in ("release", "debug"):
        built = os.path.join(target, profile, name)
        if os.path.isfile(built):
            print(f"dpopkit: cargo not found; packaging the already built {built}", file=sys.stderr)
            return built
    _fail(
        f"cargo is not on PATH and no library is built in {target}/release or {target}/debug. "
        "Install Rust (rustup) or build the library first (cargo build --release), "
        f"or set {_OVERRIDE} to a built {name}."
    )
    raise AssertionError  # unreachable


_NATIVE = bool(os.environ.get(_OVERRIDE)) or _in_source_tree()


class _BuildPyWithLibrary(build_py):
    """Copies the native library into the built package (never into the source tree)."""

    def run(self) -> None:
        super().run()
        lib = _native_library()
        dest = os.path.join(self.build_lib, "dpopkit", _library_filename())
        self.mkpath(os.path.dirname(dest))
        shutil.copyfile(lib, dest)
        os.chmod(dest, 0o755)

    def get_outputs(self, include_bytecode: bool = True):  # type: ignore[override]
        return list(super().get_outputs(include_bytecode)) + [
            os.path.join(self.build_lib, "dpopkit", _library_filename())
        ]


class _BinaryDistribution(Distribution):
    """Carries a native library: installed to platlib, and the wheel is not pure."""

    def has_ext_modules(self) -> bool:
        return True


cmdclass = {}
distclass = Distribution
options = {}
if _NATIVE:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1

    class _PlatformWheel(bdist_wheel):
        def get_tag(self):
            _python, _abi, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass = {"build_py": _BuildPyWithLibrary, "bdist_wheel": _PlatformWheel}
    distclass = _BinaryDistribution

if _in_source_tree():
    # Build leftovers go under cargo's target directory, not into bindings/python.
    scratch = os.path.join(_target_dir(), "python-build")
    os.makedirs(scratch, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=scratch)
    atexit.register(shutil.rmtree, scratch, True)
    options = {"build": {"build_base": os.path.join(scratch, "build")}, "egg_info": {"egg_base": scratch}}

setup(cmdclass=cmdclass, distclass=distclass, options=options)
