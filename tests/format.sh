#!/bin/sh
# The C sources follow .clang-format: one case per file.
pass=0 fail=0
command -v clang-format >/dev/null || { echo "clang-format missing"; echo "format: 0 passed, 1 failed"; exit 1; }
for f in src/*.c include/*.h tests/*.c tests/*.h tests/fuzz/*.c tests/fuzz/*.h bench/*.c; do
	if clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
		pass=$((pass + 1))
	else
		echo "FAIL - $f is not formatted (clang-format -i $f)"; fail=$((fail + 1))
	fi
done
echo "format: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
