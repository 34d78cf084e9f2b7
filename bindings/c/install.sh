#!/bin/sh
# Installs the dpopkit C library: dpopkit.h (and the C++ dpopkit.hpp), the shared and
# static library, and a pkg-config file.
#
#   bindings/c/install.sh PREFIX          # e.g. /usr/local, $HOME/.local, /opt/dpopkit
#
# Builds with `cargo build --release` first. Environment:
#   DPOPKIT_PROFILE=debug   build and install the debug profile instead of release
#   DPOPKIT_LIB_DIR=DIR     install libdpopkit.so/.a from DIR and do not run cargo at all
#                           (e.g. target/debug/deps, where `cargo test` leaves them)
#   CARGO_TARGET_DIR        honoured as cargo does
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi
prefix=$1
case $prefix in
    /*) ;;
    *) prefix=$(pwd)/$prefix ;;
esac

repo=$(cd "$(dirname "$0")/../.." && pwd)
profile=${DPOPKIT_PROFILE:-release}

if [ -n "${DPOPKIT_LIB_DIR:-}" ]; then
    libsrc=$DPOPKIT_LIB_DIR
else
    case $profile in
        release) (cd "$repo" && cargo build --release --lib) ;;
        debug) (cd "$repo" && cargo build --lib) ;;
        *) (cd "$repo" && cargo build --profile "$profile" --lib) ;;
    esac
    libsrc=${CARGO_TARGET_DIR:-$repo/target}/$profile
fi

for f in libdpopkit.so libdpopkit.a; do
    if [ ! -f "$libsrc/$f" ]; then
        echo "install.sh: $libsrc/$f not found (build the library first)" >&2
        exit 1
    fi
done

version=$(sed -n 's/^#define DPOPKIT_VERSION "\(.*\)"$/\1/p' "$repo/include/dpopkit.h")
if [ -z "$version" ]; then
    echo "install.sh: no DPOPKIT_VERSION in include/dpopkit.h" >&2
    exit 1
fi

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0644 "$repo/include/dpopkit.h" "$prefix/include/dpopkit.h"
# The header-only C++17 binding, so `#include <dpopkit.hpp>` works with the same flags.
install -m 0644 "$repo/bindings/cpp/dpopkit.hpp" "$prefix/include/dpopkit.hpp"
install -m 0755 "$libsrc/libdpopkit.so" "$prefix/lib/libdpopkit.so"
install -m 0644 "$libsrc/libdpopkit.a" "$prefix/lib/libdpopkit.a"
# '|' as the sed delimiter: PREFIX is a path. Escape the characters sed treats specially.
escaped=$(printf '%s' "$prefix" | sed 's/[\\|&]/\\&/g')
sed -e "s|@PREFIX@|$escaped|g" -e "s|@VERSION@|$version|g" \
    "$repo/bindings/c/dpopkit.pc.in" > "$prefix/lib/pkgconfig/dpopkit.pc"
chmod 0644 "$prefix/lib/pkgconfig/dpopkit.pc"

echo "installed dpopkit $version into $prefix"
echo "  compile: PKG_CONFIG_PATH=$prefix/lib/pkgconfig cc app.c \$(pkg-config --cflags --libs dpopkit)"
echo "  run:     add -Wl,-rpath,$prefix/lib, or LD_LIBRARY_PATH=$prefix/lib, or ldconfig"
