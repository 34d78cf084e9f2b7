#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests against the real authorization server
# (oidc-provider) and the jose-validating resource server on 127.0.0.1, the C and C++
# programs, the Python bindings (pytest) and the C# / SQL Server bindings (mono), the CLI
# and the header check. Installs missing prerequisites first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --all-targets "$@"
