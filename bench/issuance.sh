#!/usr/bin/env bash
#
# bench/issuance.sh: wall time of a whole certificate issuance by `shadow
# issue` (every JWS signed remotely by vaultd, key in SoftHSM2) next to
# uacme (Debian package; signs locally with a key file) against the same
# Pebble in the same run, and the ratio shadow/uacme (see bench/issuance.md).
#
#   full    Pebble with authz reuse 0: every order needs a fresh http-01
#           validation.  A new name every round (pebble-challtestsrv answers
#           every name with 127.0.0.1).  shadow answers with its own
#           standalone responder; uacme with a hook that writes the key
#           authorization into a directory served by `python3 -m http.server`
#           (started for each uacme round, so only one of them holds the
#           port at a time; its start is not timed).
#   reuse   A second Pebble (a new CA) with authz reuse 100: each client
#           validates one name once (not timed), then every timed round is
#           another order for that name, whose authorization is valid and
#           reused (no challenge at all; uacme needs -f to order again).
#
# Rounds are interleaved (shadow round i, then uacme round i) after one
# untimed warm-up round each; the table shows medians.  Both clients use
# EC P-256 account and certificate keys and Pebble rejects no nonces.
# uacme has no CA-file option and its TLS library (libcurl-gnutls) reads no
# environment variable for one, so each uacme run gets a private mount
# namespace (unshare -m) in which /etc/ssl/certs holds only Pebble's TLS CA:
# verification stays on and nothing outside that namespace changes.
#
# Then, not timed: one more round of each client under strace (sleeps
# only) to show how long each one sleeps while polling, and ten signing
# requests to the vault by curl (client-side time, TLS handshake included)
# next to vaultd's own time for them from GET /metrics.
#
# usage: bench/issuance.sh [--quick] [--rounds N] [--keep] [BUILD_DIR]
#   --rounds N  N full-issuance rounds (default 5) and 4 x N second-order
#               rounds (a second order takes ~0.1 s per pair, a full one
#               ~5 s: more rounds there make its median steadier for free)
#   --quick     --rounds 2
#   BUILD_DIR   a build with vaultd, vaultctl and shadow (default $SV_BIN,
#               else ./build)
#   --keep      keep the temporary directory (logs, audit log, certificates)
#
# Needs: uacme, pebble + pebble-challtestsrv, SoftHSM2, python3, curl,
# unshare and mount (root, or unprivileged user namespaces); strace is
# optional (the sleep breakdown is skipped without it).  Everything runs
# on 127.0.0.1 in a private temporary directory; every process it starts is
# stopped by PID.  Only the ratios mean anything: the machine is shared.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
ROUNDS=5
KEEP=
TARGET=1.2
SV_BIN=${SV_BIN:-$ROOT/build}

usage() {
	echo "usage: bench/issuance.sh [--quick] [--rounds N] [--keep] [BUILD_DIR]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) ROUNDS=2 ;;
	--rounds) ROUNDS=${2:-}; shift ;;
	--keep) KEEP=1 ;;
	-*) usage ;;
	*) SV_BIN=$1 ;;
	esac
	shift
done
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || usage
SV_BIN=$(cd "$SV_BIN" 2>/dev/null && pwd) || { echo "issuance.sh: no build directory" >&2; exit 2; }
export SV_BIN
[ -n "$KEEP" ] && export T_KEEP=1

for tool in uacme unshare mount python3 curl pebble pebble-challtestsrv; do
	command -v "$tool" >/dev/null || { echo "issuance.sh: $tool not found" >&2; exit 1; }
done

# shellcheck source=../tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck source=../tests/integration/vaultd.sh
. "$ROOT/tests/integration/vaultd.sh"
PEB=$ROOT/tests/integration/pebble.sh
RES=$T/results    # CASE CLIENT ROUND SECONDS SIGNATURES PEBBLE-REQUESTS POLL-WAITS SLEPT
WWW=$T/www        # uacme's http-01 files
CHAL=$WWW/.well-known/acme-challenge
HOOKLOG=$T/uacme-hook.log
WWW_PID=
PEBBLE_RUNNING=
STRACE=$(command -v strace || true)
# Unprivileged: a user namespace too (mapped root may bind-mount in it).
if [ "$(id -u)" = 0 ]; then NS=(unshare -m --propagation private); else NS=(unshare -r -m --propagation private); fi

die() {
	echo "issuance.sh: $*" >&2
	exit 1
}

on_exit() {
	[ -n "$WWW_PID" ] && www_stop
	[ -n "$PEBBLE_RUNNING" ] && bash "$PEB" stop "$T/pebble" >/dev/null 2>&1
	[ -n "$KEEP" ] && echo "# kept $T"
	t_cleanup
}
trap on_exit EXIT

# --- set-up -------------------------------------------------------------------

# The vault (product audit defaults: checkpoint every 1000 records or 300 s),
# a shadow allowed every *.bench.test name with a rate limit out of the way.
vault_setup() {
	vd_setup 'audit = { checkpoint_records = 1000; checkpoint_seconds = 300; };'
	cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  bench = { accounts = [ "full", "reuse" ]; names = [ "*.bench.test" ];
            rate = { per_minute = 100000; burst = 100000; }; };
};
POL
	vd_start || die "vaultd did not start"
	vd_enroll bench || die "shadow enroll failed"
}

# pebble_up CASE REUSE: a new Pebble (a new CA), the vault account CASE and a
# uacme account in $T/uacme-CASE registered at it.
pebble_up() {
	local acct=$1
	bash "$PEB" start "$T/pebble" --authz-reuse "$2" --nonce-reject 0 >"$T/pebble.out" 2>&1 ||
		{ cat "$T/pebble.out"; die "pebble did not start"; }
	PEBBLE_RUNNING=1
	# shellcheck disable=SC1091 # written by pebble.sh start
	. "$T/pebble/env"
	"$VC" -c "$VCONF" -q key create "$acct" --type ec-p256 || die "vaultctl key create $acct"
	"$VC" -c "$VCONF" -q account register "$acct" --directory "$PEBBLE_URL" --key "$acct" \
		--ca-file "$PEBBLE_CA" --agree-tos >/dev/null || die "vaultctl account register $acct"
	# uacme trusts only this Pebble's TLS CA, in its own mount namespace.
	mkdir -p "$T/trust"
	cp "$PEBBLE_CA" "$T/trust/ca-certificates.crt"
	UC=$T/uacme-$acct
	uacme_run "$T/uacme-$acct.new" -y new >/dev/null ||
		{ cat "$T/uacme-$acct.new.err"; die "uacme new failed"; }
}

pebble_down() {
	bash "$PEB" stop "$T/pebble" >/dev/null 2>&1
	PEBBLE_RUNNING=
}

# uacme's http-01 hook: METHOD TYPE IDENT TOKEN AUTH (declines other types).
write_hook() {
	mkdir -p "$CHAL"
	cat >"$T/uacme-hook.sh" <<HOOK
#!/bin/sh
echo "\$1 \$2 \$3" >>"$HOOKLOG"
case "\$1:\$2" in
begin:http-01) printf '%s' "\$5" >"$CHAL/\$4" ;;
done:http-01 | failed:http-01) rm -f "$CHAL/\$4" ;;
*) exit 1 ;;
esac
HOOK
	chmod +x "$T/uacme-hook.sh"
}

www_start() {
	local i
	(cd "$WWW" && exec python3 -m http.server "$PEBBLE_HTTP01_PORT" --bind 127.0.0.1) \
		>"$T/www.log" 2>&1 &
	WWW_PID=$!
	for i in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$PEBBLE_HTTP01_PORT/" && return 0
		kill -0 "$WWW_PID" 2>/dev/null || break
		sleep 0.05
	done
	die "python3 -m http.server did not start on port $PEBBLE_HTTP01_PORT"
}

www_stop() {
	kill "$WWW_PID" 2>/dev/null
	wait "$WWW_PID" 2>/dev/null
	WWW_PID=
}

# --- one issuance ---------------------------------------------------------------

elapsed() { "$PY" -c 'import sys; print("%.4f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
signatures() { grep -c '"type":"sign".*"decision":"allow"' "$VDIR/state/audit.log"; }
pebble_requests() { grep -c -- '-> calling handler()' "$T/pebble/pebble.log"; }

# uacme_run OUT ARGS...: uacme -c $UC -a $PEBBLE_URL ARGS in a mount namespace
# where /etc/ssl/certs is $T/trust; prints the wall time of uacme alone (the
# namespace set-up is not timed).  stderr (uacme -v) in OUT.err.
uacme_run() {
	local out=$1
	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	"${NS[@]}" bash -c 'mount --bind "$1" /etc/ssl/certs || exit 99
		shift; s=$EPOCHREALTIME; "$@"; rc=$?; e=$EPOCHREALTIME
		echo "TIME $s $e"; exit $rc' _ "$T/trust" \
		${UC_STRACE:+"$STRACE" -f --seccomp-bpf -e trace=nanosleep,clock_nanosleep -T -o "$out.strace"} \
		uacme -v -t EC -c "$UC" -a "$PEBBLE_URL" "$@" >"$out.time" 2>"$out.err"
	local rc=$? s e
	[ $rc = 0 ] && read -r _ s e < <(grep '^TIME ' "$out.time") && elapsed "$s" "$e"
	return $rc
}

# shadow_run OUT NAME: shadow issue NAME with the standalone http-01
# responder; prints its wall time.  Progress lines in OUT.err.
shadow_run() {
	local out=$1 name=$2 s e rc
	s=$EPOCHREALTIME
	${SH_STRACE:+"$STRACE" -f --seccomp-bpf -e trace=nanosleep,clock_nanosleep -T -o "$out.strace"} \
		"$SH" --state-dir "$T/sh-bench" issue "$name" --account "$ACCT" \
		--acme-ca-file "$PEBBLE_CA" --http-port "$PEBBLE_HTTP01_PORT" --http-address 127.0.0.1 \
		--out "$T/certs" --timeout 60 >"$out.out" 2>"$out.err"
	rc=$?
	e=$EPOCHREALTIME
	[ $rc = 0 ] && elapsed "$s" "$e"
	return $rc
}

# Seconds slept (nanosleep/clock_nanosleep) in an strace -T log.
slept() {
	[ -s "$1" ] || { echo "-"; return; }
	"$PY" - "$1" <<'PY'
import re, sys
t = sum(float(m.group(1)) for m in re.finditer(r"sleep\(.*<([0-9.]+)>", open(sys.argv[1]).read()))
print("%.3f" % t)
PY
}

# one_shadow CASE ROUND NAME: time it, check what it did, record it.
one_shadow() {
	local out=$T/r.$1.shadow.$2 sig0 req0 t
	sig0=$(signatures)
	req0=$(pebble_requests)
	t=$(shadow_run "$out" "$3") || { cat "$out.err"; die "shadow issue $3 failed"; }
	case "$1" in
	full) grep -q "^validating $3 (http-01)" "$out.err" || die "shadow: $3 was not validated" ;;
	reuse) # the order comes back ready: straight to finalize
		if grep -q validating "$out.err" || ! grep -q "^finalizing" "$out.err"; then
			die "shadow: the authorization for $3 was not reused"
		fi ;;
	esac
	echo "$1 shadow $2 $t $(($(signatures) - sig0)) $(($(pebble_requests) - req0)) - $(slept "$out.strace")" >>"$RES"
	LAST="$t s"
}

# one_uacme CASE ROUND NAME: the same for uacme.
one_uacme() {
	local out=$T/r.$1.uacme.$2 req0 t hooks waits
	req0=$(pebble_requests)
	# uacme links the old certificate to cert-<seconds>.pem: one per second.
	rm -f "$UC/$3"/cert-*.pem
	: >"$HOOKLOG"
	[ "$1" = full ] && www_start
	t=$(uacme_run "$out" -h "$T/uacme-hook.sh" ${FORCE:+-f} issue "$3") ||
		{ [ -n "$WWW_PID" ] && www_stop; cat "$out.err"; die "uacme issue $3 failed"; }
	[ -n "$WWW_PID" ] && www_stop
	hooks=$(grep -c "^begin http-01 $3\$" "$HOOKLOG")
	case "$1" in
	full) [ "$hooks" = 1 ] || die "uacme: $3 was not validated with http-01" ;;
	reuse) [ "$hooks" = 0 ] || die "uacme: the authorization for $3 was not reused" ;;
	esac
	# uacme -v logs every poll: polling the same object again means it slept
	# first (5 s when the CA sends no Retry-After; see the strace round).
	waits=$(awk '/finalizing order/ { p = "" } /polling .* status at/ { if ($0 == p) n++; p = $0 }
		END { print n + 0 }' "$out.err")
	echo "$1 uacme $2 $t - $(($(pebble_requests) - req0)) $waits $(slept "$out.strace")" >>"$RES"
	LAST="$t s"
	[ "$waits" = 0 ] || LAST="$LAST (slept in $waits poll(s))"
}

# rounds CASE N NAMEFMT: a warm-up round "w" (not recorded), then N
# rounds, then (with strace) one more round of each, recorded as round "x"
# for its sleep times only.  NAMEFMT gets the client (s or u) and the round.
rounds() {
	local c=$1 i name
	for i in w $(seq "$2") x; do
		[ "$i" = x ] && [ -z "$STRACE" ] && break
		# shellcheck disable=SC2059 # the format is ours
		name=$(printf "$3" s "$i")
		if [ "$i" = x ]; then SH_STRACE=1 one_shadow "$c" "$i" "$name"; else one_shadow "$c" "$i" "$name"; fi
		printf '#   %-5s round %s: shadow %s' "$c" "$i" "$LAST"
		# shellcheck disable=SC2059
		name=$(printf "$3" u "$i")
		if [ "$i" = x ]; then UC_STRACE=1 one_uacme "$c" "$i" "$name"; else one_uacme "$c" "$i" "$name"; fi
		printf ', uacme %s\n' "$LAST"
	done
	sed -i '/^[a-z]* [a-z]* w /d' "$RES"
}

# --- the vault's share ----------------------------------------------------------

metric_sums() { # prints: requests_count requests_sum hsm_sum audit_sum
	local d=$T/sh-bench
	curl -s --cacert "$VD_CA" --cert "$d/identity/cert.pem" --key "$d/identity/key.pem" \
		"$VD_API/metrics" | "$PY" -c '
import sys
v = {}
for l in sys.stdin:
    if l.startswith("#") or not l.strip():
        continue
    name, val = l.rsplit(" ", 1)
    v[name.split("{")[0]] = v.get(name.split("{")[0], 0) + float(val)
print(*(v.get(k, 0) for k in ("shadowvault_http_request_seconds_count",
      "shadowvault_http_request_seconds_sum", "shadowvault_hsm_sign_seconds_sum",
      "shadowvault_audit_commit_seconds_sum")))'
}

# Ten newOrder signing requests by curl as shadow bench (one new mutual-TLS
# connection each, as shadow makes them): client-side time next to vaultd's.
vault_share() {
	local d=$T/sh-bench i pl m0 m1 no
	no=$(curl -s --cacert "$PEBBLE_CA" "$PEBBLE_URL" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["newOrder"])')
	pl=$(printf '{"identifiers":[{"type":"dns","value":"probe.bench.test"}]}' | b64url)
	m0=$(metric_sums)
	for i in $(seq 10); do
		curl -s -o /dev/null -w '%{http_code} %{time_appconnect} %{time_total}\n' \
			--cacert "$VD_CA" --cert "$d/identity/cert.pem" --key "$d/identity/key.pem" \
			-H 'Content-Type: application/json' \
			--data "{\"url\":\"$no\",\"nonce\":\"probe$i-$RANDOM$RANDOM\",\"payload\":\"$pl\"}" \
			"$VD_API/v1/acme/accounts/reuse/sign"
	done >"$T/probe"
	m1=$(metric_sums)
	"$PY" - "$T/probe" "$m0" "$m1" <<'PY'
import statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
ok = [r for r in rows if r[0] == "200"]
if len(ok) != len(rows):
    print("#   vault probe: %d of %d signing requests failed" % (len(rows) - len(ok), len(rows)))
if ok:
    a = [float(x) for x in sys.argv[2].split()]
    b = [float(x) for x in sys.argv[3].split()]
    n = b[0] - a[0] or 1
    tls = st.median(float(r[1]) for r in ok) * 1e3
    tot = st.median(float(r[2]) for r in ok) * 1e3
    inside = (b[1] - a[1]) / n * 1e3
    print("#   one vault signature seen by a client (curl, median of %d): %.1f ms, of which TLS "
          "handshake %.1f ms;" % (len(ok), tot, tls))
    print("#   inside vaultd (GET /metrics): %.1f ms per request (HSM %.2f ms, audit commit %.2f ms);"
          % (inside, (b[2] - a[2]) / n * 1e3, (b[3] - a[3]) / n * 1e3))
    print("#   unaccounted (network, TLS records, waiting): %.1f ms per signature" %
          (tot - tls - inside))
PY
}

# --- the table ----------------------------------------------------------------

table() {
	"$PY" - "$RES" "$ROUNDS" "$TARGET" <<'PY'
import statistics as st, sys
res, rounds, target = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
UACME_WAIT = 5.0  # uacme's poll wait without Retry-After (the strace round shows it)
t, sig, req, waits, slp = {}, {}, {}, {}, {}
for l in open(res):
    c, who, rnd, secs, s, r, w, z = l.split()
    if rnd == "x":
        slp[(c, who)] = float(z) if z != "-" else None
        continue
    t.setdefault((c, who), []).append(float(secs))
    req.setdefault((c, who), []).append(int(r))
    if s != "-":
        sig.setdefault(c, []).append(int(s))
    if w != "-":
        waits.setdefault(c, []).append(int(w))
names = {"full": "full issuance (fresh http-01)", "reuse": "second order (authz reused)"}
cases = [c for c in ("full", "reuse") if (c, "shadow") in t and (c, "uacme") in t]
print("# medians of interleaved rounds (%s); target: shadow <= %.1f x uacme" % (
    ", ".join("%s %d" % (c, len(t[(c, "shadow")])) for c in cases), target))
print("%-30s %9s %9s %7s %7s  %s" % ("case", "shadow s", "uacme s", "ratio", "target", "result"))
verdict = []
for c in cases:
    s, u = st.median(t[(c, "shadow")]), st.median(t[(c, "uacme")])
    ok = s / u <= target
    verdict.append(ok)
    print("%-30s %9.3f %9.3f %7.2f %7.1f  %s" % (names[c], s, u, s / u, target,
                                                 "met" if ok else "NOT MET"))
print("# overall: target %s" % ("met for both cases" if verdict and all(verdict) else "NOT MET"))
# How steady the ratio is: each shadow round over the uacme round right after
# it (the verdict above stays the ratio of the medians).
for c in cases:
    pr = sorted(a / b for a, b in zip(t[(c, "shadow")], t[(c, "uacme")]) if b > 0)
    if len(pr) >= 4:
        print("#   %s: round-by-round ratios, median %.2f, middle half %.2f-%.2f" % (
            names[c], st.median(pr), pr[len(pr) // 4], pr[(3 * len(pr)) // 4]))
print()
print("%-30s %9s %8s %8s %13s %13s %12s" % ("per issuance (medians)", "vault sig", "CA req sh",
      "CA req ua", "slept sh (s)", "slept ua (s)", "ua slept in"))
for c in cases:
    sl = lambda w: "-" if slp.get((c, w)) is None else "%.3f" % slp[(c, w)]
    print("%-30s %9g %8g %8g %13s %13s %12s" % (
        names[c], st.median(sig[c]), st.median(req[(c, "shadow")]), st.median(req[(c, "uacme")]),
        sl("shadow"), sl("uacme"), "%d/%d rounds" % (sum(1 for w in waits[c] if w), len(waits[c]))))
print("# vault sig: signing decisions in the audit log per shadow issuance (uacme signs locally)")
print("# CA req: requests Pebble logged per issuance; slept: time in nanosleep in one extra")
print("# round under strace; ua slept in: uacme rounds that polled again after a %g s wait" % UACME_WAIT)
if cases and all(slp.get((c, "shadow")) is not None for c in cases):
    print()
    print("# without the clients' poll sleeps (derived: shadow median - its slept time;")
    print("# uacme median of wall - %g s x its waits in that round)" % UACME_WAIT)
    print("%-30s %9s %9s %7s" % ("case", "shadow s", "uacme s", "ratio"))
    for c in cases:
        s = st.median(t[(c, "shadow")]) - slp[(c, "shadow")]
        u = st.median(x - UACME_WAIT * w for x, w in zip(t[(c, "uacme")], waits[c]))
        print("%-30s %9.3f %9.3f %7.2f" % (names[c], s, u, s / u if u > 0 else float("nan")))
PY
}

# --- main -----------------------------------------------------------------------

START=$SECONDS
echo "# issuance: $ROUNDS full and $((4 * ROUNDS)) second-order round(s), build $SV_BIN, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# uacme $(dpkg-query -W -f '${Version}' uacme 2>/dev/null), pebble $(dpkg-query -W -f '${Version}' pebble 2>/dev/null)"
: >"$RES"
write_hook
vault_setup

ACCT=full
pebble_up full 0
echo "# full: Pebble $PEBBLE_URL, authz reuse 0, nonce reject 0"
rounds full "$ROUNDS" '%s%s.bench.test'
pebble_down

ACCT=reuse
pebble_up reuse 100
echo "# reuse: a new Pebble $PEBBLE_URL, authz reuse 100, nonce reject 0"
# Each client validates its name once (not timed); then every order reuses it.
one_shadow full prime reuse-s.bench.test
one_uacme full prime reuse-u.bench.test
sed -i '/ prime /d' "$RES"
FORCE=1 rounds reuse $((4 * ROUNDS)) 'reuse-%s.bench.test%.0s'
echo "# the vault's share of one signature:"
vault_share
pebble_down

vd_stop
"$VC" -c "$VCONF" -q audit verify >/dev/null 2>"$T/audit.err" || { cat "$T/audit.err"; die "audit verify failed"; }
echo
table
echo "# total $((SECONDS - START)) s; the machine is shared: only the ratios mean anything"
