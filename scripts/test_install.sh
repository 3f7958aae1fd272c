#!/bin/sh
# The ctest install_example: install the build into a temporary prefix, build
# examples/ckks_add.c against it with pkg-config and with find_package(Tessera),
# run both and `tessera --version` from the prefix. Usage: test_install.sh BUILD SOURCE
set -eu
build=$1
src=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-install-XXXXXX")
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
# CMake package
cmake -S "$src/examples" -B "$tmp/ex_cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >"$tmp/cmake.log"
cmake --build "$tmp/ex_cmake" >>"$tmp/cmake.log"
LD_LIBRARY_PATH="$lib" "$tmp/ex_cmake/ckks_add"
echo "install_example: ok"
