#!/bin/sh
# `make deb`: build the Debian packages libtessera0, libtessera-dev and tessera with
# `dpkg-buildpackage -us -uc -b` from a clean copy of the committed tree (git archive
# HEAD, so nothing uncommitted or built leaks in); the .deb files land in build-deb/
# with a listing of each. Needs debhelper and dpkg-dev (installed here when root).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
for p in debhelper dpkg-dev; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "deb.sh: install $p first (sudo apt-get install -y $p)" >&2
            exit 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $p >/dev/null
    fi
done
work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-deb-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/tessera-0.1.0"
git -C "$top" archive HEAD | tar -x -C "$work/tessera-0.1.0"
(cd "$work/tessera-0.1.0" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log"
    echo "deb.sh: dpkg-buildpackage failed" >&2
    exit 1
}
mkdir -p "$top/build-deb"
rm -f "$top"/build-deb/*.deb
cp "$work"/*.deb "$top/build-deb/"
for d in "$top"/build-deb/*.deb; do
    echo "== $(basename "$d") ($(du -k "$d" | cut -f1) KiB)"
    dpkg-deb -c "$d" | awk '{print "   " $6}' | grep -v '/$'
done
