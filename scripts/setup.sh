#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine with Rust, Node 20 and Python 3.11:
# the test servers' npm packages (from the lockfile), pytest (in the virtual environment
# target/py), a C/C++ toolchain, pkg-config,
# binutils (readelf, nm, objcopy, strip: the shipping tests and bindings/c/install.sh),
# mono (for the SQL Server C# bindings), valgrind (memcheck of the C tests), tinyproxy (a
# real forward proxy), openssl (the TLS tests' CA), and SoftHSM2 + OpenSC's pkcs11-tool (the
# PKCS#11 token tests: tests/pkcs11.rs, tests/python/test_pkcs11.py). Safe to run again: it
# only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing_apt=()
command -v cc >/dev/null || missing_apt+=(gcc)
command -v c++ >/dev/null || missing_apt+=(g++)
command -v pkg-config >/dev/null || missing_apt+=(pkg-config)
command -v readelf >/dev/null && command -v objcopy >/dev/null || missing_apt+=(binutils)
command -v mcs >/dev/null || missing_apt+=(mono-mcs)
command -v mono >/dev/null || missing_apt+=(mono-devel)
[ -e /usr/lib/mono/4.5/System.Data.dll ] || missing_apt+=(mono-devel)
command -v valgrind >/dev/null || missing_apt+=(valgrind)
command -v tinyproxy >/dev/null || [ -x /usr/bin/tinyproxy ] || [ -x /usr/sbin/tinyproxy ] || missing_apt+=(tinyproxy)
command -v openssl >/dev/null || missing_apt+=(openssl)
{ [ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null; } || missing_apt+=(softhsm2)
command -v pkcs11-tool >/dev/null || missing_apt+=(opensc)
if [ ${#missing_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${missing_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${missing_apt[*]} (e.g. sudo apt-get install ${missing_apt[*]})" >&2
    exit 1
  fi
fi

# pytest goes into a virtual environment of the tests (target/py), never into the system
# Python: Debian's refuses `pip install` (PEP 668, externally-managed-environment), and a test
# run must not change the machine's Python. scripts/test.sh points the tests at it
# (DPOPKIT_PYTHON). Debian's python3 needs python3-venv for `python3 -m venv`.
venv=target/py
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pytest --version >/dev/null 2>&1; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      echo "setup: apt-get install python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
    else
      echo "setup: please install python3-venv (sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
  echo "setup: python3 -m venv $venv; pip install pytest (in it)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check pytest
fi

if [ ! -d tests/peers/node_modules/oidc-provider ] || [ tests/peers/package-lock.json -nt tests/peers/node_modules/.package-lock.json ]; then
  echo "setup: npm ci in tests/peers"
  (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
fi
