#!/usr/bin/env bash
# Windows x64 (x86_64-pc-windows-gnu), cross-built on Debian and tested under Wine.
#
#   bash scripts/windows.sh build   installs the cross toolchain when missing (Debian's
#                                   rustc-web/cargo-web 1.96, rust-web-src, mingw-w64) and
#                                   builds target/x86_64-pc-windows-gnu/release/: dpopkit.dll,
#                                   libdpopkit.dll.a (mingw import library), dpopkit.def (the
#                                   exports), dpopkit.lib (MSVC import library), dpopkit.exe
#   bash scripts/windows.sh test [NAME...]
#                                   builds (as above), installs wine when missing, builds the
#                                   test programs with mingw against include/dpopkit.h, starts
#                                   the real test peers (tests/peers/server.mjs) on 127.0.0.1
#                                   and runs the Windows tests under Wine; ends with
#                                   "N passed, M failed", exit status 1 on any failure (with
#                                   NAMEs: only those tests)
#   bash scripts/windows.sh com     the COM server's tests only (regsvr32, VBScript under
#                                   cscript, the C and early-bound clients; all in `test` too)
#   bash scripts/windows.sh dist    builds, then makes target/dpopkit-<version>-windows-x64.zip
#
# Why this route: rustup here has no Windows standard library, so the standard library is
# built from Debian's source package (cargo -Zbuild-std, accepted by this stable compiler
# with RUSTC_BOOTSTRAP=1), with Debian's rustc (not rustup's, whose version differs from
# the std source). Link arguments come from build.rs: changing RUSTFLAGS would rebuild std.
# On Windows itself, build with the MSVC toolchain instead: `cargo build --release` (README).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TRIPLE=x86_64-pc-windows-gnu
OUT=$ROOT/target/$TRIPLE/release
VERSION=$(sed -n '0,/^version = /s/^version = "\(.*\)"$/\1/p' Cargo.toml)
MINGW=x86_64-w64-mingw32

# --- prerequisites -------------------------------------------------------------------------

need_packages() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "windows.sh: please install: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "windows.sh: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Debian's compiler, whatever rustup puts first on PATH.
DEB_RUSTC=/usr/bin/rustc
DEB_CARGO=/usr/bin/cargo

# --- build ---------------------------------------------------------------------------------

build() {
  # mingw-w64-tools (widl) + libwine-dev (its oaidl.idl): the COM type library (build.rs).
  need_packages rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 mingw-w64-tools libwine-dev
  echo "== windows.sh build: $TRIPLE with $($DEB_RUSTC -V)"
  local start=$SECONDS
  RUSTC=$DEB_RUSTC RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=$MINGW-gcc \
    nice "$DEB_CARGO" build --release -Zbuild-std=std,panic_unwind --target $TRIPLE --lib --bins
  # dpopkit.def: the DLL's exports as they are (tests check them against the header), and
  # from it the MSVC import library, so MSVC projects link without a .def of their own.
  { echo "LIBRARY dpopkit.dll"; echo "EXPORTS"; dll_exports "$OUT/dpopkit.dll" | sed 's/^/    /'; } >"$OUT/dpopkit.def"
  # (run in $OUT: dlltool names the archive members after the output path)
  (cd "$OUT" && "$MINGW-dlltool" -d dpopkit.def -D dpopkit.dll -l dpopkit.lib -m i386:x86-64)
  # The COM server's IDL and type library (build.rs writes them into OUT_DIR; the .tlb is
  # also embedded in the DLL): C/C++ clients generate their header from the IDL with widl/midl.
  local idl
  idl=$(ls -t "$OUT"/build/dpopkit-*/out/dpopkit.idl 2>/dev/null | head -n 1)
  if [ -n "$idl" ]; then cp "$idl" "$OUT/dpopkit.idl"; cp "$(dirname "$idl")/dpopkit.tlb" "$OUT/dpopkit.tlb" 2>/dev/null || true; fi
  local f
  for f in dpopkit.dll libdpopkit.dll.a dpopkit.def dpopkit.lib dpopkit.exe; do
    [ -s "$OUT/$f" ] || { echo "windows.sh: $OUT/$f was not built" >&2; exit 1; }
  done
  echo "== windows.sh build: done in $((SECONDS - start)) s: $OUT/{dpopkit.dll,libdpopkit.dll.a,dpopkit.def,dpopkit.lib,dpopkit.exe}"
}

# The names in the export table of a PE file, one a line, sorted.
dll_exports() {
  "$MINGW-objdump" -p "$1" | awk '/^\[Ordinal\/Name Pointer\] Table/ { t = 1; next } t && /^\t\[/ { print $NF; next } { t = 0 }' | sort
}

# The DLLs a PE file imports, lower case, sorted.
dll_imports() {
  "$MINGW-objdump" -p "$1" | sed -n 's/^\tDLL Name: //p' | tr 'A-Z' 'a-z' | sort -u
}

# The functions the header declares (lines outside comments), sorted.
header_functions() {
  grep -v '^ *//' include/dpopkit.h | grep -oE '\bdpopkit_[a-z0-9_]+\(' | tr -d '(' | sort -u
}

# --- dist ----------------------------------------------------------------------------------

dist() {
  build
  command -v zip >/dev/null || need_packages zip
  local name=dpopkit-$VERSION-windows-x64 stage=$ROOT/target/windows-dist
  rm -rf "$stage" && mkdir -p "$stage/$name"/{bin,lib,include,bindings/sqlserver}
  local d=$stage/$name
  cp "$OUT/dpopkit.dll" "$OUT/dpopkit.exe" "$d/bin/"
  cp "$OUT/dpopkit.lib" "$OUT/libdpopkit.dll.a" "$OUT/dpopkit.def" "$d/lib/"
  cp include/dpopkit.h "$d/include/"
  # The COM server's IDL (for C/C++ early binding: widl -h / midl); its type library is in the DLL.
  cp "$OUT/dpopkit.idl" "$d/include/"
  cp bindings/sqlserver/* "$d/bindings/sqlserver/"
  cp scripts/windows/README-windows.txt "$d/"
  sed -i "s/@VERSION@/$VERSION/g" "$d/README-windows.txt"
  local lic found=0
  for lic in LICENSE LICENSE.txt LICENSE-MIT LICENSE-APACHE COPYING; do
    [ -f "$lic" ] && { cp "$lic" "$d/"; found=1; }
  done
  if [ $found = 0 ]; then
    # The repository has no license files; the license is the statement in Cargo.toml.
    printf 'dpopkit %s\n\nLicense: %s (SPDX expression, from Cargo.toml).\n' \
      "$VERSION" "$(sed -n 's/^license = "\(.*\)"$/\1/p' Cargo.toml)" >"$d/LICENSE.txt"
  fi
  (cd "$d" && unix2dos_txt README-windows.txt LICENSE.txt)
  rm -f "$ROOT/target/$name.zip"
  (cd "$stage" && TZ=UTC zip -q -X -r "$ROOT/target/$name.zip" "$name")
  echo "== windows.sh dist: target/$name.zip"
  unzip -l "$ROOT/target/$name.zip"
}

# CRLF line ends for the text files Windows users open in Notepad.
unix2dos_txt() {
  local f
  for f; do [ -f "$f" ] && sed -i 's/\r\?$/\r/' "$f"; done
}

# --- test ----------------------------------------------------------------------------------

T=$ROOT/target/wine-tests
BIN=$T/bin
LOGS=$T/logs
PASSED=0
FAILED=0
FAILED_NAMES=()
PIDS=()
ONLY=() # test names given after `test`: run only those

export WINEPREFIX=$ROOT/target/wine-prefix
export WINEDEBUG=-all
# No Mono or Gecko install dialogs: nothing here uses .NET or HTML in Wine.
export WINEDLLOVERRIDES="mscoree,mshtml="

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}

# check NAME COMMAND...: one test; its output goes to $LOGS/NAME.log.
check() {
  local name=$1
  shift
  if [ ${#ONLY[@]} -gt 0 ] && [[ " ${ONLY[*]} " != *" $name "* ]]; then return 0; fi
  local log=$LOGS/$name.log
  # A subshell per test: fail() counts into its FAILS, and its EXIT trap stops the servers
  # the test started, however the test ends.
  if ( FAILS=0; trap cleanup EXIT; "$@"; rc=$?; [ "$rc" = 0 ] && [ "$FAILS" = 0 ] ) >"$log" 2>&1; then
    PASSED=$((PASSED + 1))
    echo "ok     $name"
  else
    FAILED=$((FAILED + 1))
    FAILED_NAMES+=("$name")
    echo "FAILED $name (log: ${log#"$ROOT"/})"
    tail -n 25 "$log" | sed 's/^/       | /'
  fi
}

# fail TEXT: marks the running test failed (checked by check(), whatever the test returns).
fail() { FAILS=$((FAILS + 1)); echo "FAILED: $*"; return 1; }

# The Windows form of a path on this machine (Wine maps Z: to /).
winpath() { printf 'Z:%s' "${1//\//\\}"; }

wine_run() { nice wine "$@"; }

wine_setup() {
  need_packages wine wine64
  mkdir -p "$WINEPREFIX"
  if [ ! -f "$WINEPREFIX/.dpopkit-ready" ]; then
    echo "== windows.sh test: wineboot -i (once, $WINEPREFIX)"
    wineboot -i >"$LOGS/wineboot.log" 2>&1 || { cat "$LOGS/wineboot.log"; exit 1; }
    wineserver -w || true
    touch "$WINEPREFIX/.dpopkit-ready"
  fi
}

# mingw-built programs against include/dpopkit.h, in $BIN beside dpopkit.dll.
build_test_programs() {
  mkdir -p "$BIN"
  cp "$OUT/dpopkit.dll" "$OUT/dpopkit.exe" "$BIN/"
  local cc=$MINGW-gcc flags=(-std=c11 -Wall -Wextra -Werror -pedantic -O1 -D__USE_MINGW_ANSI_STDIO=1 -Iinclude)
  # The ProcessPrng stand-in (Wine 8 has no bcryptprimitives.dll; see the file).
  $cc -shared -O2 -Wall -Werror -o "$BIN/bcryptprimitives.dll" tests/windows/processprng.c -ladvapi32
  local p
  for p in tests/c/flow tests/c/porting tests/c/fleet tests/windows/wintest; do
    $cc "${flags[@]}" -o "$BIN/$(basename $p).exe" $p.c -L"$OUT" -ldpopkit -lcrypt32 -ladvapi32
  done
  # Through the MSVC import library this time (GNU ld reads it too).
  $cc "${flags[@]}" -o "$BIN/misuse.exe" tests/c/misuse.c "$OUT/dpopkit.lib"
  # The COM clients (tests/windows/com): C with the COM headers (nameless unions: gnu11),
  # the early-bound one with the header widl generates from the DLL's IDL.
  local com=(-std=gnu11 -Wall -Wextra -Werror -O1 -D__USE_MINGW_ANSI_STDIO=1)
  $cc "${com[@]}" -o "$BIN/com_client.exe" tests/windows/com/client.c -lole32 -loleaut32 -luuid -lpsapi
  "$MINGW-widl" -h -I /usr/include/wine/wine/windows -o "$BIN/dpopkit_com.h" "$OUT/dpopkit.idl"
  $cc "${com[@]}" -I"$BIN" -o "$BIN/com_early.exe" tests/windows/com/early.c -lole32 -loleaut32 -luuid
}

# start_peers ARGS...: tests/peers/server.mjs with ARGS; sets ISSUER TOKEN_URL RS API.
# The peers stop when their stdin ends (a bounded sleep), or when the test ends (cleanup).
start_peers() {
  local out
  out=$(mktemp "$T/peers.XXXXXX")
  node tests/peers/server.mjs "$@" < <(sleep 120) >"$out" 2>"$out.err" &
  PIDS+=($!)
  local i
  for i in $(seq 1 150); do
    [ -s "$out" ] && break
    sleep 0.2
  done
  local line
  line=$(head -n 1 "$out")
  [ -n "$line" ] || { cat "$out.err"; fail "the test peers did not start"; return 1; }
  field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$line"; }
  ISSUER=$(field issuer); TOKEN_URL=$(field token_endpoint); RS=$(field rs); API=$(field api)
  PEERS_PID=${PIDS[-1]}
}

stop_peers() { kill "$PEERS_PID" 2>/dev/null || true; }

# peer_stat URL NAME [curl options]: a number from the peers' /_stats JSON.
peer_stat() {
  local url=$1 name=$2
  shift 2
  curl -sf "$@" "$url/_stats" | grep -oE "\"$name\":[0-9]+" | cut -d: -f2
}

# A new CA each run (made once per run), so no earlier run's CA can be in Wine's stores.
make_pki() {
  PKI=$T/pki
  [ -f "$PKI/server.pem" ] && return 0
  rm -rf "$PKI" && mkdir -p "$PKI"
  (cd "$PKI"
   openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 \
     -subj "/CN=dpopkit Windows test CA" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
   openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
   printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature extendedKeyUsage=serverAuth \
     subjectAltName=IP:127.0.0.1,DNS:localhost subjectKeyIdentifier=hash authorityKeyIdentifier=keyid >server.ext
   openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(date +%s%N)" -days 2 -extfile server.ext -out server.pem
  ) >"$LOGS/pki.log" 2>&1
}

tls_peers() { start_peers --tls "$PKI/server.pem" "$PKI/server.key" --tls-ca "$PKI/ca.pem" "$@"; }

# --- the tests -----------------------------------------------------------------------------

t_dll_imports_only_system_dlls() {
  local allowed=" kernel32.dll ntdll.dll msvcrt.dll ws2_32.dll bcrypt.dll bcryptprimitives.dll crypt32.dll advapi32.dll userenv.dll secur32.dll ncrypt.dll ole32.dll oleaut32.dll combase.dll propsys.dll rpcrt4.dll shell32.dll user32.dll api-ms-win-core-synch-l1-2-0.dll api-ms-win-core-winrt-error-l1-1-0.dll "
  local f d bad=0
  for f in dpopkit.dll dpopkit.exe; do
    echo "$f imports:"
    for d in $(dll_imports "$OUT/$f"); do
      echo "  $d"
      [[ $allowed == *" $d "* ]] || { echo "  ^ not a system DLL"; bad=1; }
    done
  done
  [ $bad = 0 ]
}

# The COM server's entry points, which a later change may add: the only exports allowed
# besides the header's functions.
COM_EXPORTS='^(DllGetClassObject|DllCanUnloadNow|DllRegisterServer|DllUnregisterServer|DllInstall)$'

t_dll_exports_exactly_the_header() {
  diff <(header_functions) <(dll_exports "$OUT/dpopkit.dll" | grep -Ev "$COM_EXPORTS") \
    && echo "exports = the header's $(header_functions | wc -l) functions" \
    || fail "exports differ from include/dpopkit.h (< header only, > DLL only)"
  diff <(dll_exports "$OUT/dpopkit.dll") <(grep -E '^    ' "$OUT/dpopkit.def" | tr -d ' ') || fail "dpopkit.def differs from the DLL's exports"
  # dpopkit.lib: an import stub for each export, all naming dpopkit.dll (misuse.exe is linked
  # with it, so the misuse test runs through it too).
  diff <(dll_exports "$OUT/dpopkit.dll") <("$MINGW-nm" "$OUT/dpopkit.lib" | sed -n 's/.* I __imp_//p' | sort) \
    || fail "dpopkit.lib's import symbols differ from the DLL's exports"
  grep -qaF dpopkit.dll "$OUT/dpopkit.lib" || fail "dpopkit.lib does not name dpopkit.dll"
  ! grep -qaF "$ROOT" "$OUT/dpopkit.lib" || fail "dpopkit.lib carries the build directory's path"
}

t_version_resource() {
  local f text
  for f in dpopkit.dll dpopkit.exe; do
    # The strings are UTF-16; dropping the NULs leaves key and value side by side.
    text=$(wrestool -x --raw -t 16 "$OUT/$f" | tr -d '\000')
    echo "$f: $text" | tr -c '[:print:]\n' ' '
    echo
    local want
    for want in "FileVersion$VERSION" "ProductVersion$VERSION" "ProductNamedpopkit" "CompanyNamedpopkit" \
                "LegalCopyrightCopyright" "FileDescriptiondpopkit" "OriginalFilename$f"; do
      grep -qaF "$want" <<<"$text" || fail "$f: no $want in its version resource"
    done
  done
  # The numeric version too, as Explorer's "File version" shows it.
  local numeric
  numeric=$(wrestool -x --raw -t 16 "$OUT/dpopkit.dll" | od -An -tx1 -v | tr -d ' \n')
  # VS_FIXEDFILEINFO: signature FEEF04BD, struct version, then dwFileVersionMS (minor, major).
  local IFS=. v=($VERSION)
  local ms ls
  ms=$(printf '%04x%04x' "${v[1]}" "${v[0]}" | sed 's/\(..\)\(..\)\(..\)\(..\)/\2\1\4\3/')
  ls=$(printf '%04x%04x' 0 "${v[2]}" | sed 's/\(..\)\(..\)\(..\)\(..\)/\2\1\4\3/')
  grep -q "bd04effe00000100$ms$ls" <<<"$numeric" || fail "dpopkit.dll: FILEVERSION is not $VERSION.0"
}

# The seed flow (tests/c/flow.c: 3 GETs, misuse, a GET after the key object is destroyed).
t_flow() {
  start_peers "$@" || return 1
  local log=$T/flow-session.log
  rm -f "$log"
  (cd "$BIN" && wine_run flow.exe "$(winpath "$ROOT/tests/fixtures/ec_pkcs8_enc.pem")" test-password "$TOKEN_URL" "$API" "$(winpath "$log")") \
    || { stop_peers; fail "flow.exe"; return 1; }
  local issued
  issued=$(peer_stat "$ISSUER" token_issued)
  stop_peers
  echo "tokens issued: $issued"
  [ "$issued" = 1 ] || fail "want exactly one token, the AS issued $issued"
  grep -q "GET /api/test HTTP/1.1" "$log" || fail "the session log has no request"
  ! grep -qE 'eyJ[A-Za-z0-9_-]+\.eyJ|=secret' "$log" || fail "a secret in the session log"
}

t_rest_surface() {
  start_peers --as-nonce --rs-nonce || return 1
  local out
  out=$(cd "$BIN" && wine_run porting.exe "$TOKEN_URL" "$RS") || { echo "$out"; stop_peers; fail "porting.exe"; return 1; }
  stop_peers
  echo "$out"
  grep -q "porting: ok" <<<"$out"
}

t_misuse_matrix() {
  local out
  out=$(wine_run "$BIN/misuse.exe") || { echo "$out"; fail "misuse.exe"; return 1; }
  echo "$out" | tail -n 3
  grep -qE '^[1-9][0-9]* passed, 0 failed' <<<"$out" || fail "no 'N passed, 0 failed' line"
}

t_tls_ca_file() {
  make_pki
  tls_peers --as-nonce --rs-nonce || return 1
  (cd "$BIN" && wine_run wintest.exe tls "$TOKEN_URL" "$API" "$(winpath "$PKI/ca.pem")") || { stop_peers; fail "wintest tls"; return 1; }
  local issued
  issued=$(peer_stat "$ISSUER" token_issued --cacert "$PKI/ca.pem")
  stop_peers
  [ "$issued" = 1 ] || fail "want exactly one token, the AS issued $issued"
}

# The OS trust store (CryptoAPI) refuses a CA it does not hold. That it accepts one it holds
# is not tested: with the CA added to Wine's ROOT store (CertAddEncodedCertificateToStore),
# Wine 8 builds the chain but fails it with CERT_E_REVOCATION_FAILURE for a certificate
# without revocation information, although rustls-platform-verifier passes
# CERT_CHAIN_POLICY_IGNORE_ALL_REV_UNKNOWN_FLAGS (README).
t_os_trust_store() {
  make_pki
  tls_peers || return 1
  (cd "$BIN" && wine_run wintest.exe ostrust "$TOKEN_URL" "$API") || fail "wintest ostrust"
}

cli() { (cd "$BIN" && DPOPKIT_CLIENT_SECRET=secret wine_run dpopkit.exe "$@"); }

t_cli_get() {
  start_peers --as-nonce --rs-nonce || return 1
  local out log=$T/cli-session.log
  rm -f "$log"
  out=$(cli get "$API" --key "$(winpath "$ROOT/tests/fixtures/ec_pkcs8_enc.pem")" --key-password test-password \
        --client-id m2m.dpop --token-endpoint "$TOKEN_URL" --scope api --session-log "$(winpath "$log")") \
    || { echo "$out"; fail "dpopkit.exe get"; return 1; }
  echo "$out"
  grep -qF '{"type":"client_id","value":"m2m.dpop"}' <<<"$out" || fail "no client_id claim in the body"
  grep -qF "$(cat tests/fixtures/ec.jkt)" <<<"$out" || fail "the token is not bound to the key"
  grep -q "use_dpop_nonce" "$log" || fail "the session log has no nonce challenge"
  # --token-cache: the CLI creates the directory (private), and two runs share one token.
  local cache=$T/cli-cache before after
  rm -rf "$cache"
  before=$(peer_stat "$ISSUER" token_issued)
  for i in 1 2; do
    cli get "$API" --key "$(winpath "$ROOT/tests/fixtures/ec_sec1.pem")" --client-id m2m.dpop --token-endpoint "$TOKEN_URL" \
      --scope api --token-cache "$(winpath "$cache")" >/dev/null || fail "dpopkit.exe get --token-cache (run $i)"
  done
  after=$(peer_stat "$ISSUER" token_issued)
  echo "--token-cache: $((after - before)) tokens issued for 2 runs; directory mode $(stat -c %a "$cache" 2>&1)"
  [ $((after - before)) = 1 ] || fail "2 runs with --token-cache: want one token, the AS issued $((after - before))"
  [[ $(stat -c %a "$cache") == *0 ]] || fail "the CLI's cache directory gives others access"
  local v
  v=$(cli --version) || fail "dpopkit.exe --version"
  grep -qF "$VERSION" <<<"$v" || fail "--version says '$v'"
}

t_cli_get_https_ca_file() {
  make_pki
  tls_peers --as-nonce || return 1
  local out
  out=$(cli get "$API" --key "$(winpath "$ROOT/tests/fixtures/ec_sec1.pem")" --client-id m2m.dpop --token-endpoint "$TOKEN_URL" \
        --scope api --ca-file "$(winpath "$PKI/ca.pem")") || { echo "$out"; stop_peers; fail "dpopkit.exe get https"; return 1; }
  stop_peers
  grep -qF '{"type":"client_id","value":"m2m.dpop"}' <<<"$out" || fail "no client_id claim: $out"
}

# A loopback server that accepts and never answers (closes after 20 s, exits by itself).
t_deadline_hanging_server() {
  local portfile
  portfile=$(mktemp "$T/hang.XXXXXX")
  node -e '
    const net = require("net"); const socks = [];
    const s = net.createServer(c => socks.push(c)).listen(0, "127.0.0.1", () => console.log(s.address().port));
    setTimeout(() => { socks.forEach(c => c.destroy()); s.close(); process.exit(0); }, 20000);
  ' >"$portfile" &
  PIDS+=($!)
  local pid=$! i
  for i in $(seq 1 50); do [ -s "$portfile" ] && break; sleep 0.1; done
  local port
  port=$(head -n 1 "$portfile")
  (cd "$BIN" && wine_run wintest.exe deadline "http://127.0.0.1:$port/api") || { kill $pid; fail "wintest deadline"; return 1; }
  kill $pid 2>/dev/null || true
}

# Key, CA file, session log and token cache directory under a directory named Zoë\日本
# (UTF-8 on this side).
t_non_ascii_paths() {
  make_pki
  local base=$T/paths dir=$T/paths/Zoë/日本
  rm -rf "$base" && mkdir -p "$dir" && mkdir -m 700 "$dir/cache"
  cp tests/fixtures/ec_pkcs8_enc.pem "$PKI/ca.pem" "$dir/"
  tls_peers --as-nonce || return 1
  (cd "$BIN" && wine_run wintest.exe paths "$(winpath "$base")" "$TOKEN_URL" "$API") || { stop_peers; fail "wintest paths"; return 1; }
  stop_peers
  [ -s "$dir/session.log" ] || fail "no session log at $dir/session.log"
  grep -q "GET /api/test HTTP/1.1" "$dir/session.log" || fail "the session log has no request"
  ls -la "$dir/cache"
  [ -n "$(find "$dir/cache" -type f ! -name '*.lock' ! -name '*.tmp')" ] || fail "no token record in $dir/cache"
}

# The session log on Windows: device names, a device behind a drive path, a named pipe and
# a hard-linked file are refused; a new log gives other users nothing. Wine keeps no DACL
# on disk: it turns the DACL into the Unix mode, so that mode is what is checked here,
# against a control file created without a security descriptor. Not testable under Wine 8:
# symbolic links and junctions (it shows a Unix symlink as the file it points to, with no
# reparse point) and files of another user (one user).
t_session_log_refusals() {
  local dir=$T/logrefuse
  rm -rf "$dir" && mkdir -p "$dir"
  echo "some file" >"$dir/target.log"
  ln "$dir/target.log" "$dir/hardlink.log"
  (cd "$BIN" && wine_run wintest.exe logrefuse "$(winpath "$dir")") || fail "wintest logrefuse"
  [ "$(cat "$dir/target.log")" = "some file" ] || fail "the hard-linked file was written to"
  local fresh control
  fresh=$(stat -c %a "$dir/fresh.log") control=$(stat -c %a "$dir/default.log")
  echo "Unix modes under Wine: new session log $fresh, control file $control"
  [[ $control == *[1-7] ]] || fail "the control file gives others nothing ($control): this check would prove nothing"
  [[ $fresh == *0 ]] || fail "the new session log gives others access (mode $fresh)"
}

# fleet CACHE_DIR CALLS: 4 workers (tests/c/fleet.c) started together; each waits for its
# start line, sent 6 s after its start so that all of them are up by then.
fleet() {
  local cache=$1 calls=$2 i pids=() rc=0
  for i in 1 2 3 4; do
    (cd "$BIN" && wine_run fleet.exe "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")" "$TOKEN_URL" "$API" "$cache" "$calls" \
       < <(sleep 6; echo go) >"$T/fleet.$i.out" 2>&1) &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { rc=1; echo "worker $((i + 1)) failed:"; cat "$T/fleet.$((i + 1)).out"; }
  done
  return $rc
}

# The shared token cache on Windows (LockFileEx, private files, owner + DACL check of the
# directory): 4 processes x 3 calls, one token request; a corrupt record is replaced; a
# directory others may write to is refused with the icacls fix.
t_fleet_token_cache() {
  start_peers --rs-nonce || return 1
  local cache=$T/fleet-cache
  rm -rf "$cache" && mkdir -m 700 "$cache"
  # The control: without the member every process asks.
  fleet - 3 || fail "the fleet without a cache"
  local n
  n=$(peer_stat "$ISSUER" token_requests)
  echo "without token_cache_dir: $n token requests"
  [ "$n" = 4 ] || fail "without the cache, want 4 token requests (one per process), got $n"
  fleet "$(winpath "$cache")" 3 || fail "the fleet with the cache"
  n=$(peer_stat "$ISSUER" token_requests)
  echo "with token_cache_dir: $((n - 4)) token requests"
  [ "$n" = 5 ] || fail "4 processes x 3 calls through one cache directory: want 1 token request, got $((n - 4))"
  [ "$(peer_stat "$RS" ok)" = 24 ] || fail "want 24 API calls answered 200"
  ls -la "$cache"
  local record
  # A record is named by 64 hex digits (beside it: its .lock and the directory's binding key).
  record=$(find "$cache" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' | head -n 1)
  [ -n "$record" ] || { fail "no token record in the cache"; return 1; }
  [[ $(stat -c %a "$record") == *0 ]] || fail "the token record gives others access (mode $(stat -c %a "$record"))"
  # A corrupt record: ignored, one new token, replaced.
  echo "not json" >"$record"
  chmod 600 "$record"
  (cd "$BIN" && wine_run fleet.exe "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")" "$TOKEN_URL" "$API" "$(winpath "$cache")" 1 <<<go) \
    || fail "a worker with a corrupt record"
  [ "$(peer_stat "$ISSUER" token_requests)" = 6 ] || fail "a corrupt record should cost exactly one new token request"
  grep -q '"version"' "$record" || fail "the corrupt record was not replaced"
  # A directory others may write to.
  local open=$T/fleet-open out
  rm -rf "$open" && mkdir "$open" && chmod 777 "$open"
  out=$(cd "$BIN" && wine_run fleet.exe "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")" "$TOKEN_URL" "$API" "$(winpath "$open")" 1 <<<go 2>&1)
  echo "$out"
  grep -q "is writable by" <<<"$out" && grep -q "icacls" <<<"$out" || fail "a directory others may write to is not refused with the icacls fix"
}

# gateway NAME ARGS...: starts `dpopkit.exe serve ARGS` under Wine (caller key in GWKEY);
# sets GW to its base URL once it listens (at most 60 s), or fails with its output.
gateway() {
  local name=$1
  shift
  local err=$T/gateway-$name.err i
  rm -f "$err"
  (cd "$BIN" && GWKEY=wine-gateway-key-0123456789 DPOPKIT_CLIENT_SECRET=secret exec nice wine dpopkit.exe serve "$@") 2>"$err" &
  PIDS+=($!)
  GW=
  for i in $(seq 1 300); do
    # The port once written whole (what follows it is there too): stderr is unbuffered.
    GW=$(grep -oE 'https?://127\.0\.0\.1:[0-9]+[; ]' "$err" | head -n 1 | tr -d '; ' || true)
    [ -n "$GW" ] && break
    sleep 0.2
  done
  [ -n "$GW" ] || { cat "$err"; fail "dpopkit.exe serve did not start"; return 1; }
  echo "gateway $name at $GW"
}

# The gateway under Wine: plain http on loopback, GET and POST through it to the validating
# RS with nonces at both servers, 401 without the caller key and nothing upstream, the health
# and metrics paths; then HTTPS with a generated certificate (the certificate directory and
# the key made private: Wine shows the DACL as the Unix mode) that --print-cert prints and
# curl trusts; a key file others may read is refused.
t_gateway() {
  start_peers --as-nonce --rs-nonce || return 1
  local key route out code
  key=$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")
  route=(--route "/api/=$RS/" --key "$key" --client-id m2m.dpop --token-endpoint "$TOKEN_URL" --scope api --caller-secret-env GWKEY)
  gateway plain --listen 127.0.0.1:0 --plain-http "${route[@]}" || return 1
  out=$(curl -s -m 30 -H "X-DpopKit-Gateway-Key: wine-gateway-key-0123456789" "$GW/api/api/test") || fail "GET through the gateway"
  echo "$out"
  grep -qF '{"type":"client_id","value":"m2m.dpop"}' <<<"$out" || fail "GET through the gateway: no client_id claim"
  grep -qF "$(cat tests/fixtures/ec.jkt)" <<<"$out" || fail "the gateway's token is not bound to its key"
  code=$(curl -s -m 30 -o "$T/gw-post.out" -w '%{http_code}' -H "X-DpopKit-Gateway-Key: wine-gateway-key-0123456789" \
         -H 'Content-Type: application/json' --data '{"name":"from wine"}' "$GW/api/api/items")
  [ "$code" = 201 ] || { cat "$T/gw-post.out"; fail "POST through the gateway: want 201, got $code"; }
  local before after
  before=$(peer_stat "$RS" requests)
  code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$GW/api/api/test")
  after=$(peer_stat "$RS" requests)
  [ "$code" = 401 ] || fail "without the caller key: want 401, got $code"
  [ "$before" = "$after" ] || fail "without the caller key a request went upstream ($before -> $after)"
  grep -q "dpopkit_gateway_requests" <(curl -s -m 30 "$GW/metrics") || fail "no metrics"
  code=$(curl -s -m 30 -o /dev/null -w '%{http_code}' "$GW/healthz")
  [ "$code" = 200 ] || fail "health: $code"
  # HTTPS with the generated certificate.
  local certs=$T/gw-certs
  rm -rf "$certs"
  (cd "$BIN" && wine_run dpopkit.exe serve --print-cert --cert-dir "$(winpath "$certs")") >"$T/gw.crt" 2>"$T/gw-print.err" \
    || { cat "$T/gw-print.err"; fail "dpopkit.exe serve --print-cert"; return 1; }
  grep -q "BEGIN CERTIFICATE" "$T/gw.crt" || fail "--print-cert printed no certificate"
  echo "certificate directory $(stat -c %a "$certs"), key $(stat -c %a "$certs/gateway-key.pem"), certificate $(stat -c %a "$certs/gateway-cert.pem")"
  [[ $(stat -c %a "$certs") == *0 ]] || fail "the certificate directory gives others access"
  [[ $(stat -c %a "$certs/gateway-key.pem") == *0 ]] || fail "the generated TLS key gives others access"
  gateway https --listen 127.0.0.1:0 --cert-dir "$(winpath "$certs")" "${route[@]}" || return 1
  [[ $GW == https://* ]] || fail "not https: $GW"
  out=$(curl -s -m 30 --cacert "$T/gw.crt" -H "X-DpopKit-Gateway-Key: wine-gateway-key-0123456789" "$GW/api/api/test") \
    || fail "GET through the gateway over https with the printed certificate"
  grep -qF '{"type":"client_id","value":"m2m.dpop"}' <<<"$out" || fail "https GET through the gateway: no client_id claim: $out"
  # A key file others may read: refused at start, naming the file.
  chmod 644 "$certs/gateway-key.pem"
  out=$(cd "$BIN" && GWKEY=wine-gateway-key-0123456789 DPOPKIT_CLIENT_SECRET=secret timeout 60 wine dpopkit.exe serve --listen 127.0.0.1:0 --cert-dir "$(winpath "$certs")" "${route[@]}" 2>&1) \
    && fail "started with a TLS key others may read"
  echo "$out"
  grep -q "gateway TLS key" <<<"$out" && grep -q "only by this user" <<<"$out" || fail "a key others may read is not refused with the reason"
}

# svc_state NAME: the service's STATE and WIN32_EXIT_CODE lines from `sc query`.
svc_state() { wine_run sc query "$1" 2>/dev/null | tr -d '\r' | grep -E 'STATE|WIN32_EXIT_CODE' | tr -s ' ' || true; }

# The gateway as a Windows service (--windows-service): created with sc.exe, started with
# `net start` (RUNNING once it listens), a GET through it to the validating RS, then `net
# stop` (STOPPED, exit code 0, the port closed, its log says it stopped), deleted; a service
# whose configuration is refused stops at once with exit code 1066 and says why in its
# --service-log. Its secrets come from files (caller_secret_file, client_secret_file): a
# service gets no environment from whoever starts it.
t_gateway_service() {
  start_peers --as-nonce --rs-nonce || return 1
  local dir=$T/gw-service name=dpopkit-gw-test port state out
  wine_run net stop $name >/dev/null 2>&1 || true
  wine_run sc delete $name >/dev/null 2>&1 || true
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'wine-service-caller-key-0123456789\n' >"$dir/caller.key"
  printf 'secret\n' >"$dir/client.secret"
  printf 'short\n' >"$dir/short.key"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$dir/gateway.toml" <<EOF
listen = "127.0.0.1:$port"
plain_http = true

[[route]]
prefix = "/api/"
upstream = "$RS/"
key = '$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")'
caller_secret_file = "caller.key"

[route.auth_token]
client_id = "m2m.dpop"
token_endpoint = "$TOKEN_URL"
scope = "api"
client_secret_file = "client.secret"
EOF
  sed 's/caller_secret_file = "caller.key"/caller_secret_file = "short.key"/' "$dir/gateway.toml" >"$dir/refused.toml"
  local exe log=$dir/service.log
  exe=$(winpath "$BIN/dpopkit.exe")
  wine_run sc create $name binPath= "$exe serve --config $(winpath "$dir/gateway.toml") --windows-service --service-log $(winpath "$log")" \
    || { fail "sc create"; return 1; }
  wine_run net start $name || fail "net start"
  state=$(svc_state $name)
  echo "after net start: $state"
  grep -q RUNNING <<<"$state" || fail "the service is not RUNNING: $state"
  out=$(curl -s -m 30 -H "X-DpopKit-Gateway-Key: wine-service-caller-key-0123456789" "http://127.0.0.1:$port/api/api/test") \
    || fail "GET through the service"
  echo "$out"
  grep -qF '{"type":"client_id","value":"m2m.dpop"}' <<<"$out" || fail "GET through the service: no client_id claim"
  wine_run net stop $name || fail "net stop"
  state=$(svc_state $name)
  echo "after net stop: $state"
  grep -q STOPPED <<<"$state" && grep -qE 'WIN32_EXIT_CODE : 0 ' <<<"$state" || fail "not STOPPED with exit code 0: $state"
  curl -s -m 5 -o /dev/null "http://127.0.0.1:$port/healthz" && fail "the port still answers after the stop"
  cat "$log"
  grep -q "listening on http://127.0.0.1:$port" "$log" || fail "the service log has no start line"
  grep -q "dpopkit serve: stopped" "$log" || fail "the service log does not say it stopped gracefully"
  grep -qF "wine-service-caller-key" "$log" && fail "the caller credential is in the service log"
  wine_run sc delete $name || fail "sc delete"
  # A refused configuration: STOPPED at once (no 30 s start timeout), exit code 1066, why in the log.
  local refused_log=$dir/refused.log started
  wine_run sc create $name binPath= "$exe serve --config $(winpath "$dir/refused.toml") --windows-service --service-log $(winpath "$refused_log")" \
    || { fail "sc create (refused)"; return 1; }
  started=$(date +%s)
  # (Wine's `net start` reports success for any start that leaves START_PENDING; the state says.)
  wine_run net start $name || true
  state=$(svc_state $name)
  echo "refused configuration, after $(( $(date +%s) - started )) s: $state"
  cat "$refused_log"
  grep -q STOPPED <<<"$state" && grep -q 1066 <<<"$state" || fail "a refused configuration: want STOPPED with 1066: $state"
  grep -q "at least 16" "$refused_log" || fail "the service log does not say why the configuration is refused"
  [ $(( $(date +%s) - started )) -lt 25 ] || fail "a refused configuration took the SCM's whole start timeout"
  wine_run sc delete $name || fail "sc delete (refused)"
}

# The zip: the documented layout, the Wine-only stand-in not in it, the files unchanged.
t_dist_zip_layout() {
  dist >/dev/null || { fail "windows.sh dist"; return 1; }
  local zip=$ROOT/target/dpopkit-$VERSION-windows-x64.zip n=dpopkit-$VERSION-windows-x64 listing f
  listing=$(unzip -Z1 "$zip")
  echo "$listing"
  for f in bin/dpopkit.dll bin/dpopkit.exe lib/dpopkit.lib lib/libdpopkit.dll.a lib/dpopkit.def include/dpopkit.h \
           bindings/sqlserver/DpopKit.cs bindings/sqlserver/NativeMethods.g.cs bindings/sqlserver/install.sql \
           include/dpopkit.idl bindings/sqlserver/oa_usage.sql bindings/sqlserver/ClrInstall.cs bindings/sqlserver/install-clr.cmd \
           README-windows.txt LICENSE.txt; do
    grep -qx "$n/$f" <<<"$listing" || fail "the zip has no $f"
  done
  ! grep -qi bcryptprimitives <<<"$listing" || fail "the Wine-only ProcessPrng stand-in is in the zip"
  cmp <(unzip -p "$zip" "$n/bin/dpopkit.dll") "$OUT/dpopkit.dll" || fail "the zip's dpopkit.dll is not the built one"
  cmp <(unzip -p "$zip" "$n/include/dpopkit.h") include/dpopkit.h || fail "the zip's header is not include/dpopkit.h"
  unzip -p "$zip" "$n/README-windows.txt" | grep -q "dpopkit $VERSION for Windows" || fail "README-windows.txt has no version"
}

# --- the COM server (src/com; tests/windows/com) ------------------------------------------

COM_PROGIDS=(DpopKit.PrivateKey DpopKit.JsonObject DpopKit.Http)
COM_LIBID='{68C7AC39-241B-4A57-91FE-6E753E7B4965}'

# The CLSID a ProgID is registered with (HKCR view), empty when none.
com_clsid() { wine_run reg query "HKCR\\$1\\CLSID" /ve 2>/dev/null | tr -d '\r' | grep -oE '\{[0-9A-Fa-f-]{36}\}' | head -n 1; }

com_dll() { winpath "$BIN/dpopkit.dll"; }

# vbs NAME.vbs ARGS...: a script of tests/windows/com under Wine's cscript. Wine's cscript
# exits 0 after a runtime error (and prints nothing), so the script must print its last
# line, "REACHED END", and no FAILED line.
vbs() {
  local script=$1 out
  shift
  out=$(cd "$BIN" && wine_run cscript //nologo "$(winpath "$ROOT/tests/windows/com/$script")" "$@" 2>&1 | tr -d '\r')
  local rc=$?
  echo "$out"
  [ $rc = 0 ] || fail "$script: cscript exited $rc"
  grep -q '^FAILED' <<<"$out" && fail "$script: a check failed"
  [ "$(tail -n 1 <<<"$out")" = "REACHED END" ] || fail "$script did not reach its end (a runtime error stops Wine's cscript silently)"
}

# com_client MODE ARGS...: tests/windows/com/client.c (CoCreateInstance + Invoke).
com_client() {
  local out
  out=$(cd "$BIN" && wine_run com_client.exe "$@" 2>&1 | tr -d '\r')
  local rc=$?
  echo "$out"
  [ $rc = 0 ] || fail "com_client $1: exit $rc"
  [ "$(tail -n 1 <<<"$out")" = "REACHED END" ] || fail "com_client $1 did not reach its end"
}

t_com_register() {
  # A warm-up run: the first cscript after wineboot may exit 1 without output (com.md).
  (cd "$BIN" && wine_run cscript //nologo //? >/dev/null 2>&1) || true
  (cd "$BIN" && wine_run regsvr32 /s "$(com_dll)") || { fail "regsvr32 exited $?"; return 1; }
  local p clsid q
  for p in "${COM_PROGIDS[@]}"; do
    clsid=$(com_clsid "$p")
    echo "$p -> $clsid"
    [ -n "$clsid" ] || { fail "$p is not registered"; continue; }
    [ "$(com_clsid "$p.1")" = "$clsid" ] || fail "$p.1 does not name $clsid"
    wine_run reg query "HKLM\\Software\\Classes\\$p\\CurVer" /ve | tr -d '\r' | grep -q "$p.1" || fail "$p\\CurVer is not $p.1"
    q=$(wine_run reg query "HKLM\\Software\\Classes\\CLSID\\$clsid" /s | tr -d '\r')
    echo "$q"
    grep -qE 'ThreadingModel +REG_SZ +Both' <<<"$q" || fail "$p: ThreadingModel is not Both"
    grep -qiF "$(com_dll)" <<<"$q" || fail "$p: InprocServer32 is not $(com_dll)"
    grep -qF "$COM_LIBID" <<<"$q" || fail "$p: no TypeLib"
    grep -qE "VersionIndependentProgID.*$p" <<<"$q" || grep -qF "$p" <<<"$q" || fail "$p: no VersionIndependentProgID"
  done
  q=$(wine_run reg query "HKLM\\Software\\Classes\\TypeLib\\$COM_LIBID" /s | tr -d '\r')
  echo "$q"
  grep -q 'win64' <<<"$q" || fail "the type library is not registered (win64)"
}

t_com_seed_vbscript() {
  start_peers --as-nonce --rs-nonce || return 1
  local log=$T/com-seed-session.log
  rm -f "$log"
  vbs seed.vbs "$(winpath "$ROOT/tests/fixtures/ec_pkcs8_enc.pem")" test-password "$TOKEN_URL" "$API" "$(winpath "$log")" 3
  local issued
  issued=$(peer_stat "$ISSUER" token_issued)
  stop_peers
  echo "tokens issued for 3 Http objects: $issued"
  [ "$issued" = 1 ] || fail "want one token for the 3 Http objects, the AS issued $issued"
  grep -q "GET /api/test HTTP/1.1" "$log" || fail "the session log has no request"
  ! grep -qE 'eyJ[A-Za-z0-9_-]+\.eyJ|=secret' "$log" || fail "a secret in the session log"
}

t_com_seed_c_client() {
  start_peers --as-nonce --rs-nonce || return 1
  com_client seed "$(winpath "$ROOT/tests/fixtures/ec_sec1.pem")" "$TOKEN_URL" "$API" 3
  local issued
  issued=$(peer_stat "$ISSUER" token_issued)
  stop_peers
  echo "tokens issued for 3 Http objects: $issued"
  [ "$issued" = 1 ] || fail "want one token for the 3 Http objects, the AS issued $issued"
}

t_com_early_bound() {
  start_peers --as-nonce --rs-nonce || return 1
  local out
  out=$(cd "$BIN" && wine_run com_early.exe "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")" "$TOKEN_URL" "$API" 2>&1 | tr -d '\r')
  local rc=$?
  stop_peers
  echo "$out"
  [ $rc = 0 ] && [ "$(tail -n 1 <<<"$out")" = "REACHED END" ] || fail "com_early.exe"
}

t_com_errors_vbscript() {
  start_peers || return 1
  local dead
  dead=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  vbs errors.vbs "$(winpath "$ROOT/tests/fixtures/no-such-key.pem")" "$(winpath "$ROOT/tests/fixtures/rsa1024.pem")" \
    "$(winpath "$ROOT/tests/fixtures/ec_sec1.pem")" "http://127.0.0.1:$dead/token" "$API"
  stop_peers
}

t_com_rest_vbscript() {
  start_peers --as-nonce --rs-nonce || return 1
  vbs rest.vbs "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")" "$TOKEN_URL" "$RS"
  stop_peers
}

t_com_invoke_contract_c_client() {
  com_client abi "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")"
  # The deliberate panic inside Invoke is caught without a word on stderr.
  ! grep -qi "panicked" "$LOGS/com_invoke_contract_c_client.log" || fail "a caught panic printed to stderr"
}

t_com_lifecycle_vbscript() { vbs lifecycle.vbs "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")"; }

t_com_leak_c_client() { com_client leak "$(winpath "$ROOT/tests/fixtures/ec_pkcs8.pem")"; }

# regsvr32 /n /i:user writes HKCU\Software\Classes (Wine 8 does not activate from there, so
# only the keys are checked); /u /n /i:user removes them.
t_com_per_user_install() {
  (cd "$BIN" && wine_run regsvr32 /s /n /i:user "$(com_dll)") || fail "regsvr32 /n /i:user exited $?"
  local p
  for p in "${COM_PROGIDS[@]}"; do
    wine_run reg query "HKCU\\Software\\Classes\\$p\\CLSID" /ve >/dev/null 2>&1 || fail "per user: $p is not in HKCU"
  done
  (cd "$BIN" && wine_run regsvr32 /s /u /n /i:user "$(com_dll)") || fail "regsvr32 /u /n /i:user exited $?"
  for p in "${COM_PROGIDS[@]}"; do
    ! wine_run reg query "HKCU\\Software\\Classes\\$p" >/dev/null 2>&1 || fail "per user: $p is still in HKCU after /u"
  done
  [ -n "$(com_clsid DpopKit.Http)" ] || fail "the per-user uninstall removed the per-machine registration"
}

t_com_unregister() {
  (cd "$BIN" && wine_run regsvr32 /s /u "$(com_dll)") || fail "regsvr32 /u exited $?"
  local p
  for p in "${COM_PROGIDS[@]}"; do
    for k in "$p" "$p.1"; do
      ! wine_run reg query "HKCR\\$k" >/dev/null 2>&1 || fail "$k is still registered after regsvr32 /u"
    done
  done
  ! wine_run reg query "HKLM\\Software\\Classes\\TypeLib\\$COM_LIBID" >/dev/null 2>&1 || fail "the type library is still registered"
  local out
  out=$(cd "$BIN" && wine_run cscript //nologo "$(winpath "$ROOT/tests/windows/com/unregistered.vbs")" 2>&1 | tr -d '\r')
  echo "$out"
  [ "$(tail -n 1 <<<"$out")" = "REACHED END" ] || fail "CreateObject still works after regsvr32 /u"
}

run_tests() {
  mkdir -p "$LOGS"
  build
  wine_setup
  build_test_programs
  command -v node >/dev/null || { echo "windows.sh: node (20+) is needed for the test peers" >&2; exit 1; }
  command -v wrestool >/dev/null || need_packages icoutils
  command -v curl >/dev/null || need_packages curl
  command -v zip >/dev/null && command -v unzip >/dev/null || need_packages zip unzip
  [ -d tests/peers/node_modules/oidc-provider ] || (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
  rm -rf "$T/pki"
  echo "== windows.sh test: under $(wine --version)"
  check dll_imports_only_system_dlls t_dll_imports_only_system_dlls
  check dll_exports_exactly_the_header t_dll_exports_exactly_the_header
  check version_resource_in_dll_and_exe t_version_resource
  check flow_no_nonces t_flow
  check flow_as_nonce t_flow --as-nonce
  check flow_rs_nonce t_flow --rs-nonce
  check flow_as_and_rs_nonce t_flow --as-nonce --rs-nonce
  check rest_surface_headers_post_status_text t_rest_surface
  check misuse_matrix t_misuse_matrix
  check https_with_ca_file t_tls_ca_file
  check os_trust_store_refuses_an_unknown_ca t_os_trust_store
  check cli_get t_cli_get
  check cli_get_https_ca_file t_cli_get_https_ca_file
  check deadline_hanging_server t_deadline_hanging_server
  check non_ascii_paths t_non_ascii_paths
  check session_log_refusals t_session_log_refusals
  check fleet_token_cache t_fleet_token_cache
  check gateway_plain_and_https t_gateway
  check gateway_as_a_windows_service t_gateway_service
  check dist_zip_layout t_dist_zip_layout
  check com_register_three_progids_threading_both t_com_register
  check com_seed_vbscript_strict_nonces_one_token t_com_seed_vbscript
  check com_seed_c_client_cocreateinstance_invoke t_com_seed_c_client
  check com_early_bound_through_the_type_library t_com_early_bound
  check com_error_paths_vbscript t_com_errors_vbscript
  check com_rest_surface_vbscript t_com_rest_vbscript
  check com_invoke_contract_c_client t_com_invoke_contract_c_client
  check com_1000_objects_vbscript t_com_lifecycle_vbscript
  check com_no_leak_c_client t_com_leak_c_client
  check com_per_user_install t_com_per_user_install
  check com_unregister_removes_progids t_com_unregister
  echo "== windows.sh test: $PASSED passed, $FAILED failed${FAILED_NAMES[*]:+ (${FAILED_NAMES[*]})}"
  [ "$FAILED" = 0 ]
}

case "${1:-}" in
  build) build ;;
  test) shift; ONLY=("$@"); run_tests ;;
  # Only the COM server's tests (they are part of `test` too).
  com) ONLY=($(sed -n 's/^  check \(com_[a-z0-9_]*\) .*/\1/p' "$ROOT/scripts/windows.sh")); run_tests ;;
  dist) dist ;;
  *) echo "usage: bash scripts/windows.sh build|test|com|dist" >&2; exit 2 ;;
esac
