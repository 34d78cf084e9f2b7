#!/bin/sh
# Builds and installs the dpopkit C library the way a system library is laid out (the
# layout of cargo-c's `cargo cinstall`):
#
#   LIBDIR/libdpopkit.so.0.1.0             the shared library, SONAME libdpopkit.so.0.1
#   LIBDIR/libdpopkit.so.0.1 -> libdpopkit.so.0.1.0   (what programs load)
#   LIBDIR/libdpopkit.so -> libdpopkit.so.0.1         (what -ldpopkit links)
#   LIBDIR/libdpopkit.a                    the static library
#   LIBDIR/pkgconfig/dpopkit.pc            Libs.private = what the static library needs
#   INCLUDEDIR/dpopkit.h, dpopkit.hpp      the C header and the header-only C++17 binding
#
# usage: bindings/c/install.sh [--prefix] PREFIX [OPTIONS]
#        bindings/c/install.sh --build-only [--profile NAME]
#
#   --libdir DIR         default PREFIX/lib
#   --includedir DIR     default PREFIX/include
#   --library-type T     shared, static or both (default both). With static only, plain
#                        `pkg-config --static --libs dpopkit` links libdpopkit.a.
#   --profile NAME       cargo profile to build and install (default release)
#   --debug-info         build the release-with-debug profile and install the libraries
#                        stripped, with the debug info in LIBDIR/.debug/libdpopkit.so.X.Y.Z.debug
#                        (found by gdb through the .gnu_debuglink); the .a keeps its debug info
#   --build-only         build (and record the static link line) without installing
#   DESTDIR=/stage       environment: stage the files under DESTDIR, as `make install` does
#                        (the .pc file still names PREFIX)
#   CARGO_TARGET_DIR     honoured as cargo does
#
# The build is `cargo rustc --profile NAME --lib -- --print native-static-libs=FILE`, one
# build that also writes what the static library needs from the system into
# TARGET/NAME/dpopkit-native-static-libs.txt (Libs.private). bindings/python/setup.py runs
# the same command, so the two share one build.
set -eu

usage() {
    echo "usage: $0 [--prefix] PREFIX [--libdir DIR] [--includedir DIR] [--library-type shared|static|both]" >&2
    echo "       [--profile NAME] [--debug-info]   or: $0 --build-only [--profile NAME]" >&2
    exit 2
}

prefix=""
libdir=""
includedir=""
libtype=both
profile=release
debug_info=0
build_only=0
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --libdir) [ $# -ge 2 ] || usage; libdir=$2; shift 2 ;;
        --libdir=*) libdir=${1#*=}; shift ;;
        --includedir) [ $# -ge 2 ] || usage; includedir=$2; shift 2 ;;
        --includedir=*) includedir=${1#*=}; shift ;;
        --library-type) [ $# -ge 2 ] || usage; libtype=$2; shift 2 ;;
        --library-type=*) libtype=${1#*=}; shift ;;
        --profile) [ $# -ge 2 ] || usage; profile=$2; shift 2 ;;
        --profile=*) profile=${1#*=}; shift ;;
        --debug-info) debug_info=1; shift ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        -*) echo "install.sh: unknown option $1" >&2; usage ;;
        *) [ -z "$prefix" ] || usage; prefix=$1; shift ;;
    esac
done
case $libtype in shared|static|both) ;; *) echo "install.sh: --library-type is shared, static or both" >&2; exit 2 ;; esac
if [ $build_only = 0 ] && [ -z "$prefix" ]; then usage; fi
if [ $debug_info = 1 ]; then profile=release-with-debug; fi

abspath() { case $1 in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$(pwd)" "$1" ;; esac; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
target=$(abspath "$target")
case $profile in dev|test) outdir=$target/debug ;; bench) outdir=$target/release ;; *) outdir=$target/$profile ;; esac
libs_file=$outdir/dpopkit-native-static-libs.txt

# Run from inside cargo (a test), the environment carries the variables cargo sets for one
# crate; some build scripts watch them (ring: CARGO_MANIFEST_DIR, OUT_DIR), so the build
# would differ from a plain one and rebuild half the tree. They mean nothing to a new cargo.
for v in $(env | sed -n 's/^\(CARGO_MANIFEST_[A-Z_]*\)=.*/\1/p; s/^\(CARGO_PKG_[A-Z_]*\)=.*/\1/p;
                        s/^\(CARGO_BIN_EXE_[A-Za-z0-9_]*\)=.*/\1/p; s/^\(OUT_DIR\)=.*/\1/p;
                        s/^\(CARGO_CRATE_NAME\|CARGO_BIN_NAME\|CARGO_PRIMARY_PACKAGE\|CARGO_TARGET_TMPDIR\)=.*/\1/p'); do
    unset "$v"
done

build() {
    # Cargo runs rustc only when something changed, and a fresh build prints nothing: the
    # file written by the last real build stays. If it is missing (target/ built by another
    # command), a second spelling of the flag forces the one rebuild that writes it.
    (cd "$repo" && cargo rustc --profile "$profile" --lib -- --print "native-static-libs=$libs_file")
    if [ ! -s "$libs_file" ]; then
        (cd "$repo" && cargo rustc --profile "$profile" --lib -- --print "native-static-libs=$libs_file.new") &&
            mv "$libs_file.new" "$libs_file"
    fi
}
build
if [ ! -s "$libs_file" ]; then
    echo "install.sh: rustc did not write $libs_file" >&2
    exit 1
fi
if [ $build_only = 1 ]; then
    echo "built target/$profile (static link line: $(cat "$libs_file"))"
    exit 0
fi

version=$(sed -n 's/^#define DPOPKIT_VERSION "\(.*\)"$/\1/p' "$repo/include/dpopkit.h")
major=$(sed -n 's/^#define DPOPKIT_VERSION_MAJOR \([0-9]*\)$/\1/p' "$repo/include/dpopkit.h")
minor=$(sed -n 's/^#define DPOPKIT_VERSION_MINOR \([0-9]*\)$/\1/p' "$repo/include/dpopkit.h")
if [ -z "$version" ] || [ -z "$major" ] || [ -z "$minor" ]; then
    echo "install.sh: no DPOPKIT_VERSION* macros in include/dpopkit.h" >&2
    exit 1
fi
if [ "$major" = 0 ]; then soname=libdpopkit.so.$major.$minor; else soname=libdpopkit.so.$major; fi

prefix=$(abspath "$prefix")
libdir=$(abspath "${libdir:-$prefix/lib}")
includedir=$(abspath "${includedir:-$prefix/include}")
dest=${DESTDIR:-}

case $(uname -s) in
    Darwin) shared=libdpopkit.dylib; elf=0 ;;
    *) shared=libdpopkit.so; elf=1 ;;
esac
for f in $shared libdpopkit.a; do
    if [ ! -f "$outdir/$f" ]; then
        echo "install.sh: $outdir/$f was not built" >&2
        exit 1
    fi
done
if [ $elf = 1 ] && command -v readelf >/dev/null 2>&1; then
    built=$(readelf -d "$outdir/$shared" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
    if [ "$built" != "$soname" ]; then
        echo "install.sh: $outdir/$shared has SONAME '$built', expected $soname (see build.rs)" >&2
        exit 1
    fi
fi

mkdir -p "$dest$includedir" "$dest$libdir/pkgconfig"
install -m 0644 "$repo/include/dpopkit.h" "$dest$includedir/dpopkit.h"
install -m 0644 "$repo/bindings/cpp/dpopkit.hpp" "$dest$includedir/dpopkit.hpp"

# Debug info of the release build lives in no installed library: the release profile
# strips the .so; the .a gets std's debug info from the toolchain, stripped here.
strip_debug() { # FILE
    if command -v strip >/dev/null 2>&1; then strip --strip-debug "$1"; else echo "install.sh: no strip: $1 keeps its debug info" >&2; fi
}

if [ $libtype != static ]; then
    if [ $elf = 1 ]; then
        real=libdpopkit.so.$version
        rm -f "$dest$libdir/$shared" "$dest$libdir/$soname" "$dest$libdir/$real"
        install -m 0755 "$outdir/$shared" "$dest$libdir/$real"
        if [ $debug_info = 1 ]; then
            mkdir -p "$dest$libdir/.debug"
            objcopy --only-keep-debug "$dest$libdir/$real" "$dest$libdir/.debug/$real.debug"
            chmod 0644 "$dest$libdir/.debug/$real.debug"
            objcopy --strip-debug --add-gnu-debuglink="$dest$libdir/.debug/$real.debug" "$dest$libdir/$real"
        fi
        ln -s "$real" "$dest$libdir/$soname"
        [ "$soname" = "$shared" ] || ln -s "$soname" "$dest$libdir/$shared"
    else
        install -m 0755 "$outdir/$shared" "$dest$libdir/$shared"
    fi
fi
if [ $libtype != shared ]; then
    install -m 0644 "$outdir/libdpopkit.a" "$dest$libdir/libdpopkit.a"
    [ $debug_info = 1 ] || [ "$profile" = dev ] || strip_debug "$dest$libdir/libdpopkit.a"
fi

# '|' as the sed delimiter: these are paths. Escape the characters sed treats specially.
esc() { printf '%s' "$1" | sed 's/[\\|&]/\\&/g'; }
sed -e "s|@PREFIX@|$(esc "$prefix")|g" -e "s|@LIBDIR@|$(esc "$libdir")|g" \
    -e "s|@INCLUDEDIR@|$(esc "$includedir")|g" -e "s|@VERSION@|$version|g" \
    -e "s|@LIBS_PRIVATE@|$(esc "$(cat "$libs_file")")|g" \
    "$repo/bindings/c/dpopkit.pc.in" > "$dest$libdir/pkgconfig/dpopkit.pc"
chmod 0644 "$dest$libdir/pkgconfig/dpopkit.pc"

echo "installed dpopkit $version ($libtype, profile $profile) into $dest$prefix"
echo "  compile: PKG_CONFIG_PATH=$libdir/pkgconfig cc app.c \$(pkg-config --cflags --libs dpopkit)"
echo "  run:     ldconfig, or link with -Wl,-rpath,$libdir, or LD_LIBRARY_PATH=$libdir"
