"""Packaging, each case running the sample flow against the real peers in a fresh venv:
- `pip install ./bindings/python` from the source tree, with no DPOPKIT_* variable: setup.py
  builds the library with cargo (a no-op when target/release is current) and puts it inside;
- `pip wheel ./bindings/python`: a platform-tagged wheel with the library inside, installed
  offline from the file into a venv that never saw the sources, without DPOPKIT_LIBRARY;
- a copy of bindings/python outside the source tree: a pure wheel that loads the library
  named by DPOPKIT_LIBRARY (or a system-installed one) at run time;
- bindings/python/build_wheel.sh --lib: a wheel of a given library file.

Building needs setuptools >= 77 (pyproject.toml). A fresh venv of Python 3.11 has
setuptools 65.5, and 3.12+ has none, so it gets setuptools from a wheelhouse: the directory named by
DPOPKIT_TEST_WHEELHOUSE (fully offline), else one filled once per run with
`pip download setuptools` from the package index. dpopkit itself is always installed with
--no-index --no-build-isolation.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import pytest

from helpers import BINDINGS, REPO, Peers, fixture

VERSION = re.search(r'(?m)^version = "([^"]+)"', (BINDINGS / "pyproject.toml").read_text()).group(1)  # type: ignore[union-attr]
SAMPLE = Path(__file__).resolve().parent / "sample_flow.py"
# pyproject.toml requires setuptools >= 77 (SPDX license string; bdist_wheel built in).
_CAN_BUILD = "import setuptools\nassert int(setuptools.__version__.split('.')[0]) >= 77\n"


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment without anything that would let a venv see the in-tree package or
    the test's library."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DPOPKIT_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
    }
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


def platform_tag() -> str:
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def release_library() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    return target / "release" / "libdpopkit.so"


def leftovers_in_source_tree() -> list:
    return [p for p in (BINDINGS / "build", BINDINGS / "dpopkit.egg-info", BINDINGS / "dpopkit" / "libdpopkit.so") if p.exists()]


def test_pip_install_from_the_source_tree_needs_no_environment_variable(
    builder_venv: Venv, peers: Peers, tmp_path: Path
) -> None:
    assert not leftovers_in_source_tree(), leftovers_in_source_tree()
    builder_venv.pip("install", "--no-index", "--no-build-isolation", str(BINDINGS), what="pip install ./bindings/python")
    try:
        check_source_tree_install(builder_venv, peers, tmp_path)
    finally:
        builder_venv.pip("uninstall", "-y", "dpopkit", what="pip uninstall dpopkit")


def check_source_tree_install(builder_venv: Venv, peers: Peers, tmp_path: Path) -> None:
    assert not leftovers_in_source_tree(), f"the build left files in bindings/python: {leftovers_in_source_tree()}"
    env = clean_env()
    assert not any(k.startswith("DPOPKIT_") for k in env), sorted(k for k in env if k.startswith("DPOPKIT_"))
    result = sample_flow(builder_venv.python, peers, env, tmp_path)
    assert result["status"] == 200 and result["client_id"] == "m2m.dpop", result
    assert result["live_handles"] == 0, result
    site = builder_venv.site_packages().resolve()
    assert Path(str(result["package"])).resolve().is_relative_to(site), result
    inside = site / "dpopkit" / "libdpopkit.so"
    assert Path(str(result["library"])).resolve() == inside, result
    # setup.py built (or reused) the release library with cargo and copied it in.
    assert inside.read_bytes() == release_library().read_bytes(), "the package does not carry target/release's library"
    assert peers.tokens_issued() == 1


def test_pip_wheel_is_platform_tagged_and_installs_offline_without_dpopkit_library(
    builder_venv: Venv, start_peers, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    run(
        [builder_venv.python, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--no-index",
         "--no-build-isolation", "-w", dist, BINDINGS],
        "pip wheel ./bindings/python",
    )
    assert not leftovers_in_source_tree(), f"the build left files in bindings/python: {leftovers_in_source_tree()}"
    wheels = list(dist.glob("dpopkit-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert wheel.name == f"dpopkit-{VERSION}-py3-none-{platform_tag()}.whl", wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        wheel_meta = z.read(f"dpopkit-{VERSION}.dist-info/WHEEL").decode()
        carried = z.read("dpopkit/libdpopkit.so")
    assert "Root-Is-Purelib: false" in wheel_meta, wheel_meta
    assert "dpopkit/py.typed" in names and "dpopkit/_native.py" in names, names
    assert carried == release_library().read_bytes()

    # A venv that has never seen the sources, offline: installing a wheel needs no setuptools.
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


def test_a_copy_outside_the_source_tree_builds_a_pure_wheel_using_dpopkit_library(
    builder_venv: Venv, peers: Peers, tmp_path: Path
) -> None:
    src = copy_sources(tmp_path / "src")
    dist = tmp_path / "dist"
    run(
        [builder_venv.python, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--no-index",
         "--no-build-isolation", "-w", dist, src],
        "pip wheel of a copy of bindings/python",
    )
    wheels = list(dist.glob("dpopkit-*.whl"))
    assert [w.name for w in wheels] == [f"dpopkit-{VERSION}-py3-none-any.whl"], wheels
    user = Venv(tmp_path / "venv-pure")
    user.pip("install", "--no-index", str(wheels[0]), what="pip install the pure wheel")
    lib = os.environ["DPOPKIT_LIBRARY"]
    result = sample_flow(user.python, peers, clean_env(DPOPKIT_LIBRARY=lib), tmp_path)
    assert result["status"] == 200 and result["client_id"] == "m2m.dpop", result
    site = user.site_packages()
    assert Path(str(result["package"])).resolve().is_relative_to(site.resolve()), result
    assert os.path.samefile(str(result["library"]), lib), result
    assert not (site / "dpopkit" / "libdpopkit.so").exists(), "a pure install must not carry a library"
    assert (site / "dpopkit" / "py.typed").exists()
    assert peers.tokens_issued() == 1


def test_build_wheel_sh_packages_the_given_library(builder_venv: Venv, tmp_path: Path) -> None:
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
    assert [w.name for w in wheels] == [f"dpopkit-{VERSION}-py3-none-{platform_tag()}.whl"], wheels
    with zipfile.ZipFile(wheels[0]) as z:
        assert z.read("dpopkit/libdpopkit.so") == Path(lib).read_bytes()
    assert not leftovers_in_source_tree(), f"build_wheel.sh left files in bindings/python: {leftovers_in_source_tree()}"
