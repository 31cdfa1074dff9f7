# shellcheck shell=bash
# Shared helpers for shadowvault's shell integration tests.  Source it.
#
# Every test gets a private directory ($T) removed at exit, and counts its
# checks; t_done exits non-zero if any check failed.  Binaries come from
# $SV_BIN (the build directory's vault/ and client/ folders are searched).

set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/svit.XXXXXX")
T_PASS=0
T_FAIL=0
T_PIDS=""
T_NAME=${0##*/}

t_cleanup() {
	local p
	for p in $T_PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	[ -n "${T_KEEP:-}" ] || rm -rf "$T"
}
trap t_cleanup EXIT

# pebble_up [OPTION...]: this test's Pebble (pebble.sh start "$T/pebble" OPTION...), with its
# variables ($PEBBLE_URL, $PEBBLE_CA, ...) set here and $PEB naming pebble.sh; stopped at
# exit.  A Pebble that does not start ends the test.
pebble_up() {
	PEB=$(dirname "${BASH_SOURCE[0]}")/pebble.sh
	trap 'bash "$PEB" stop "$T/pebble" >/dev/null 2>&1; t_cleanup' EXIT
	bash "$PEB" start "$T/pebble" "$@" >"$T/pebble.out" 2>&1 ||
		{ cat "$T/pebble.out"; fail "pebble"; t_done; exit 1; }
	# shellcheck disable=SC1091 # written by pebble.sh start
	. "$T/pebble/env"
}

sv_bin() { # sv_bin NAME: path of a built program
	local d
	for d in "$SV_BIN/vault" "$SV_BIN/client" "$SV_BIN/tests" "$SV_BIN/bench" "$SV_BIN"; do
		[ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	echo "no built program $1 under $SV_BIN" >&2
	return 1
}

pass() { T_PASS=$((T_PASS + 1)); echo "ok   - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $*"; }

# run CMD...: runs it, keeping stdout in $T/out, stderr in $T/err and status in $RC.
run() {
	"$@" >"$T/out" 2>"$T/err"
	RC=$?
}

# expect_rc N DESCRIPTION CMD...: CMD must exit with status N.
expect_rc() {
	local want=$1 what=$2
	shift 2
	run "$@"
	if [ "$RC" -eq "$want" ]; then
		pass "$what (exit $RC)"
	else
		fail "$what: exit $RC, wanted $want"
		sed 's/^/    stderr: /' "$T/err" | head -5
	fi
}

# expect_err TEXT DESCRIPTION: the last run's stderr must contain TEXT.
expect_err() {
	if grep -qF -- "$1" "$T/err"; then
		pass "$2"
	else
		fail "$2: stderr lacks \"$1\""
		sed 's/^/    stderr: /' "$T/err" | head -5
	fi
}

# expect_out TEXT DESCRIPTION: the last run's stdout must contain TEXT.
expect_out() {
	if grep -qF -- "$1" "$T/out"; then
		pass "$2"
	else
		fail "$2: stdout lacks \"$1\""
		sed 's/^/    stdout: /' "$T/out" | head -5
	fi
}

t_done() {
	echo "# $T_NAME: $T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ] && [ "$T_PASS" -gt 0 ]
}
