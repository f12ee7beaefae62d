#!/bin/sh
# tests/apt-install.sh PACKAGE...: installs those of the Debian packages that
# are missing (as root, or through sudo), for `make test` and `make demo`.
#
# The services in them (nginx, Apache, fcgiwrap) are not started: while
# apt-get runs, a policy-rc.d denies every start unless the system has one
# already. Otherwise Debian would start nginx and Apache on port 80 of every
# interface, and the second of them would fail to install for want of it.
set -eu
missing=
for p in "$@"; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -n "$missing" ] || exit 0
echo "installing:$missing"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
if [ ! -e /usr/sbin/policy-rc.d ]; then
	trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
	trap 'exit 130' INT TERM
	printf '#!/bin/sh\n# tests/apt-install.sh: no service starts while it installs packages\nexit 101\n' |
		$SUDO tee /usr/sbin/policy-rc.d >/dev/null
	$SUDO chmod 0755 /usr/sbin/policy-rc.d
fi
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
