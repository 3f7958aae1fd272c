#!/bin/sh
# Behavioural half of the functionality check of the detector robustness lab
# (docs/MALWARE.md): run every attacked installer and its original silently
# under Debian's wine64 and compare the files they extract, byte for byte.
#
# Usage: scripts/wine_check.sh CORPUS_FILES_DIR ATTACKED_DIR [OUT_CSV]
#   ATTACKED_DIR holds attacked copies named like the originals (written by
#   `tessera attack payload --save`, OUT/attacked/<place>/); only installers
#   (inst*.exe) are run. OUT_CSV (default ATTACKED_DIR/wine.csv):
#   file,original_rc,attacked_rc,files,identical.
# Needs: sh scripts/deps.sh lab (wine64). Uses a private WINEPREFIX under
# $TMPDIR; no display is needed (the installers are silent: /S).
set -eu
orig=$1
att=$2
csv=${3:-$att/wine.csv}
# Debian's wine64 package installs the loader here (the `wine` package adds /usr/bin wrappers).
WINE=${WINE:-/usr/lib/wine/wine64}
[ -x "$WINE" ] || { echo "wine_check: $WINE missing: sh scripts/deps.sh lab" >&2; exit 1; }
# its server: wine64's wineserver64 beside the loader, or a wineserver (the `wine` package)
if [ -z "${WINESERVER:-}" ]; then
    for w in "$(dirname "$WINE")/wineserver64" "$(dirname "$WINE")/wineserver" \
        "$(command -v wineserver || true)"; do
        if [ -n "$w" ] && [ -x "$w" ]; then
            WINESERVER=$w
            break
        fi
    done
fi
WINESERVER=${WINESERVER:-}
work=$(mktemp -d)
# The prefix's wineserver can still be writing into it when the script ends (rm then fails
# with "Directory not empty" and leaves $work/prefix behind): stop it and wait for it first.
# Only the private prefix's server, named explicitly: an exit before the export below must not
# stop the user's own (default ~/.wine or their WINEPREFIX) wineserver.
cleanup() {
    if [ -n "$WINESERVER" ] && [ -d "$work/prefix" ]; then
        WINEPREFIX="$work/prefix" "$WINESERVER" -k >/dev/null 2>&1 || true
        WINEPREFIX="$work/prefix" "$WINESERVER" -w >/dev/null 2>&1 || true
    fi
    rm -rf "$work" 2>/dev/null || { sleep 2; rm -rf "$work"; }
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export WINEPREFIX="$work/prefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
"$WINE" wineboot -i >/dev/null 2>&1 || true

# run EXE DIR: run the installer silently into DIR (a Z: path), print its exit code
run() {
    rm -rf "$2"
    mkdir -p "$2"
    rc=0
    timeout 120 "$WINE" "$1" /S "/D=Z:$(echo "$2" | tr / '\\')" >/dev/null 2>&1 || rc=$?
    echo "$rc"
}

echo "file,original_rc,attacked_rc,files,identical" >"$csv"
n=0
ok=0
for a in "$att"/inst*.exe; do
    [ -f "$a" ] || continue
    name=$(basename "$a")
    rc0=$(run "$orig/$name" "$work/o")
    rc1=$(run "$a" "$work/a")
    nfiles=$(find "$work/o" -type f | wc -l)
    same=0
    if [ "$nfiles" -gt 0 ] && diff -r "$work/o" "$work/a" >/dev/null 2>&1; then same=1; fi
    echo "$name,$rc0,$rc1,$nfiles,$same" >>"$csv"
    n=$((n + 1))
    ok=$((ok + same))
done
echo "wine_check: $ok of $n attacked installers extract byte-identical files ($csv)"
