#!/bin/sh
# Make the stand-in corpus of the detector robustness lab (docs/MALWARE.md):
#   flagged: Windows installers (NSIS "droppers") built by Debian's makensis
#            from harmless payload files under /usr/share;
#   clean:   PE32+ DLLs/EXEs of Debian's libwine and small programs built by
#            x86_64-w64-mingw32-gcc from C sources generated here.
# All PE32+ (x86-64), so the machine field cannot give the class away.
#
# Usage: scripts/make_pe_corpus.sh [OUT_DIR]   (default build/malware-lab/corpus)
# Environment: NINST (installers, default 300), NPROG (mingw programs, 150),
#              NWINE (libwine files wanted, 300: each is kept with probability
#              NWINE / their count, so about that many), MAXBYTES (largest file kept, 1 MiB),
#              SEED (default 1), JOBS (makensis / gcc run in parallel, default 2).
# Needs: sh scripts/deps.sh lab (nsis, gcc-mingw-w64-x86-64, wine64).
#
# Reproducible: every choice comes from a hash of (SEED, item, field) computed
# in awk (rnd below); the same Debian packages give byte-identical files (and
# manifest), whatever JOBS is (the mingw programs are linked without a
# timestamp, by relative names and with the temporary directory mapped out of
# their debug info). Split by source: an installer's source is the /usr/share/<dir>/<subdir>
# its payload comes from, a wine file's its name stem without trailing digits
# (msvcr70 and msvcr71 are one source), a mingw program's its generated source;
# each source goes wholly to train (70 %) or test (30 %) by the hash of its
# name, and files with equal SHA-256 are kept once (the first in the order
# installers, wine, programs). Output: OUT/files/* and OUT/manifest.csv
# (file,label,split,source,bytes,sha256; label 1 = flagged).
#
# Speed: all the choices, .nsi scripts and C sources are made by one awk
# process each, hashes and sizes by one sha256sum / stat over all files; what
# is left is makensis and gcc themselves (JOBS at a time). The old version
# forked printf | cksum | cut for every choice (about 40,000 times at the
# default size, ~80 % of its run time) and sha256sum / grep per file.
set -eu
out=${1:-build/malware-lab/corpus}
NINST=${NINST:-300}
NPROG=${NPROG:-150}
NWINE=${NWINE:-300}
MAXBYTES=${MAXBYTES:-1048576}
SEED=${SEED:-1}
JOBS=${JOBS:-2}
WINEDIR=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows
export LC_ALL=C

for tool in makensis x86_64-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "make_pe_corpus: $tool missing: run sh scripts/deps.sh lab" >&2; exit 1; }
done
[ -d "$WINEDIR" ] || { echo "make_pe_corpus: $WINEDIR missing: run sh scripts/deps.sh lab" >&2; exit 1; }
for v in NINST NPROG NWINE MAXBYTES SEED JOBS; do
    eval "val=\$$v"
    case $val in '' | *[!0-9]*) echo "make_pe_corpus: $v must be a whole number (got '$val')" >&2; exit 1 ;; esac
done
[ "$JOBS" -ge 1 ] || JOBS=1

tmp=$(mktemp -d)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out/files" "$tmp/inst" "$tmp/prog"
t0=$(date +%s)
phase() { echo "make_pe_corpus: $1 ($(($(date +%s) - t0)) s)" >&2; }

# The deterministic hash shared by every awk program below: rnd(item, field, mod)
# is a number in [0, mod) from a polynomial hash of "SEED:item:field" modulo the
# prime 2^31 - 1, mixed by three Lehmer steps (all products stay below 2^53,
# exact in awk's doubles).
RND='
function rnd_init(   i) { for (i = 1; i < 256; i++) ORD[sprintf("%c", i)] = i }
function rnd(item, field, mod,   s, h, i, n) {
    s = SEED ":" item ":" field
    h = 0
    n = length(s)
    for (i = 1; i <= n; i++) h = (h * 257 + ORD[substr(s, i, 1)] + 1) % 2147483647
    for (i = 0; i < 3; i++) h = (h * 48271 + 11) % 2147483647
    return h % mod
}'

# ---- flagged: NSIS installers ------------------------------------------------
find /usr/share -xdev -type f -size +1k -size -900k -readable 2>/dev/null |
    grep -v -e '[ ,"$;`\\]' -e "'" | sort >"$tmp/pool"
npool=$(wc -l <"$tmp/pool")
[ "$npool" -ge 100 ] || { echo "make_pe_corpus: too few payload files under /usr/share" >&2; exit 1; }
# One awk: every installer's payload group (the first file's directory, cut at
# /usr/share/<dir>/<subdir>), 1..6 files of it and the settings; writes
# inst/i<N>.nsi, the source of each to inst/sources and one makensis command
# per line to inst/jobs.
awk -v SEED="$SEED" -v NINST="$NINST" -v T="$tmp/inst" "$RND"'
function lower(g,   lo, hi, mid) { # first pool line >= g (the pool is sorted)
    lo = 1; hi = np + 1
    while (lo < hi) { mid = int((lo + hi) / 2); if (pool[mid] < g) lo = mid + 1; else hi = mid }
    return lo
}
{ pool[++np] = $0 }
END {
    rnd_init()
    split("zlib bzip2 lzma", comps, " ")
    for (i = 0; i < NINST; i++) {
        it = "inst" i
        first = pool[rnd(it, "first", np) + 1]
        n = split(first, p, "/")
        d = n - 1; if (d > 5) d = 5
        group = p[1]; for (j = 2; j <= d; j++) group = group "/" p[j]
        ng = 0
        for (j = lower(group "/"); j <= np && index(pool[j], group "/") == 1; j++) grp[++ng] = pool[j]
        k = rnd(it, "k", 6) + 1
        f = T "/i" i ".nsi"
        print "Unicode true" > f
        print "Target amd64-unicode" > f
        print "SetCompressor " (rnd(it, "solid", 2) == 1 ? "/SOLID " : "") comps[rnd(it, "comp", 3) + 1] > f
        if (rnd(it, "crc", 4) == 0) print "CRCCheck off" > f
        print "Name \"Setup " i "\"" > f
        print "OutFile \"" T "/inst" i ".exe\"" > f
        print "RequestExecutionLevel user" > f
        print "SilentInstall silent" > f
        print "InstallDir \"$TEMP\\tsr" i "\"" > f
        if (rnd(it, "vi", 2) == 1) {
            print "VIProductVersion \"1." rnd(it, "v1", 9) "." rnd(it, "v2", 99) ".0\"" > f
            print "VIAddVersionKey \"ProductName\" \"Setup " i "\"" > f
            print "VIAddVersionKey \"FileVersion\" \"1.0\"" > f
        }
        print "Section" > f
        print "SetOutPath $INSTDIR" > f
        for (j = 0; j < k; j++) {
            src = grp[rnd(it, "f" j, ng) + 1]
            b = src; sub(/.*\//, "", b); gsub(/[^A-Za-z0-9.]/, "_", b)
            print "File \"/oname=f" j "." b "\" \"" src "\"" > f
        }
        if (rnd(it, "ini", 2) == 1) print "WriteINIStr $INSTDIR\\setup.ini main id " i > f
        print "SectionEnd" > f
        close(f)
        g = group; sub(/^\/usr\/share\//, "", g)
        print i, "share:" g > (T "/sources")
        print "makensis -V1 " f " >" T "/i" i ".log 2>&1 || rm -f " T "/inst" i ".exe" > (T "/jobs")
    }
}' "$tmp/pool"
phase "installer scripts written"
[ "$NINST" -eq 0 ] || xargs -d '\n' -n 1 -P "$JOBS" sh -c <"$tmp/inst/jobs"
phase "installers built"

# ---- clean: small mingw-w64 programs (sources and gcc commands by one awk) --------
awk -v SEED="$SEED" -v NPROG="$NPROG" -v T="$tmp/prog" "$RND"'
BEGIN {
    rnd_init()
    split("-O0 -O1 -O2 -Os", opts, " ")
    for (i = 0; i < NPROG; i++) {
        it = "prog" i
        f = T "/p" i ".c"
        nf = rnd(it, "nf", 12) + 2
        print "#include <stdio.h>" > f
        print "#include <stdlib.h>" > f
        print "#include <string.h>" > f
        if (rnd(it, "win", 3) == 0) print "#include <windows.h>" > f
        print "static const char *msgs[] = {" > f
        nm = rnd(it, "nm", 20) + 1
        for (j = 0; j < nm; j++) print "  \"message " j " of program " i ": value " rnd(it, "m" j, 100000) "\"," > f
        print "};" > f
        print "static double table[] = {" > f
        nt = rnd(it, "nt", 64) + 1
        for (j = 0; j < nt; j++) print "  " rnd(it, "t" j, 10000) "." rnd(it, "u" j, 1000) "," > f
        print "};" > f
        for (j = 0; j < nf; j++) {
            a = rnd(it, "a" j, 97); b = rnd(it, "b" j, 13); w = a % 16 + 1
            kk = rnd(it, "k" j, 4)
            if (kk == 0) print "static long f" j "(long x) { long s = " a "; for (long i = 0; i < x; i++) s = s * " b " + i; return s; }" > f
            else if (kk == 1) print "static long f" j "(long x) { return x > 1 ? f" j "(x - 1) + " a " * x % (" b " + 1) : " a "; }" > f
            else if (kk == 2) print "static long f" j "(long x) { char buf[64]; snprintf(buf, sizeof buf, \"%ld-" a "\", x); return (long)strlen(buf) + " b "; }" > f
            else print "static long f" j "(long x) { long v[" w "]; for (int i = 0; i < " w "; i++) v[i] = x ^ i * " b "; long s = 0; for (int i = 0; i < " w "; i++) s += v[i]; return s; }" > f
        }
        kind = rnd(it, "dll", 4) == 0 ? "dll" : "exe"
        if (kind == "dll") print "__declspec(dllexport) long entry_" i "(long x) { long s = 0;" > f
        else print "int main(int argc, char **argv) { long x = argc > 1 ? atol(argv[1]) : " i ", s = 0; (void)argv;" > f
        for (j = 0; j < nf; j++) print "  s += f" j "(x % 20);" > f
        if (kind == "exe") {
            print "  printf(\"%s %ld %f\\n\", msgs[s % (sizeof msgs / sizeof msgs[0])], s, table[s % (sizeof table / sizeof table[0])]);" > f
            print "  return (int)(s & 1); }" > f
        } else {
            print "  return s + (long)table[0] + (long)strlen(msgs[0]); }" > f
        }
        close(f)
        flags = opts[rnd(it, "opt", 4) + 1]
        if (rnd(it, "strip", 2) == 1) flags = flags " -s"
        if (kind == "dll") flags = flags " -shared"
        if (kind == "exe" && rnd(it, "gui", 4) == 0) flags = flags " -mwindows"
        print i, kind > (T "/kinds")
        # no link timestamp, no temporary directory in the debug info: byte-identical reruns
        flags = flags " -Wl,--no-insert-timestamp -ffile-prefix-map=" T "=."
        # run inside T with relative names: the automatic image base of a DLL hashes its name
        print "cd " T " && x86_64-w64-mingw32-gcc " flags " -o prog" i "." kind " p" i ".c >p" i ".log 2>&1 || rm -f " T "/prog" i "." kind > (T "/jobs")
    }
}'
phase "program sources written"
[ "$NPROG" -eq 0 ] || xargs -d '\n' -n 1 -P "$JOBS" sh -c <"$tmp/prog/jobs"
phase "programs built"

# ---- candidates in a fixed order: path name label source ------------------------
# A failed makensis or gcc run removed its (possibly partial) output above, so an
# existing output is a successful build. The lists exist even when NINST/NPROG is 0.
: >"$tmp/cand"
: >>"$tmp/inst/sources"
: >>"$tmp/prog/kinds"
while read -r i src; do
    if [ -f "$tmp/inst/inst$i.exe" ]; then
        echo "$tmp/inst/inst$i.exe inst$i.exe 1 $src" >>"$tmp/cand"
    else
        echo "make_pe_corpus: makensis failed on installer $i (skipped):" >&2
        tail -n 3 "$tmp/inst/i$i.log" >&2 || true
    fi
done <"$tmp/inst/sources"
# libwine: each of the nw files is kept with probability NWINE/nw, by the hash of
# its name and SEED: about NWINE files, not exactly NWINE (the count varies with SEED).
ls "$WINEDIR" | grep -E '\.(dll|exe)$' | sort |
    awk -v SEED="$SEED" -v NWINE="$NWINE" -v D="$WINEDIR" "$RND"'
    { name[++nw] = $0 }
    END {
        rnd_init()
        for (i = 1; i <= nw; i++) {
            if (rnd("wine:" name[i], "keep", nw) >= NWINE) continue
            stem = name[i]; sub(/\.[^.]*$/, "", stem); sub(/[0-9_]*$/, "", stem)
            print D "/" name[i], "wine_" name[i], 0, "wine:" stem
        }
    }' >>"$tmp/cand"
while read -r i kind; do
    if [ -f "$tmp/prog/prog$i.$kind" ]; then
        echo "$tmp/prog/prog$i.$kind prog$i.$kind 0 mingw:prog$i" >>"$tmp/cand"
    else
        echo "make_pe_corpus: mingw build of program $i failed (skipped):" >&2
        tail -n 3 "$tmp/prog/p$i.log" >&2 || true
    fi
done <"$tmp/prog/kinds"

# ---- sizes, hashes, dedup, split, copy ------------------------------------------
cut -d' ' -f1 "$tmp/cand" | xargs -d '\n' -r stat -c %s >"$tmp/sizes"
cut -d' ' -f1 "$tmp/cand" | xargs -d '\n' -r sha256sum | cut -d' ' -f1 >"$tmp/sums"
phase "hashed"
echo "file,label,split,source,bytes,sha256" >"$out/manifest.csv"
paste -d' ' "$tmp/cand" "$tmp/sizes" "$tmp/sums" |
    awk -v SEED="$SEED" -v MAX="$MAXBYTES" -v M="$out/manifest.csv" -v C="$tmp/copy" "$RND"'
    BEGIN { rnd_init() }
    $5 > MAX || seen[$6]++ { next }
    {
        print $2 "," $3 "," (rnd("split", $4, 10) < 7 ? "train" : "test") "," $4 "," $5 "," $6 >> M
        print $1, $2 > C
    }'
while read -r src name; do cp "$src" "$out/files/$name"; done <"$tmp/copy"
phase "copied"

# ---- summary ----------------------------------------------------------------------
awk -F, 'NR > 1 { n[$2 "," $3]++; b[$2 "," $3] += $5 }
         END { for (k in n) printf "make_pe_corpus: label,split %s: %d files, mean %.0f bytes\n", k, n[k], b[k] / n[k] }' \
    "$out/manifest.csv" | sort
echo "make_pe_corpus: $(($(wc -l <"$out/manifest.csv") - 1)) files in $out ($(($(date +%s) - t0)) s)"
