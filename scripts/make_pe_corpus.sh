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
#              NWINE (libwine files, 300), MAXBYTES (largest file kept, 1 MiB),
#              SEED (default 1).
# Needs: sh scripts/deps.sh lab (nsis, gcc-mingw-w64-x86-64, wine64).
#
# Reproducible: every choice comes from cksum of (SEED, item, field); the
# same Debian packages give the same files. Split by source: an installer's
# source is the /usr/share/<dir>/<subdir> its payload comes from, a wine
# file's its name stem without trailing digits (msvcr70 and msvcr71 are one
# source), a mingw program's its generated source; each source goes wholly to train (70 %) or test (30 %) by the hash of its name, and
# files with equal SHA-256 are kept once. Output: OUT/files/* and
# OUT/manifest.csv (file,label,split,source,bytes,sha256; label 1 = flagged).
set -eu
out=${1:-build/malware-lab/corpus}
NINST=${NINST:-300}
NPROG=${NPROG:-150}
NWINE=${NWINE:-300}
MAXBYTES=${MAXBYTES:-1048576}
SEED=${SEED:-1}
WINEDIR=/usr/lib/x86_64-linux-gnu/wine/x86_64-windows
export LC_ALL=C

for tool in makensis x86_64-w64-mingw32-gcc; do
    command -v "$tool" >/dev/null 2>&1 ||
        { echo "make_pe_corpus: $tool missing: run sh scripts/deps.sh lab" >&2; exit 1; }
done
[ -d "$WINEDIR" ] || { echo "make_pe_corpus: $WINEDIR missing: run sh scripts/deps.sh lab" >&2; exit 1; }

# rnd ITEM FIELD MOD: a deterministic number in [0, MOD).
rnd() { echo $(( $(printf '%s:%s:%s' "$SEED" "$1" "$2" | cksum | cut -d' ' -f1) % $3 )); }
# split_of SOURCE: train or test, by the source's name only.
split_of() { [ "$(rnd split "$1" 10)" -lt 7 ] && echo train || echo test; }

tmp=$(mktemp -d)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
rm -rf "$out"
mkdir -p "$out/files"
manifest="$out/manifest.csv"
echo "file,label,split,source,bytes,sha256" >"$manifest"
seen="$tmp/seen"
: >"$seen"

# add FILE NAME LABEL SOURCE: copy into the corpus unless too large or a duplicate.
add() {
    bytes=$(stat -c %s "$1")
    [ "$bytes" -le "$MAXBYTES" ] || return 0
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    if grep -q "$sum" "$seen"; then return 0; fi
    echo "$sum" >>"$seen"
    cp "$1" "$out/files/$2"
    echo "$2,$3,$(split_of "$4"),$4,$bytes,$sum" >>"$manifest"
}

# ---- flagged: NSIS installers ------------------------------------------------
find /usr/share -xdev -type f -size +1k -size -900k -readable 2>/dev/null |
    grep -v -e '[ ,"$;`\\]' -e "'" | sort >"$tmp/pool"
npool=$(wc -l <"$tmp/pool")
[ "$npool" -ge 100 ] || { echo "make_pe_corpus: too few payload files under /usr/share" >&2; exit 1; }
comps="zlib bzip2 lzma"
i=0
while [ "$i" -lt "$NINST" ]; do
    first=$(( $(rnd inst$i first "$npool") + 1 ))
    group=$(dirname "$(sed -n "${first}p" "$tmp/pool")" | cut -d/ -f1-5)
    # 1..6 files of the same source group
    awk -v g="$group/" 'index($0, g) == 1' "$tmp/pool" >"$tmp/group"
    ng=$(wc -l <"$tmp/group")
    k=$(( $(rnd inst$i k 6) + 1 ))
    comp=$(echo $comps | cut -d' ' -f$(( $(rnd inst$i comp 3) + 1 )))
    solid=""
    [ "$(rnd inst$i solid 2)" = 1 ] && solid="/SOLID "
    nsi="$tmp/i$i.nsi"
    {
        echo "Unicode true"
        echo "Target amd64-unicode"
        echo "SetCompressor $solid$comp"
        [ "$(rnd inst$i crc 4)" = 0 ] && echo "CRCCheck off"
        echo "Name \"Setup $i\""
        echo "OutFile \"$tmp/i$i.exe\""
        echo "RequestExecutionLevel user"
        echo "SilentInstall silent"
        echo "InstallDir \"\$TEMP\\tsr$i\""
        if [ "$(rnd inst$i vi 2)" = 1 ]; then
            echo "VIProductVersion \"1.$(rnd inst$i v1 9).$(rnd inst$i v2 99).0\""
            echo "VIAddVersionKey \"ProductName\" \"Setup $i\""
            echo "VIAddVersionKey \"FileVersion\" \"1.0\""
        fi
        echo "Section"
        echo "SetOutPath \$INSTDIR"
        j=0
        while [ "$j" -lt "$k" ]; do
            line=$(( ($(rnd inst$i f$j "$ng") % ng) + 1 ))
            f=$(sed -n "${line}p" "$tmp/group")
            echo "File \"/oname=f$j.$(basename "$f" | tr -c 'A-Za-z0-9.\n' _)\" \"$f\""
            j=$((j + 1))
        done
        [ "$(rnd inst$i ini 2)" = 1 ] && echo "WriteINIStr \$INSTDIR\\setup.ini main id $i"
        echo "SectionEnd"
    } >"$nsi"
    if makensis -V1 "$nsi" >"$tmp/log" 2>&1; then
        add "$tmp/i$i.exe" "inst$i.exe" 1 "share:${group#/usr/share/}"
    else
        echo "make_pe_corpus: makensis failed on installer $i (skipped):" >&2
        tail -n 3 "$tmp/log" >&2
    fi
    rm -f "$tmp/i$i.exe"
    i=$((i + 1))
done

# ---- clean: libwine PE32+ files ------------------------------------------------
ls "$WINEDIR" | grep -E '\.(dll|exe)$' | sort >"$tmp/wine"
nw=$(wc -l <"$tmp/wine")
i=0
while read -r f; do
    # keep NWINE of nw, chosen by hash of the name
    if [ "$(rnd "wine:$f" keep "$nw")" -lt "$NWINE" ]; then
        add "$WINEDIR/$f" "wine_$f" 0 "wine:$(echo "${f%.*}" | sed 's/[0-9_]*$//')"
    fi
    i=$((i + 1))
done <"$tmp/wine"

# ---- clean: small mingw-w64 programs --------------------------------------------
i=0
while [ "$i" -lt "$NPROG" ]; do
    src="$tmp/p$i.c"
    nf=$(( $(rnd prog$i nf 12) + 2 ))
    {
        echo "#include <stdio.h>"
        echo "#include <stdlib.h>"
        echo "#include <string.h>"
        [ "$(rnd prog$i win 3)" = 0 ] && echo "#include <windows.h>"
        echo "static const char *msgs[] = {"
        j=0
        while [ "$j" -lt $(( $(rnd prog$i nm 20) + 1 )) ]; do
            echo "  \"message $j of program $i: value $(rnd prog$i m$j 100000)\","
            j=$((j + 1))
        done
        echo "};"
        echo "static double table[] = {"
        j=0
        while [ "$j" -lt $(( $(rnd prog$i nt 64) + 1 )) ]; do
            echo "  $(rnd prog$i t$j 10000).$(rnd prog$i u$j 1000),"
            j=$((j + 1))
        done
        echo "};"
        j=0
        while [ "$j" -lt "$nf" ]; do
            a=$(rnd prog$i a$j 97)
            b=$(rnd prog$i b$j 13)
            case $(rnd prog$i k$j 4) in
            0) echo "static long f$j(long x) { long s = $a; for (long i = 0; i < x; i++) s = s * $b + i; return s; }" ;;
            1) echo "static long f$j(long x) { return x > 1 ? f$j(x - 1) + $a * x % ($b + 1) : $a; }" ;;
            2) echo "static long f$j(long x) { char buf[64]; snprintf(buf, sizeof buf, \"%ld-$a\", x); return (long)strlen(buf) + $b; }" ;;
            *) echo "static long f$j(long x) { long v[$((a % 16 + 1))]; for (int i = 0; i < $((a % 16 + 1)); i++) v[i] = x ^ i * $b; long s = 0; for (int i = 0; i < $((a % 16 + 1)); i++) s += v[i]; return s; }" ;;
            esac
            j=$((j + 1))
        done
        if [ "$(rnd prog$i dll 4)" = 0 ]; then
            kind=dll
            echo "__declspec(dllexport) long entry_$i(long x) { long s = 0;"
        else
            kind=exe
            echo "int main(int argc, char **argv) { long x = argc > 1 ? atol(argv[1]) : $i, s = 0; (void)argv;"
        fi
        j=0
        while [ "$j" -lt "$nf" ]; do echo "  s += f$j(x % 20);"; j=$((j + 1)); done
        [ "$kind" = dll ] || printf '%s\n' '  printf("%s %ld %f\n", msgs[s % (sizeof msgs / sizeof msgs[0])], s, table[s % (sizeof table / sizeof table[0])]);'
        if [ "$kind" = exe ]; then
            echo "  return (int)(s & 1); }"
        else
            echo "  return s + (long)table[0] + (long)strlen(msgs[0]); }"
        fi
    } >"$src"
    opt=$(echo "-O0 -O1 -O2 -Os" | cut -d' ' -f$(( $(rnd prog$i opt 4) + 1 )))
    flags="$opt"
    [ "$(rnd prog$i strip 2)" = 1 ] && flags="$flags -s"
    [ "$kind" = dll ] && flags="$flags -shared"
    [ "$kind" = exe ] && [ "$(rnd prog$i gui 4)" = 0 ] && flags="$flags -mwindows"
    # shellcheck disable=SC2086
    if x86_64-w64-mingw32-gcc $flags -o "$tmp/p$i.$kind" "$src" >"$tmp/log" 2>&1; then
        add "$tmp/p$i.$kind" "prog$i.$kind" 0 "mingw:prog$i"
    else
        echo "make_pe_corpus: mingw build of program $i failed (skipped):" >&2
        tail -n 3 "$tmp/log" >&2
    fi
    rm -f "$tmp/p$i.$kind"
    i=$((i + 1))
done

# ---- summary ----------------------------------------------------------------------
awk -F, 'NR > 1 { n[$2 "," $3]++; b[$2 "," $3] += $5 }
         END { for (k in n) printf "make_pe_corpus: label,split %s: %d files, mean %.0f bytes\n", k, n[k], b[k] / n[k] }' \
    "$manifest" | sort
echo "make_pe_corpus: $(($(wc -l <"$manifest") - 1)) files in $out"
