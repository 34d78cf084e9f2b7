"""Packaging: `pip install ./bindings/python` into a fresh venv, and the wheel made by
bindings/python/build_wheel.sh (library inside, no DPOPKIT_LIBRARY needed), each running
the sample flow against the real peers.

Building needs setuptools >= 77 (pyproject.toml). A fresh venv of Python 3.11 has
setuptools 65.5, and 3.12+ has none, so it gets setuptools from a wheelhouse: the directory named by
DPOPKIT_TEST_WHEELHOUSE (fully offline), else one filled once per run with
`pip download setuptools` from the package index. dpopkit itself is always installed with
--no-index --no-build-isolation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import pytest

from helpers import BINDINGS, Peers, fixture

SAMPLE = Path(__file__).resolve().parent / "sample_flow.py"
# pyproject.toml requires setuptools >= 77 (SPDX license string; bdist_wheel built in).
_CAN_BUILD = "import setuptools\nassert int(setuptools.__version__.split('.')[0]) >= 77\n"


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment without anything that would let a venv see the in-tree package or
    the test's library."""
    env = {k: v for k, v in os.environ.items() if k not in ("DPOPKIT_LIBRARY", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run(cmd: Sequence[Union[str, Path]], what: str, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None) -> str:
    r = subprocess.run([str(c) for c in cmd], env=env or clean_env(), cwd=cwd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"{what} failed (exit {r.returncode}): {' '.join(map(str, cmd))}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}", pytrace=False)
    return r.stdout


class Venv:
    def __init__(self, path: Path) -> None:
        run([sys.executable, "-m", "venv", path], "python -m venv")
        self.path = path
        self.python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")

    def can_build_wheels(self) -> bool:
        return subprocess.run([self.python, "-c", _CAN_BUILD], env=clean_env(), capture_output=True).returncode == 0

    def pip(self, *args: str, what: str) -> str:
        return run([self.python, "-m", "pip", "--disable-pip-version-check", *args], what)

    def site_packages(self) -> Path:
        out = run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])"], "sysconfig")
        return Path(out.strip())


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("DPOPKIT_TEST_WHEELHOUSE")
    if given:
        return Path(given)
    d = tmp_path_factory.mktemp("wheelhouse")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
         "-d", str(d), "setuptools>=77"],
        env=clean_env(), capture_output=True, text=True, timeout=600,
    )
    if r.returncode != 0:
        pytest.fail(
            "a fresh venv cannot build wheels (no setuptools >= 77), and setuptools could not be "
            "downloaded from the package index. Offline, point DPOPKIT_TEST_WHEELHOUSE at a directory holding a "
            f"setuptools>=77 wheel.\n{r.stderr}",
            pytrace=False,
        )
    return d


@pytest.fixture(scope="session")
def builder_venv(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Venv:
    """A fresh venv able to build wheels offline."""
    venv = Venv(tmp_path_factory.mktemp("venv-source") / "venv")
    if not venv.can_build_wheels():
        house = request.getfixturevalue("wheelhouse")
        venv.pip("install", "--no-index", "--find-links", str(house), "setuptools>=77", what="setuptools from the wheelhouse")
        assert venv.can_build_wheels(), "setuptools>=77 installed but bdist_wheel is still missing"
    return venv


def copy_sources(dest: Path) -> Path:
    """bindings/python as a user gets it (pip would build in-tree and leave build/ and
    *.egg-info in the repo; a copy keeps the work tree clean)."""
    return Path(shutil.copytree(BINDINGS, dest, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")))


def sample_flow(python: Path, peers: Peers, env: Dict[str, str], cwd: Path) -> Dict[str, object]:
    out = run(
        [python, SAMPLE, peers.token_endpoint, peers.api, fixture("ec_pkcs8_enc.pem"), "test-password"],
        "the sample flow in the venv",
        env=env,
        cwd=cwd,  # not the repo: `import dpopkit` must find the installed package
    )
    return json.loads(out.strip().splitlines()[-1])


def test_pip_install_source_into_a_fresh_venv(builder_venv: Venv, peers: Peers, tmp_path: Path) -> None:
    src = copy_sources(tmp_path / "src")
    builder_venv.pip("install", "--no-index", "--no-build-isolation", str(src), what="pip install ./bindings/python")
    lib = os.environ["DPOPKIT_LIBRARY"]
    result = sample_flow(builder_venv.python, peers, clean_env(DPOPKIT_LIBRARY=lib), tmp_path)
    assert result["status"] == 200 and result["client_id"] == "m2m.dpop", result
    assert result["live_handles"] == 0, result
    site = builder_venv.site_packages()
    assert Path(str(result["package"])).resolve().is_relative_to(site.resolve()), result
    assert os.path.samefile(str(result["library"]), lib), result
    assert not (site / "dpopkit" / "libdpopkit.so").exists(), "a source install must not carry a library"
    assert (site / "dpopkit" / "py.typed").exists()
    assert peers.tokens_issued() == 1


def test_wheel_from_build_wheel_sh_works_without_dpopkit_library(
    builder_venv: Venv, start_peers, tmp_path: Path
) -> None:
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run bindings/python/build_wheel.sh", pytrace=False)
    dist = tmp_path / "dist"
    lib = os.environ["DPOPKIT_LIBRARY"]
    run(
        ["bash", BINDINGS / "build_wheel.sh", "--lib", lib, "--out", dist],
        "build_wheel.sh",
        env=clean_env(PYTHON=str(builder_venv.python)),
    )
    wheels = list(dist.glob("dpopkit-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert not wheel.name.endswith("-none-any.whl"), f"a wheel with a native library must be platform-tagged: {wheel.name}"
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "dpopkit/libdpopkit.so" in names, names
    assert "dpopkit/py.typed" in names and "dpopkit/_native.py" in names, names
    assert not (BINDINGS / "dpopkit" / "libdpopkit.so").exists(), "build_wheel.sh left a library in the source tree"
    assert not (BINDINGS / "build").exists(), "build_wheel.sh left build/ in the source tree"

    # A venv that has never seen the sources: installing a wheel needs no setuptools.
    user = Venv(tmp_path / "venv-wheel")
    user.pip("install", "--no-index", str(wheel), what="pip install the wheel")
    peers = start_peers("--as-nonce", "--rs-nonce")
    env = clean_env()
    assert "DPOPKIT_LIBRARY" not in env
    result = sample_flow(user.python, peers, env, tmp_path)
    assert result["status"] == 200 and result["client_id"] == "m2m.dpop", result
    site = user.site_packages().resolve()
    assert Path(str(result["library"])).resolve() == site / "dpopkit" / "libdpopkit.so", result
    assert peers.tokens_issued() == 1
