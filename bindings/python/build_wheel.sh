#!/usr/bin/env bash
# Builds a wheel of the dpopkit Python package that carries the shared library, so that it
# works without DPOPKIT_LIBRARY (the library is found beside the package).
#
# usage: bindings/python/build_wheel.sh [--profile debug|release] [--lib PATH] [--out DIR]
#   --profile  which cargo build to take, target/<profile>/libdpopkit.so (default: debug;
#              CARGO_TARGET_DIR is honoured). Build it first: cargo build [--release]
#   --lib      take this library file instead
#   --out      where the wheel goes (default: bindings/python/dist)
#   PYTHON     the interpreter whose pip builds the wheel (default: python3)
#
# The package is staged in a temporary copy with the library beside it and built there
# with `pip wheel --no-deps -w DIR`, so the source tree never holds a copy of the library
# (a later plain `pip install ./bindings/python` would ship it) nor build leftovers.
# Offline (--no-build-isolation) when PYTHON has setuptools >= 77 (SPDX license field,
# bdist_wheel built in); otherwise pip fetches setuptools from the package index.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
profile=debug
lib=""
out="$here/dist"
python="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --lib) lib="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build_wheel.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

case "$(uname -s)" in
  Darwin) name=libdpopkit.dylib ;;
  MINGW*|MSYS*|CYGWIN*) name=dpopkit.dll ;;
  *) name=libdpopkit.so ;;
esac
if [ -z "$lib" ]; then
  lib="${CARGO_TARGET_DIR:-$repo/target}/$profile/$name"
fi
if [ ! -f "$lib" ]; then
  echo "build_wheel.sh: $lib not found: build it first (cargo build$([ "$profile" = release ] && echo ' --release'))" >&2
  exit 1
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/dpopkit-wheel.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/pkg"
# Copy the package sources only (no build/, dist/, *.egg-info, caches, stray libraries).
cp "$here/pyproject.toml" "$here/setup.py" "$here/README.md" "$stage/pkg/"
mkdir "$stage/pkg/dpopkit"
cp "$here"/dpopkit/*.py "$here/dpopkit/py.typed" "$stage/pkg/dpopkit/"
cp "$lib" "$stage/pkg/dpopkit/$name"

isolation=()
if "$python" - <<'PY' 2>/dev/null
import setuptools
assert int(setuptools.__version__.split(".")[0]) >= 77
PY
then
  isolation=(--no-build-isolation)
fi

mkdir -p "$out"
"$python" -m pip wheel --no-deps "${isolation[@]}" -w "$out" "$stage/pkg"
echo "build_wheel.sh: wheel in $out (library: $lib)"
