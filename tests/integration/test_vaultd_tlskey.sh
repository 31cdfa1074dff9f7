#!/usr/bin/env bash
# The vault's TLS key kept in the token (tls.key is a pkcs11: URI): vaultctl
# init makes it there and has the shadow CA certify it; the network process,
# which holds no PKCS#11 session, gets every handshake signature from the key
# process, on a thread of its own.  Shadows enrol and are served as with a
# key file.  A handshake flood is held to limits.tls_signs_per_second, and a
# frame out of place on that channel ends the pair.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
vd_setup 'tls = { key = "pkcs11:token=shadowvault;object=vault.tls@v1"; };'
[ ! -e "$VDIR/state/tls/server.key" ] && pass "no TLS key file" || fail "a TLS key file was written"
printf 'shadows = { web1 = { accounts = [ "x" ]; names = [ "a.test" ]; }; };\n' >"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }
expect_rc 0 "key list" "$VC" -c "$VCONF" key list
grep -q '^vault.tls  *1  *ec-p256  *current' "$T/out" && pass "vault.tls is a key in the token" || { fail "vault.tls"; cat "$T/out"; }
# The served certificate's key is the token key's.
openssl s_client -connect "127.0.0.1:$VD_ENROLL_PORT" -CAfile "$VD_CA" </dev/null 2>/dev/null \
	| openssl x509 -noout -pubkey >"$T/served.pub"
"$VC" -c "$VCONF" --json key show vault.tls >"$T/k.json"
"$PY" - "$T/k.json" "$T/served.pub" <<'PY' && pass "the served TLS key is vault.tls in the token" || fail "served key differs"
import json, sys, base64
from jwcrypto import jwk
k = jwk.JWK(**json.load(open(sys.argv[1]))["jwk"])
served = jwk.JWK.from_pem(open(sys.argv[2], "rb").read())
assert k.thumbprint() == served.thumbprint()
PY
vd_enroll web1 && pass "a shadow enrols over TLS signed in the token" || fail "enrol"
vd_api web1 GET /v1/health
expect_code 200 "mutual TLS works with the key in the token"
for _ in $(seq 20); do vd_api web1 GET /v1/health; [ "$CODE" = 200 ] || break; done
expect_code 200 "20 more handshakes"
curl -s --cacert "$VD_CA" --cert "$T/sh-web1/identity/cert.pem" --key "$T/sh-web1/identity/key.pem" \
	"$VD_API/metrics" | grep -q 'shadowvault_http_requests_total{endpoint="health",status="200"}' \
	&& pass "metrics over the same" || fail "metrics"

# Handshakes are signed on the key process's thread vaultd-kp-tls, with a session of its own,
# not on its event loop (where they waited for whole batches of account signatures): that
# thread's CPU time grows with them.
KP=$(vd_child keyproc)
TID=$(grep -lx vaultd-kp-tls /proc/"$KP"/task/*/comm 2>/dev/null | head -1 | cut -d/ -f5)
if [ -n "$TID" ] && [ -r "/proc/$KP/task/$TID/schedstat" ]; then
	R0=$(cut -d' ' -f1 "/proc/$KP/task/$TID/schedstat")
	for _ in $(seq 10); do vd_api web1 GET /v1/health; done
	R1=$(cut -d' ' -f1 "/proc/$KP/task/$TID/schedstat")
	[ "$R1" -gt "$R0" ] && pass "10 handshakes signed on the thread vaultd-kp-tls ($(((R1 - R0) / 1000)) us of its CPU)" \
		|| fail "the TLS thread did not run: $R0 -> $R1"
else
	fail "no vaultd-kp-tls thread in the key process ($KP): $(cat /proc/"$KP"/task/*/comm | tr '\n' ' ')"
fi

# A handshake flood: every handshake costs a signature in the key process, so at most
# limits.tls_signs_per_second (here 5, bursts of 5) are made; the rest fail, and the
# service is back a second later.
vd_stop
vd_config 'tls = { key = "pkcs11:token=shadowvault;object=vault.tls@v1"; }; limits = { tls_signs_per_second = 5; };'
vd_start || { t_done; exit 1; }
T0=$(date +%s%N)
seq 30 | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' --cacert "$VD_CA" "$VD_ENROLL/v1/health" >"$T/flood.codes"
MS=$((($(date +%s%N) - T0) / 1000000))
OK=$(grep -c '^200$' "$T/flood.codes")
BAD=$(grep -c '^000$' "$T/flood.codes")
MAX=$((5 + 5 * (MS / 1000 + 1))) # the burst, and 5 a second for as long as it took
[ "$OK" -ge 1 ] && [ "$OK" -le "$MAX" ] && [ "$MAX" -lt 30 ] && [ $((OK + BAD)) = 30 ] \
	&& pass "30 handshakes in $MS ms: $OK served (at most $MAX), $BAD refused" || fail "handshake limit in $MS ms: $(sort "$T/flood.codes" | uniq -c | tr '\n' ' ')"
[ "$(grep -c "more TLS handshakes than limits.tls_signs_per_second" "$T/vaultd.log")" = 1 ] \
	&& pass "the limit is logged once" || fail "limit log lines: $(grep -c "tls_signs_per_second" "$T/vaultd.log")"
sleep 1.5
[ "$(vd_health)" = 200 ] && pass "handshakes again a second later" || fail "no handshake after the flood"
vd_stop

# The key process holds the limit too (bursts of twice as many), against a network process
# that asks for more: SV_FAULT=tls-nolimit turns netproc's own limit off.  Of 30 handshakes
# at most 10 + 5 a second are signed, and the key process says so once.
L0=$(wc -l <"$T/vaultd.log")
SV_FAULT=tls-nolimit vd_start || { t_done; exit 1; }
sleep 2.1 # the key process's bucket refills after vd_start's handshakes
T0=$(date +%s%N)
seq 30 | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' --cacert "$VD_CA" "$VD_ENROLL/v1/health" >"$T/flood2.codes"
MS=$((($(date +%s%N) - T0) / 1000000))
OK=$(grep -c '^200$' "$T/flood2.codes")
BAD=$(grep -c '^000$' "$T/flood2.codes")
MAX=$((10 + 5 * (MS / 1000 + 1)))
LOG=$(tail -n +"$((L0 + 1))" "$T/vaultd.log")
[ "$OK" -ge 10 ] && [ "$OK" -le "$MAX" ] && [ "$MAX" -lt 30 ] && [ $((OK + BAD)) = 30 ] \
	&& pass "netproc's limit off: 30 handshakes in $MS ms, $OK signed (10 to $MAX), $BAD refused by the key process" \
	|| fail "the key process's handshake limit in $MS ms: $(sort "$T/flood2.codes" | uniq -c | tr '\n' ' ')"
[ "$(grep -c "TLS handshake signatures asked for faster than limits.tls_signs_per_second" <<<"$LOG")" = 1 ] \
	&& ! grep -q "more TLS handshakes than limits.tls_signs_per_second" <<<"$LOG" \
	&& pass "the key process logs its refusals once; netproc refused nothing" \
	|| fail "handshake limit log lines: $(grep -c "tls_signs_per_second" <<<"$LOG")"
vd_stop

vd_start || { t_done; exit 1; }
# A rotation of the shadow CA reissues the server certificate for the key in the token: web1
# renews onto the new CA, the old version is destroyed, and the running netproc serves the
# new certificate, its handshakes still signed in the token.
expect_rc 0 "rotate the shadow CA" "$VC" -c "$VCONF" key rotate vault.shadow-ca
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r.key" -subj /CN=x -out "$T/r.csr" 2>/dev/null
vd_api web1 POST /v1/identity/renew "$(renew_body "$T/r.csr" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")"
expect_code 201 "web1 renews onto the new CA"
json_get "$T/body" "['certificate']" >"$T/sh-web1/identity/cert.pem" && cp "$T/r.key" "$T/sh-web1/identity/key.pem"
vd_api web1 GET /v1/identity
expect_code 200 "web1 uses its new certificate (retiring the old one)"
expect_rc 0 "destroy the old CA version" "$VC" -c "$VCONF" key destroy vault.shadow-ca --version 1 --yes
grep -q "the vault's TLS certificate was reissued by the current CA" "$T/out" && pass "the server certificate was reissued, it says" || { fail "not reissued"; cat "$T/out"; }
openssl s_client -connect "127.0.0.1:$VD_API_PORT" -CAfile "$VD_CA" -verify_return_error \
	-cert "$T/sh-web1/identity/cert.pem" -key "$T/sh-web1/identity/key.pem" </dev/null 2>/dev/null >"$T/s_client.txt"
grep -q "Verify return code: 0 (ok)" "$T/s_client.txt" && openssl x509 -noout -pubkey <"$T/s_client.txt" >"$T/served2.pub" \
	&& cmp -s "$T/served.pub" "$T/served2.pub" \
	&& pass "the new server certificate verifies under the new CA and holds the same token key" \
	|| { fail "served after reissue"; tail -5 "$T/s_client.txt"; }
vd_api web1 GET /v1/health
expect_code 200 "mutual TLS after the reissue, signed in the token"
# tls.key names version 1: a new version would not be served (test_vaultd_tlskey_rotation.sh
# rotates a key named without a version).
expect_rc 6 "tls renew --new-key with tls.key naming vault.tls@v1" "$VC" -c "$VCONF" tls renew --new-key
expect_err "names one version of its key: a new version would not be served" "says why"
expect_rc 0 "key list" "$VC" -c "$VCONF" key list
[ "$(grep -c '^vault.tls ' "$T/out")" = 1 ] && pass "no version staged" || { fail "vault.tls versions"; cat "$T/out"; }
vd_stop

# A frame out of place on the TLS channel (SV_FAULT=tls-garbage: netproc's 2nd request there
# is of another type) ends the pair: the handshake thread stops, the key process exits at its
# next tick, the supervisor starts a new pair.  Handshakes are counted, so vd_start's health
# loop is not used: a TCP connect (no handshake) says when vaultd listens.
tcp_up() { # PORT
	local _
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
SV_FAULT=tls-garbage "$VD" -c "$VCONF" -f >>"$T/vaultd.log" 2>&1 &
VD_PID=$!
T_PIDS="$T_PIDS $VD_PID"
tcp_up "$VD_ENROLL_PORT" || fail "vaultd does not listen"
C1=$(vd_health) # handshake 1: in order
KP=$(vd_child keyproc)
C2=$(vd_health) # handshake 2: out of place
NEW=
for _ in $(seq 50); do # no handshake here: the new pair counts from 1 again
	NEW=$(vd_child keyproc) && [ "$NEW" != "$KP" ] && break
	sleep 0.1
done
[ "$C1" != 000 ] && [ "$C2" = 000 ] && pass "the handshake whose request was out of place failed ($C1, then $C2)" \
	|| fail "handshakes with the fault: $C1, $C2"
grep -q "netproc: ipc: unexpected message on the TLS channel: ending the pair" "$T/vaultd.log" \
	&& [ -n "$NEW" ] && [ "$NEW" != "$KP" ] && tcp_up "$VD_ENROLL_PORT" && [ "$(vd_health)" = 200 ] \
	&& pass "the key process ended the pair; a new pair serves" \
	|| { fail "no new pair after the frame out of place (key process $KP, then ${NEW:-none})"; tail -5 "$T/vaultd.log"; }
vd_stop

# The other way round: a TLS-channel frame on the request channel (SV_FAULT=req-garbage:
# netproc's 2nd request goes out as IPC_TLS_SIGN) ends the pair too.  It used to be taken
# for an enrolment.
SV_FAULT=req-garbage "$VD" -c "$VCONF" -f >>"$T/vaultd.log" 2>&1 &
VD_PID=$!
T_PIDS="$T_PIDS $VD_PID"
tcp_up "$VD_ENROLL_PORT" || fail "vaultd does not listen"
C1=$(vd_health) # request 1: health, in order
KP=$(vd_child keyproc)
sleep 0.5       # past NP_HEALTH_TTL (0.25 s): netproc asks the key process again
C2=$(vd_health) # request 2: out of place
NEW=
for _ in $(seq 50); do
	NEW=$(vd_child keyproc) && [ "$NEW" != "$KP" ] && break
	sleep 0.1
done
[ "$C1" = 200 ] && [ "$C2" != 200 ] && grep -q "netproc: ipc: tls-sign message on the request channel: ending the pair" "$T/vaultd.log" \
	&& [ -n "$NEW" ] && [ "$NEW" != "$KP" ] \
	&& pass "a TLS-channel frame on the request channel ends the pair ($C1, then $C2)" \
	|| { fail "request-channel fault: $C1, $C2 (key process $KP, then ${NEW:-none})"; tail -5 "$T/vaultd.log"; }

vd_stop
vd_sanitizer_check
t_done
