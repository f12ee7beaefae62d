#!/bin/sh
# demo/run.sh (make demo): the whole "Add to Slack" flow served by nginx with
# the programs as persistent FastCGI servers under spawn-fcgi, until Ctrl-C
# (SIGINT) or SIGTERM.
#
# Without SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SCOPES in the
# environment, Slack is played by tests/fake_slack.py on 127.0.0.1:8081, a
# local stand-in that says so on its authorize page, and the flow is served
# on http://localhost:8080 (https://localhost:8443 with DEMO_HTTPS=1).
#
# With all three set, the real Slack is used, on https://localhost:8443:
# Slack's redirect is a browser redirect (Slack never connects to the
# Redirect URL, it only requires https), so
# https://localhost:8443/slack/oauth_redirect, added to the app's Redirect
# URLs, works from this machine's own browser. The certificate, for
# localhost, 127.0.0.1 and ::1, is made here with openssl on first use, kept
# in DEMO_DIR (key 0600) and made again when it expires. With
# SLACK_REDIRECT_URI set instead, the flow is served on http://localhost:8080
# behind whatever https host (a tunnel, a reverse proxy) that URL names.
#
# Environment (all optional): DEMO_PORT (8080), DEMO_HTTPS_PORT (8443),
# DEMO_HTTPS (1: https with the fake Slack too), DEMO_FAKE_SLACK_PORT (8081),
# DEMO_DIR (build/demo: the database, the logs, the config file, the
# certificate), SLACK_USER_SCOPES, SLACK_APP_NAME.
#
# `demo/run.sh intro` prints only what to do first (make demo runs it
# before it builds anything).
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${DEMO_PORT:-8080}
HTTPS_PORT=${DEMO_HTTPS_PORT:-8443}
FAKE_PORT=${DEMO_FAKE_SLACK_PORT:-8081}
DIR=${DEMO_DIR:-$ROOT/build/demo}

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

# --- which Slack, which scheme ---------------------------------------------
if [ -n "${SLACK_CLIENT_ID:-}${SLACK_CLIENT_SECRET:-}${SLACK_SCOPES:-}" ]; then
	[ -n "${SLACK_CLIENT_ID:-}" ] && [ -n "${SLACK_CLIENT_SECRET:-}" ] &&
		[ -n "${SLACK_SCOPES:-}" ] ||
		die "for real Slack set all of SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_SCOPES (or none, for the local fake Slack)"
	MODE=real
	if [ -n "${SLACK_REDIRECT_URI:-}" ]; then
		case $SLACK_REDIRECT_URI in
		https://*) ;;
		*) die "SLACK_REDIRECT_URI must be an https URL listed in your app's \"OAuth & Permissions\" settings that reaches http://localhost:$PORT (a tunnel or a reverse proxy), or unset, for https://localhost:$HTTPS_PORT" ;;
		esac
		SCHEME=http
	else
		SCHEME=https
	fi
else
	MODE=fake
	SLACK_CLIENT_ID=demo-client-id
	SLACK_CLIENT_SECRET=demo-client-secret
	SLACK_SCOPES=chat:write,commands
	SCHEME=http
	[ "${DEMO_HTTPS:-0}" != 1 ] || SCHEME=https
fi
if [ "$SCHEME" = https ]; then
	LISTEN=$HTTPS_PORT
	BASE=https://localhost:$HTTPS_PORT
else
	LISTEN=$PORT
	BASE=http://localhost:$PORT
fi
if [ "$MODE" = real ] && [ "$SCHEME" = http ]; then
	INSTALL_URL=$(printf '%s' "$SLACK_REDIRECT_URI" | sed -E 's|^(https://[^/?#]+).*|\1|')/slack/install
else
	SLACK_REDIRECT_URI=$BASE/slack/oauth_redirect
	INSTALL_URL=$BASE/slack/install
fi

# What to do before opening the install page: printed first by make demo,
# and again when everything listens.
intro() {
	[ "$SCHEME" = https ] || return 0
	if [ "$MODE" = real ]; then
		say "1. In your app's settings (https://api.slack.com/apps → your app → OAuth & Permissions → Redirect URLs),"
		say "   add this line and save:"
		echo
		echo "    $SLACK_REDIRECT_URI"
		echo
		say "2. Open $INSTALL_URL in this machine's browser."
	else
		say "https with the local fake Slack: open $INSTALL_URL"
	fi
	say "   The browser warns once about the local certificate (this demo made it for localhost): choose"
	say "   \"Advanced\" → \"Proceed to localhost\" (Chrome), \"Advanced…\" → \"Accept the Risk and Continue\" (Firefox),"
	say "   or \"Show Details\" → \"visit this website\" (Safari)."
}
if [ "${1:-}" = intro ]; then
	intro
	exit 0
fi

for b in nginx spawn-fcgi python3; do
	command -v "$b" >/dev/null 2>&1 || die "$b is missing (make demo installs it)"
done
[ -x "$ROOT/cgi-bin/slack-install" ] && [ -x "$ROOT/cgi-bin/slack-oauth-redirect" ] ||
	die "the programs are not built: run make"

port_busy() {
	python3 -c 'import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}
wait_port() { # port, what, pid
	i=0
	while ! port_busy "$1"; do
		kill -0 "$3" 2>/dev/null || die "$2 did not start (see $DIR)"
		i=$((i + 1))
		[ "$i" -lt 100 ] || die "$2 did not start listening on port $1"
		sleep 0.1
	done
}

PORTS=$LISTEN
[ "$MODE" = real ] || PORTS="$PORTS $FAKE_PORT"
for p in $PORTS; do
	if port_busy "$p"; then
		die "port $p on 127.0.0.1 is in use; pick others: DEMO_PORT=8090 DEMO_HTTPS_PORT=8453 DEMO_FAKE_SLACK_PORT=8091 make demo"
	fi
done

# --- files -----------------------------------------------------------------
umask 077
mkdir -p "$DIR"
# Sockets, pid file and nginx's temp files: a private directory that nginx's
# workers can traverse.
RUN=$(mktemp -d "${TMPDIR:-/tmp}/slack-oauth-demo.XXXXXX")
chmod 0711 "$RUN"
mkdir "$RUN/tmp"

# The configuration, in a file of our own (0600), so that nothing is read
# from /etc/slack-oauth/slack-oauth.conf. Values in SLACK_* variables of the
# environment would win over it; the programs get a clean environment.
{
	echo "# written by demo/run.sh ($MODE Slack)"
	echo "SLACK_CLIENT_ID = $SLACK_CLIENT_ID"
	echo "SLACK_CLIENT_SECRET = $SLACK_CLIENT_SECRET"
	echo "SLACK_SCOPES = $SLACK_SCOPES"
	[ -z "${SLACK_USER_SCOPES:-}" ] || echo "SLACK_USER_SCOPES = $SLACK_USER_SCOPES"
	[ -z "${SLACK_APP_NAME:-}" ] || echo "SLACK_APP_NAME = $SLACK_APP_NAME"
	echo "SLACK_REDIRECT_URI = $SLACK_REDIRECT_URI"
	echo "SLACK_OAUTH_DB = $DIR/slack-oauth.db"
	if [ "$MODE" = fake ]; then
		# 127.0.0.1, not localhost: another site, as slack.com is, so that
		# the state cookie has to come back as SameSite=Lax allows.
		echo "SLACK_AUTHORIZE_URL = http://127.0.0.1:$FAKE_PORT/oauth/v2/authorize"
		echo "SLACK_API_URL = http://127.0.0.1:$FAKE_PORT/api/"
	fi
} >"$DIR/slack-oauth.conf"
chmod 0600 "$DIR/slack-oauth.conf"

if [ "$(id -u)" = 0 ]; then
	# nginx's workers drop to nobody; the sockets are theirs to connect to.
	USER_LINE="user nobody nogroup;"
	SOCK_OWNER="-U nobody -G nogroup -M 0660"
else
	USER_LINE=""
	SOCK_OWNER="-M 0600"
fi
# The certificate of the https mode: made once, kept, made again a day
# before it expires.
CERT=$DIR/localhost.crt
KEY=$DIR/localhost.key
TLS=""
if [ "$SCHEME" = https ]; then
	command -v openssl >/dev/null 2>&1 || die "openssl is missing (make demo installs it)"
	if ! [ -s "$CERT" ] || ! [ -s "$KEY" ] ||
		! openssl x509 -in "$CERT" -noout -checkend 86400 >/dev/null 2>&1; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -days 365 -subj /CN=localhost \
			-addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
			-addext "basicConstraints=critical,CA:FALSE" \
			-addext "extendedKeyUsage=serverAuth" \
			-keyout "$KEY.new" -out "$CERT.new" >/dev/null 2>&1 ||
			die "openssl could not make a certificate in $DIR"
		chmod 0600 "$KEY.new"
		mv "$KEY.new" "$KEY"
		mv "$CERT.new" "$CERT"
		say "made a certificate for localhost, 127.0.0.1 and ::1, valid for a year: $CERT"
	fi
	TLS="ssl_certificate $CERT; ssl_certificate_key $KEY;"
	LISTEN="$LISTEN ssl"
fi

cp /etc/nginx/fastcgi_params "$RUN/fastcgi_params"
sed -e "s|@USER@|$USER_LINE|" -e "s|@LISTEN@|$LISTEN|" -e "s|@TLS@|$TLS|" \
	-e "s|@RUN@|$RUN|g" -e "s|@LOG@|$DIR|g" "$ROOT/demo/nginx.conf.in" >"$RUN/nginx.conf"
touch "$DIR/slack-oauth.log"

# --- processes -------------------------------------------------------------
PIDS=""
cleanup() {
	trap - EXIT INT TERM
	for pid in $PIDS; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $PIDS; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$RUN"
	say "stopped"
}
trap cleanup EXIT
trap 'exit 0' INT # Ctrl-C is how the demo ends
trap 'exit 143' TERM

if [ "$MODE" = fake ]; then
	python3 "$ROOT/tests/fake_slack.py" --port "$FAKE_PORT" \
		--client-id "$SLACK_CLIENT_ID" --client-secret "$SLACK_CLIENT_SECRET" \
		>"$DIR/fake-slack.log" 2>&1 &
	FAKE_PID=$!
	PIDS="$PIDS $FAKE_PID"
	wait_port "$FAKE_PORT" "the fake Slack" "$FAKE_PID"
fi

for prog in slack-install slack-oauth-redirect; do
	# -n: spawn-fcgi execs the program, which stays our child, its stderr
	# (one line per request) appended to $DIR/slack-oauth.log.
	# shellcheck disable=SC2086
	env -i PATH=/usr/bin:/bin SLACK_OAUTH_CONFIG="$DIR/slack-oauth.conf" \
		spawn-fcgi -n -s "$RUN/$prog.sock" $SOCK_OWNER -- "$ROOT/cgi-bin/$prog" \
		</dev/null >/dev/null 2>>"$DIR/slack-oauth.log" &
	PIDS="$PIDS $!"
done

nginx -p "$RUN" -c "$RUN/nginx.conf" -e "$DIR/error.log" </dev/null &
NGINX_PID=$!
PIDS="$PIDS $NGINX_PID"
wait_port "${LISTEN%% *}" nginx "$NGINX_PID"
for prog in slack-install slack-oauth-redirect; do
	[ -S "$RUN/$prog.sock" ] || die "$prog did not start (see $DIR/slack-oauth.log)"
done

REL=$DIR
case $DIR in "$ROOT"/*) REL=${DIR#"$ROOT"/} ;; esac
ADMIN="SLACK_OAUTH_CONFIG=$REL/slack-oauth.conf bin/slack-oauth"

# The programs' log lines as they come; after each installation, how to
# see what was stored and how to run a bot with its token.
watch_log() {
	while IFS= read -r line; do
		printf '%s\n' "$line"
		case $line in
		"slack-oauth-redirect: outcome=ok "*) ;;
		*) continue ;;
		esac
		id=$(printf '%s\n' "$line" | sed -n -e 's/.* team=\(T[A-Z0-9]*\) .*/\1/p')
		[ -n "$id" ] || id=$(printf '%s\n' "$line" | sed -n -e 's/.* enterprise=\(E[A-Z0-9]*\) .*/\1/p')
		echo
		say "installed in $id. What was stored:"
		echo "    $ADMIN list"
		say "a bot with its token:"
		echo "    SLACK_BOT_TOKEN=\$($ADMIN token $id) python3 your_bot.py"
		echo
	done
}
mkfifo "$RUN/log.fifo"
watch_log <"$RUN/log.fifo" &
PIDS="$PIDS $!"
tail -n 0 -f "$DIR/slack-oauth.log" >"$RUN/log.fifo" &
PIDS="$PIDS $!"

echo
if [ "$MODE" = fake ]; then
	say "Slack is played by a local fake (tests/fake_slack.py on port $FAKE_PORT): no real workspace is involved."
	say "To use real Slack: SLACK_CLIENT_ID=… SLACK_CLIENT_SECRET=… SLACK_SCOPES=… make demo"
elif [ "$SCHEME" = http ]; then
	say "real Slack, client ID $SLACK_CLIENT_ID; Slack sends the browser back to $SLACK_REDIRECT_URI,"
	say "which must reach http://localhost:$PORT; open the install page through that same host."
else
	say "real Slack, client ID $SLACK_CLIENT_ID, on $BASE"
fi
intro
echo
echo "install URL: $INSTALL_URL"
echo
say "logs: $REL/slack-oauth.log (the programs), $REL/access.log, $REL/error.log (nginx)"
say "stop with Ctrl-C"
echo

# Until a signal, or until one of the processes ends.
while :; do
	for pid in $PIDS; do
		kill -0 "$pid" 2>/dev/null || die "a process of the demo ended (pid $pid); see $DIR"
	done
	sleep 1 &
	wait $! || true
done
