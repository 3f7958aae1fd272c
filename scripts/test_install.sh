#!/bin/sh
# The ctest install_example: install the build into a temporary prefix, build
# examples/ckks_add.c against it with pkg-config (shared, and static with
# `pkg-config --static` from a copy of the prefix without libtessera.so) and with
# find_package(Tessera), run them and `tessera --version` from the prefix.
# Usage: test_install.sh BUILD SOURCE
set -eu
build=$1
src=$2
# The prefix goes through pkg-config's output, split by the shell: a TMPDIR with white space
# (or a quote) in its name cannot carry it, so this test then uses /tmp.
base=${TMPDIR:-/tmp}
case "$base" in *[[:space:]\'\"]*) base=/tmp ;; esac
tmp=$(mktemp -d "$base/tessera-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
lib=$(ls -d "$tmp"/prefix/lib*/ | head -n 1)
test -e "$lib/libtessera.so.0" || { echo "no versioned soname in $lib"; ls -l "$lib"; exit 1; }
test -f "$tmp/prefix/share/man/man1/tessera.1"
LD_LIBRARY_PATH="$lib" "$tmp/prefix/bin/tessera" --version
# pkg-config
PKG_CONFIG_PATH="$lib/pkgconfig" cc -std=c11 -Wall -Werror "$src/examples/ckks_add.c" \
    $(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs tessera) -lm -o "$tmp/ex_pc"
LD_LIBRARY_PATH="$lib" "$tmp/ex_pc"
# pkg-config --static: libtessera.a plus its Libs.private (dependencies, libm, threads, OpenMP
# when built with it), in a copy of the prefix that has no shared library to fall back on
test -f "$lib/libtessera.a" || { echo "no libtessera.a in $lib"; ls -l "$lib"; exit 1; }
# Libs.private bakes in none of the build machine's library directories: no -L dir the linker
# searches anyway, and none holding a library it would find by itself (Debian's
# openblas-pthread/ behind the libopenblas.so alternatives symlink)
private=$(sed -n 's/^Libs.private://p' "$lib/pkgconfig/tessera.pc")
search=$(cc -print-search-dirs | sed -n 's/^libraries: =//p' | tr ':' '\n' |
    while read -r s; do realpath -m "$s"; done)
for dir in $private; do
    case "$dir" in -L*) ;; *) continue ;; esac
    d=$(realpath -m "${dir#-L}")
    if echo "$search" | grep -qx "$d"; then
        echo "tessera.pc Libs.private: $dir is on the linker's own search path"
        exit 1
    fi
    for l in $private; do
        case "$l" in -l*) ;; *) continue ;; esac
        n=${l#-l}
        if [ -e "$d/lib$n.so" ] || [ -e "$d/lib$n.a" ]; then
            f=$(cc -print-file-name="lib$n.so")
            if [ "$f" != "lib$n.so" ]; then
                echo "tessera.pc Libs.private: $dir pins lib$n, which the linker finds as $f"
                exit 1
            fi
        fi
    done
done
cp -a "$tmp/prefix" "$tmp/static"
slib=$(ls -d "$tmp"/static/lib*/ | head -n 1)
rm -f "$slib"/libtessera.so*
cc -std=c11 -Wall -Werror "$src/examples/ckks_add.c" \
    $(PKG_CONFIG_PATH="$slib/pkgconfig" pkg-config --static --cflags --libs tessera) \
    -o "$tmp/ex_static"
if readelf -d "$tmp/ex_static" | grep -q 'NEEDED.*libtessera'; then
    echo "ex_static needs libtessera.so: not linked statically"
    exit 1
fi
"$tmp/ex_static"
# CMake package
cmake -S "$src/examples" -B "$tmp/ex_cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cmake.log"
cmake --build "$tmp/ex_cmake" >>"$tmp/cmake.log"
LD_LIBRARY_PATH="$lib" "$tmp/ex_cmake/ckks_add"
echo "install_example: ok"
