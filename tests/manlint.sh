#!/bin/sh
# Lints every man page with mandoc; one case per page.
pass=0 fail=0
for f in man/*.[1-9]; do
	out=$(mandoc -Tlint -Wwarning "$f" 2>&1)
	if [ -z "$out" ]; then
		echo "ok - mandoc -Tlint $f"; pass=$((pass + 1))
	else
		echo "FAIL - mandoc -Tlint $f"; echo "$out"; fail=$((fail + 1))
	fi
done
echo "man: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
