#!/bin/sh
# dist/pack.sh DIR CC (make dist): completes the tree make dist built in DIR
# (cgi-bin/ and bin/, linked with RUNPATH $ORIGIN/lib) and packs it as
# DIR.tar.gz. The two libraries web hosts lack, libcjson and libfcgi, are
# copied from this machine's Debian packages into cgi-bin/lib/ and bin/lib/,
# beside the programs that load them, with their copyright files; the
# programs find them there through $ORIGIN, never through the current
# directory or anything a request sets.
set -eu

DIR=$1
CC=${2:-cc}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=$(basename "$DIR")

die() { printf 'make dist: %s\n' "$*" >&2; exit 1; }

# lib NAME DEST: copies the library the linker would use, under its soname.
lib() {
	src=$("$CC" -print-file-name="$1")
	[ "$src" != "$1" ] && [ -e "$src" ] || die "$1 not found (install its -dev package)"
	mkdir -p "$2"
	install -m 0644 "$(readlink -f "$src")" "$2/$1"
	strip --strip-unneeded "$2/$1"
}

lib libcjson.so.1 "$DIR/cgi-bin/lib"
lib libfcgi.so.0 "$DIR/cgi-bin/lib"
lib libcjson.so.1 "$DIR/bin/lib"
strip "$DIR"/cgi-bin/slack-* "$DIR"/bin/slack-oauth

install -m 0644 "$ROOT/htaccess-example" "$DIR/cgi-bin/htaccess-example"
mkdir -p "$DIR/man" "$DIR/examples/systemd" "$DIR/licenses"
install -m 0644 "$ROOT"/man/*.[58] "$DIR/man/"
install -m 0644 "$ROOT/apache-example.conf" "$ROOT/htaccess-example" \
	"$ROOT/nginx-example.conf" "$ROOT/nginx-spawn-fcgi-example.conf" \
	"$DIR/examples/"
install -m 0644 "$ROOT"/systemd/* "$DIR/examples/systemd/"
install -m 0644 "$ROOT/dist/INSTALL" "$ROOT/VERSION" "$ROOT/README.md" "$ROOT/SECURITY.md" "$DIR/"
[ ! -e "$ROOT/LICENSE" ] || install -m 0644 "$ROOT/LICENSE" "$DIR/"
for pkg in libcjson1 libfcgi0ldbl; do
	f=/usr/share/doc/$pkg/copyright
	[ -e "$f" ] || die "$f is missing (the package $pkg)"
	install -m 0644 "$f" "$DIR/licenses/$pkg.copyright"
done

# The same bytes for the same tree: sorted, owned by root, dated by VERSION.
stamp=$(git -C "$ROOT" log -1 --format=%ct -- VERSION 2>/dev/null || echo 0)
tar -C "$(dirname "$DIR")" --sort=name --owner=0 --group=0 --numeric-owner \
	--mtime="@${stamp:-0}" -czf "$DIR.tar.gz" "$NAME"
printf 'make dist: %s.tar.gz\n' "$DIR"
