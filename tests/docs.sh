#!/bin/sh
# tests/docs.sh CC [FLAGS...] - the documentation's C examples, compiled as printed.
#
# Takes the QUICK START program from lm.h's docs block and every ```c block of README.md,
# fills in each elision - a line written ...like this... - from tests/docs/NAME_K.c (the
# K-th elision of snippet NAME: quickstart, readme_1, readme_2, ...), and compiles each
# with CC and FLAGS into out/docs/NAME. out/docs/list names them; lm_test (make test) runs
# each and checks it. A snippet that does not compile, or an elision with no fill, fails
# the build here with the compiler's message.
set -eu
[ $# -ge 1 ] || { echo "usage: tests/docs.sh CC [FLAGS...]" >&2; exit 2; }
out=out/docs
mkdir -p "$out"
: > "$out/list.tmp"

# fill NAME < snippet > filled: each elision line becomes the contents of its fill file
fill() {
    awk -v name="$1" -v dir=tests/docs '
        /^[ \t]*\.\.\..*\.\.\.[ \t]*$/ {
            k++; f = dir "/" name "_" k ".c"; got = 0
            while ((getline line < f) > 0) { print line; got = 1 }
            close(f)
            if (!got) { print "tests/docs.sh: no fill " f " for: " $0 > "/dev/stderr"; bad = 1 }
            next
        }
        { print }
        END { exit bad }'
}

# lm.h: the lines after "   QUICK START" indented by 7 or more, up to the first line
# indented less; the indentation is removed
awk '/^   QUICK START/ { on = 1; next }
     on && /^[ \t]*$/ { print ""; next }
     on && /^       / { print substr($0, 8); next }
     on { exit }' lm.h > "$out/quickstart.raw"
# README.md: every fenced ```c block
awk -v out="$out" '/^```c[ \t]*$/ { n++; on = 1; f = out "/readme_" n ".raw"; printf "" > f; next }
     on && /^```/ { on = 0; close(f); next }
     on { print > f }' README.md

cc="$1"
shift
for raw in "$out"/quickstart.raw "$out"/readme_*.raw; do
    [ -f "$raw" ] || continue
    name=$(basename "$raw" .raw)
    [ -s "$raw" ] || { echo "tests/docs.sh: $name is empty" >&2; exit 1; }
    fill "$name" < "$raw" > "$out/$name.c"
    # shellcheck disable=SC2086
    $cc "$@" -I. "$out/$name.c" -o "$out/$name" -lm -lpthread
    echo "$name" >> "$out/list.tmp"
done
mv "$out/list.tmp" "$out/list"
echo "docs: compiled $(tr '\n' ' ' < "$out/list")"
