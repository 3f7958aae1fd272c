#!/bin/sh
# Install the Debian packages Tessera needs, only when they are missing.
# Idempotent: a second run installs nothing and exits 0.
# As root it runs apt-get; otherwise it prints the exact command and exits 1.
# Why each package is here: docs/DEPENDENCIES.md.
# `deps.sh lab` also installs what the detector robustness lab's corpus and
# functionality check need (docs/MALWARE.md; heavy: wine64 is ~700 MB), which
# `make check` does not.
# `deps.sh experiments` also installs Debian's PyTorch (python3-torch, ~300 MB
# with its libraries) for the experiment and fixture scripts run with
# /usr/bin/python3: scripts/prune_experiments.py, scripts/make_torch_fixtures.py
# (and `make torch-eval`), scripts/make_lenet_teacher.py. `make demo` and
# `make check` never need it. Both words may be given; -h or --help prints the
# usage and exits 0.
set -eu

PKGS="build-essential cmake pkg-config git
libsodium-dev libopenblas-dev libprotobuf-c-dev protobuf-c-compiler
libonnx-dev libonnx-testdata libcmocka-dev zlib1g-dev
libmicrohttpd-dev libcurl4-gnutls-dev
python3-cffi python3-numpy python3-pytest python3-setuptools python3-wheel python3-pip python3-venv python3-onnx
libopenmpi-dev openmpi-bin openssl
clang libclang-rt-14-dev clang-format
dataset-fashion-mnist
nsis libz-mingw-w64 python3-pefile"
usage="usage: deps.sh [lab] [experiments]  (install the Debian packages Tessera needs)"
for extra in "$@"; do
    case "$extra" in
    lab) PKGS="$PKGS gcc-mingw-w64-x86-64 wine64" ;;
    experiments) PKGS="$PKGS python3-torch" ;;
    -h | --help)
        echo "$usage"
        exit 0
        ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
    esac
done

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps.sh: missing Debian packages:$missing" >&2
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: not root; run this and try again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Only refresh the package lists when an install from the current lists fails.
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
