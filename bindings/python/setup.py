"""Only here to tag a wheel that carries the shared library (build_wheel.sh) as platform
specific (py3-none-<platform>). Metadata lives in pyproject.toml; a plain
`pip install ./bindings/python` builds a pure wheel that finds the library at run time."""

import os

from setuptools import setup
from setuptools.dist import Distribution

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIBS = ("libdpopkit.so", "libdpopkit.dylib", "dpopkit.dll")

cmdclass = {}
distclass = Distribution
if any(os.path.exists(os.path.join(_HERE, "dpopkit", name)) for name in _LIBS):
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1

    class _BinaryDistribution(Distribution):
        """Carries a native library: installed to platlib, wheel not pure."""

        def has_ext_modules(self) -> bool:
            return True

    class _PlatformWheel(bdist_wheel):
        def get_tag(self):
            _python, _abi, plat = super().get_tag()
            return "py3", "none", plat

    cmdclass["bdist_wheel"] = _PlatformWheel
    distclass = _BinaryDistribution

setup(cmdclass=cmdclass, distclass=distclass)
