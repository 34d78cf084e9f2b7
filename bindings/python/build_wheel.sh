#!/usr/bin/env bash
# Builds the platform wheel of the dpopkit Python package (the library inside, so it works
# without DPOPKIT_LIBRARY). A thin wrapper over the standard route,
# `pip wheel --no-deps -w DIR ./bindings/python`, whose build step (setup.py) runs cargo.
#
# usage: bindings/python/build_wheel.sh [--profile debug|release] [--lib PATH] [--out DIR]
#   --profile  package the already built target/<profile>/libdpopkit.so instead of letting
#              setup.py run `cargo rustc --profile release --lib` (CARGO_TARGET_DIR is honoured)
#   --lib      package this library file (passed as DPOPKIT_BUILD_LIBRARY)
#   --out      where the wheel goes (default: bindings/python/dist)
#   PYTHON     the interpreter whose pip builds the wheel (default: python3)
#
# Offline (--no-build-isolation) when PYTHON has setuptools >= 77 (SPDX license field,
# bdist_wheel built in); otherwise pip fetches setuptools from the package index.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
profile=""
lib=""
out="$here/dist"
python="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --lib) lib="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build_wheel.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$(uname -s)" in
  Darwin) name=libdpopkit.dylib ;;
  MINGW*|MSYS*|CYGWIN*) name=dpopkit.dll ;;
  *) name=libdpopkit.so ;;
esac
if [ -z "$lib" ] && [ -n "$profile" ]; then
  lib="${CARGO_TARGET_DIR:-$repo/target}/$profile/$name"
fi
if [ -n "$lib" ]; then
  if [ ! -f "$lib" ]; then
    echo "build_wheel.sh: $lib not found: build it first (cargo build$([ "$profile" = release ] && echo ' --release'))" >&2
    exit 1
  fi
  export DPOPKIT_BUILD_LIBRARY="$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib")"
fi

isolation=()
if "$python" - <<'PY' 2>/dev/null
import setuptools
assert int(setuptools.__version__.split(".")[0]) >= 77
PY
then
  isolation=(--no-build-isolation)
fi

mkdir -p "$out"
"$python" -m pip wheel --disable-pip-version-check --no-deps "${isolation[@]}" -w "$out" "$here"
echo "build_wheel.sh: wheel in $out (library: ${lib:-built by setup.py with cargo})"
