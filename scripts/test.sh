#!/usr/bin/env bash
# Runs every test and the lints: Rust unit and integration tests against the real authorization server
# (oidc-provider) and the jose-validating resource server on 127.0.0.1, the C and C++
# programs, the Python bindings (pytest) and the C# / SQL Server bindings (mono), the CLI
# the header check, and the shipped artifacts (tests/shipping/artifacts.rs: SONAME, exports, install
# layout, pkg-config; the Python wheel), the C tests under valgrind memcheck, then clippy
# (warnings are errors) and the API docs, then the Windows x64 build and its tests under Wine
# (scripts/windows.sh test). Installs missing prerequisites first (scripts/setup.sh).
#
# The release library is built once, with the command bindings/c/install.sh and
# bindings/python/setup.py use, so the install and wheel tests find it current. It builds in
# the background while the tests run (they wait on network peers much of the time); the
# tests that need it (tests/shipping/artifacts.rs, the Python packaging tests) run install.sh or
# setup.py, whose cargo waits for target/release's lock until that build is done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Formatting, with the committed rustfmt.toml (seconds: first, so that it fails fast).
cargo fmt --check || { echo "!! not rustfmt-formatted: run cargo fmt" >&2; exit 1; }
# No import circle among the first-level modules of src/core and src/ffi; src/core
# never imports ffi/capi (ARCHITECTURE.md). Cheap, so first.
python3 scripts/check_layers.py
# The Python tests run in the virtual environment setup.sh made (pytest is there, and
# nothing is installed into the system Python).
export DPOPKIT_PYTHON="${DPOPKIT_PYTHON:-$PWD/target/py/bin/python}"
cargo test --all-targets --no-run "$@"
mkdir -p target
start=$(date +%s)
( sh bindings/c/install.sh --build-only >target/release-build.log 2>&1
  echo "== release build (background) exit $? after $(( $(date +%s) - start )) s" >>target/release-build.log ) &
release_pid=$!
set +e
cargo test --all-targets "$@"
rc=$?
set -e
wait "$release_pid" || true
tail -3 target/release-build.log
if ! grep -q "exit 0 after" target/release-build.log; then
  echo "!! the release build failed: target/release-build.log" >&2
  cat target/release-build.log >&2
  exit 1
fi
# Lints, as the model projects run them in CI: clippy on every target (the library, the CLI,
# the tests, the benches and examples) with warnings as errors. After the tests, so that it
# does not compete with their timing; it reuses the dependencies the test build compiled.
cargo clippy --all-targets -- -D warnings || { echo "!! cargo clippy warns (see above): fix the code, or allow the lint where it is wrong, with a reason" >&2; exit 1; }
# The API docs build without a warning (a public doc linking a private item, a broken link):
# cheap, and a warning fails the run.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib || { echo "!! cargo doc warns (see above)" >&2; exit 1; }
# Windows x64: the cross build (dpopkit.dll, dpopkit.exe) and its tests under Wine, after the
# Linux tests so that it does not compete with their timing (about 6 minutes cold, on 2
# cores). A failure here fails the run.
win_start=$(date +%s)
set +e
bash scripts/windows.sh test
win_rc=$?
set -e
echo "== Windows build and tests (scripts/windows.sh test): exit $win_rc after $(( $(date +%s) - win_start )) s"
[ "$rc" -ne 0 ] && exit "$rc"
[ "$win_rc" -ne 0 ] && exit "$win_rc"
exit 0
