#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests against the real authorization server
# (oidc-provider) and the jose-validating resource server on 127.0.0.1, the C and C++
# programs, the Python bindings (pytest) and the C# / SQL Server bindings (mono), the CLI
# the header check, and the shipped artifacts (tests/shipping.rs: SONAME, exports, install
# layout, pkg-config; the Python wheel). Installs missing prerequisites first (scripts/setup.sh).
#
# The release library is built once, first, with the command bindings/c/install.sh and
# bindings/python/setup.py use, so the install and wheel tests find it current.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
sh bindings/c/install.sh --build-only
echo "== release build took $(( $(date +%s) - start )) s"
cargo test --all-targets "$@"
