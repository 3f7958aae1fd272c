#!/bin/sh
# Merge a fuzzing campaign's inputs into the committed corpus that `make check` replays.
# Usage: scripts/fuzz_merge.sh BUILD TARGET DIR...
#   BUILD   a fuzz build (make fuzz-build: build-fuzz)
#   TARGET  e.g. fuzz_onnx
#   DIR...  campaign directories (make fuzz's build-fuzz/corpus/TARGET, or any libFuzzer corpus)
# Keeps only the inputs that reach code (coverage features) the committed ones do not
# (libFuzzer -merge=1), at most MAX_BYTES each (default 16384: the corpus is replayed by every
# `make check` and lives in git), and names them cov-<first 16 hex digits of their SHA-256>.
set -eu
if [ $# -lt 3 ]; then
    echo "usage: scripts/fuzz_merge.sh BUILD TARGET DIR..." >&2
    exit 2
fi
build=$1
target=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
f="$build/fuzz/$target"
[ -x "$f" ] || { echo "fuzz_merge: no $f (make fuzz-build)" >&2; exit 1; }
corpus="$top/fuzz/corpus/$target"
max=${MAX_BYTES:-16384}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/out" "$tmp/in" "$corpus"
cp "$corpus"/* "$tmp/out/" 2>/dev/null || true
before=$(ls "$tmp/out" | wc -l)
for d in "$@"; do
    find "$d" -maxdepth 1 -type f -size -"$((max + 1))"c -exec cp {} "$tmp/in/" \;
done
UBSAN_OPTIONS=halt_on_error=1 "$f" -merge=1 -rss_limit_mb=4096 -timeout=60 "$tmp/out" "$tmp/in" \
    >"$tmp/merge.log" 2>&1 || { tail -n 20 "$tmp/merge.log"; exit 1; }
added=0
for x in "$tmp/out"/*; do
    b=$(basename "$x")
    [ -e "$corpus/$b" ] && continue
    h=$(sha256sum "$x" | cut -c1-16)
    cp "$x" "$corpus/cov-$h"
    added=$((added + 1))
done
echo "fuzz_merge: $target: $before committed inputs, $added added from $(ls "$tmp/in" | wc -l) candidates"
