#!/usr/bin/env bash
# The vault's TLS key in the token rotates: with tls.key naming the key alone
# (object=vault.tls, no version), `vaultctl tls renew --new-key` makes a new version of
# vault.tls, has the shadow CA certify it, and the running vault serves it at once; the old
# version is retired, then destroyed by `vaultctl key destroy vault.tls`.  A crash between
# the certificate and the promotion is finished at the next start; a failed renewal leaves
# no staged version behind.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
# The handshake limit (test_vaultd_tlskey.sh tests it) is raised: here clients connect as fast as they can.
vd_setup 'tls = { key = "pkcs11:token=shadowvault;object=vault.tls"; }; limits = { tls_signs_per_second = 5000; };'
TLS=$VDIR/state/tls/server.pem
[ ! -e "$VDIR/state/tls/server.key" ] && pass "init made no TLS key file" || fail "a TLS key file was written"

# served PORT: the public key the running vault presents on PORT, verified against the CA.
served() {
	openssl s_client -connect "127.0.0.1:$1" -CAfile "$VD_CA" -verify_return_error </dev/null 2>/dev/null \
		| openssl x509 -noout -pubkey 2>/dev/null
}
# served_is PORT PEM: PORT serves that key within 3 s.  vaultctl answers once the key process
# has handed the certificate to netproc, which takes it at its next turn of the loop.
served_is() {
	local _
	for _ in $(seq 30); do
		[ "$(served "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# token_pub VERSION: the public key of that version of vault.tls, as PEM.
token_pub() {
	"$VC" -c "$VCONF" --json key show vault.tls --version "$1" >"$T/k.json" || return 1
	"$PY" - "$T/k.json" <<'PY'
import json, sys
from jwcrypto import jwk
print(jwk.JWK(**json.load(open(sys.argv[1]))["jwk"]).export_to_pem().decode().strip())
PY
}
# states: "v1=STATE v2=STATE ..." of vault.tls, from key list.
states() {
	"$VC" -c "$VCONF" key list | awk '$1 == "vault.tls" { printf "v%s=%s ", $2, $4 }' | sed 's/ $//'
}
# handshakes N: N mutual-TLS requests as web1, all 200.
handshakes() {
	local _
	for _ in $(seq "$1"); do
		vd_api web1 GET /v1/health
		[ "$CODE" = 200 ] || return 1
	done
}

printf 'shadows = { web1 = { accounts = [ "x" ]; names = [ "a.test" ]; }; };\n' >"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }
[ "$(states)" = "v1=current" ] && pass "vault.tls v1 in the token, named without a version" || fail "key list: $(states)"
V1=$(token_pub 1)
[ -n "$V1" ] && [ "$(served "$VD_API_PORT")" = "$V1" ] && pass "the served key is vault.tls@v1" || fail "served key is not v1"
vd_enroll web1 && pass "a shadow enrols" || fail "enrol"
handshakes 3 && pass "mutual TLS, signed in the token" || fail "mutual TLS: $CODE"

# The rotation: served at once on both ports, no restart; shadows go on (they trust the CA).
expect_rc 0 "vaultctl tls renew --new-key" "$VC" -c "$VCONF" tls renew --new-key
grep -q "TLS certificate renewed for a new key, vault.tls@v2: serial" "$T/out" && pass "it says so, naming the version" || { fail "output"; cat "$T/out"; }
[ "$(states)" = "v1=retired v2=current" ] && pass "v2 is current, v1 retired" || fail "key list: $(states)"
V2=$(token_pub 2)
[ -n "$V2" ] && [ "$V2" != "$V1" ] && served_is "$VD_API_PORT" "$V2" && served_is "$VD_ENROLL_PORT" "$V2" \
	&& pass "both ports serve vault.tls@v2, verified under the shadow CA" || fail "served after the rotation"
[ "$(openssl x509 -in "$TLS" -noout -pubkey)" = "$V2" ] && pass "the certificate file holds v2" || fail "certificate file"
handshakes 20 && pass "20 mutual-TLS handshakes on the new key" || fail "mutual TLS after the rotation: $CODE"
expect_rc 0 "vaultctl status" "$VC" -c "$VCONF" status
grep -q '^tls_key  *vault.tls@v2$' "$T/out" && pass "status names the TLS key version in use" || { fail "status"; cat "$T/out"; }
grep -q '"op":"tls.renew","new_key":true,"uid":[0-9]*,"decision":"done","result":{"key":"vault.tls@v2","serial":"[0-9a-f]*","not_after":[0-9]*}' "$VDIR/state/audit.log" \
	&& pass "audited as done, with new_key and the version, serial and expiry it made" \
	|| { fail "no audit record"; grep tls.renew "$VDIR/state/audit.log"; }

expect_rc 2 "key rotate vault.tls" "$VC" -c "$VCONF" key rotate vault.tls
expect_err "vault.tls rotates with the TLS certificate: vaultctl tls renew --new-key" "points to tls renew --new-key"
expect_rc 7 "the current version cannot be destroyed" "$VC" -c "$VCONF" key destroy vault.tls --version 2 --yes
expect_err "vault.tls@v2 is the vault's TLS key: rotate it first" "says why"
expect_rc 0 "key destroy vault.tls --version 1" "$VC" -c "$VCONF" key destroy vault.tls --version 1 --yes
[ "$(states)" = "v1=destroyed v2=current" ] && pass "v1 destroyed" || fail "key list: $(states)"
handshakes 5 && pass "handshakes go on after the destroy" || fail "mutual TLS after the destroy: $CODE"
vd_stop
vd_start || { t_done; exit 1; }
[ "$(served "$VD_API_PORT")" = "$V2" ] && handshakes 3 && pass "after a restart: v2, mutual TLS" || fail "after a restart"

# A crash after the new certificate, before the promotion (SV_FAULT=tls-token-promote).  The
# running vault goes on serving v2, signed by the handshake thread that now holds v2 and v3
# (each request names its key); the next start makes v3 current.
vd_stop
vd_start_fault tls-token-promote || { fail "vaultd did not start (SV_FAULT=tls-token-promote)"; t_done; exit 1; }
expect_rc 1 "a rotation stopped before its promotion (fault)" "$VC" -c "$VCONF" tls renew --new-key
expect_err "holds vault.tls@v3, made current at the next start" "says what is left"
[ "$(states)" = "v1=destroyed v2=current v3=pending" ] && pass "v3 is staged" || fail "key list: $(states)"
V3=$(token_pub 3)
[ "$(openssl x509 -in "$TLS" -noout -pubkey)" = "$V3" ] && [ "$(served "$VD_API_PORT")" = "$V2" ] \
	&& handshakes 5 && pass "the file holds v3; the running vault still serves v2, handshakes signed" \
	|| fail "after the fault: served $(served "$VD_API_PORT" | tail -2 | head -1)"
vd_crash
vd_start || { t_done; exit 1; }
grep -q "finished the TLS key rotation a crash cut short: vault.tls@v3 is current" "$T/vaultd.log" \
	&& pass "the start finishes it, and says so" || fail "no recovery message"
[ "$(states)" = "v1=destroyed v2=retired v3=current" ] && [ "$(served "$VD_API_PORT")" = "$V3" ] && handshakes 3 \
	&& pass "v3 current and served; mutual TLS" || fail "after the recovery: $(states)"
grep -q '"op":"key.promote","name":"vault.tls","version":3,"by":"vaultd"' "$VDIR/state/audit.log" \
	&& pass "the promotion is audited" || fail "no key.promote record"

# A renewal that fails before its certificate (here: a certificate from elsewhere in
# tls.cert) leaves no staged version behind, and the running vault as it was.
cp "$TLS" "$T/tls-keep.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" -subj /CN=other \
	-days 30 -out "$TLS" 2>/dev/null
expect_rc 6 "tls renew --new-key with a certificate from elsewhere" "$VC" -c "$VCONF" tls renew --new-key
expect_err "not issued by the shadow CA" "says why"
[ "$(states)" = "v1=destroyed v2=retired v3=current v4=destroyed" ] && pass "the staged v4 is destroyed again" \
	|| fail "key list: $(states)"
[ "$(served "$VD_API_PORT")" = "$V3" ] && handshakes 3 && pass "the vault still serves v3" || fail "after the failed renewal"
# Started with that certificate, the network process serves it, and the key process refuses
# to sign for a key it does not hold: every handshake fails, and the log says why, once.
vd_stop
L0=$(wc -l <"$T/vaultd.log")
"$VD" -c "$VCONF" -f >>"$T/vaultd.log" 2>&1 &
VD_PID=$!
T_PIDS="$T_PIDS $VD_PID"
for _ in $(seq 100); do
	tail -n +"$((L0 + 1))" "$T/vaultd.log" | grep -q "ready: token" && break
	sleep 0.1
done
C=$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{http_code} ' -k "$VD_ENROLL/v1/health"; done)
LOG=$(tail -n +"$((L0 + 1))" "$T/vaultd.log")
[ "$C" = "000 000 000 " ] && [ "$(grep -c "TLS handshakes fail: the certificate netproc serves is not for the TLS key in the token" <<<"$LOG")" = 1 ] \
	&& pass "a certificate for another key: handshakes fail, logged once" || { fail "foreign certificate: $C"; tail -5 <<<"$LOG"; }
vd_stop
cp "$T/tls-keep.pem" "$TLS"
vd_start || { t_done; exit 1; }
expect_rc 0 "the next rotation" "$VC" -c "$VCONF" tls renew --new-key
[ "$(states)" = "v1=destroyed v2=retired v3=retired v4=destroyed v5=current" ] \
	&& served_is "$VD_API_PORT" "$(token_pub 5)" && handshakes 3 \
	&& pass "v5 current and served" || fail "key list: $(states)"

# Rotations while shadows keep connecting: every handshake, before, during and after each
# hand-over, is signed by a key the thread holds (4 clients making new connections).
CLIENTS=
for c in 1 2 3 4; do
	(for _ in $(seq 60); do
		curl -s -o /dev/null -w '%{http_code}\n' --cacert "$VD_CA" --cert "$T/sh-web1/identity/cert.pem" \
			--key "$T/sh-web1/identity/key.pem" "$VD_API/v1/health"
	done >"$T/during.$c") &
	CLIENTS="$CLIENTS $!"
done
sleep 0.3
for _ in 1 2 3; do "$VC" -c "$VCONF" tls renew --new-key >/dev/null || fail "a rotation under load"; done
# shellcheck disable=SC2086 # the clients' PIDs (not vaultd's: it runs in the background too)
wait $CLIENTS
N=$(cat "$T"/during.* | wc -l)
BAD=$(cat "$T"/during.* | grep -vc '^200$')
[ "$N" = 240 ] && [ "$BAD" = 0 ] && pass "240 new connections across 3 rotations: all served" \
	|| fail "during rotations: $BAD of $N not served ($(cat "$T"/during.* | sort | uniq -c | tr '\n' ' '))"
served_is "$VD_API_PORT" "$(token_pub 8)" && pass "v8 served after them" || fail "v8"

# One more, then a restart.
expect_rc 0 "another rotation" "$VC" -c "$VCONF" tls renew --new-key
served_is "$VD_API_PORT" "$(token_pub 9)" && handshakes 3 && pass "v9 served" || fail "v9"
vd_stop
vd_start || { t_done; exit 1; }
[ "$(served "$VD_API_PORT")" = "$(token_pub 9)" ] && handshakes 3 && pass "v9 after a restart" || fail "v9 after a restart"
vd_stop
expect_rc 0 "vaultctl audit verify" "$VC" -c "$VCONF" audit verify

# A malformed tls.key, or one naming no key: vaultd says which, and does not start.
vd_config 'tls = { key = "pkcs11:token=shadowvault;object=vault.tls@vx"; };'
expect_rc 2 "tls.key naming a malformed version" timeout 20 "$VD" -c "$VCONF" -f
expect_err "vault.tls@vx: the object attribute must be a vault key name, NAME (its current version) or NAME@vN" \
	"says what it may be"
vd_config 'tls = { key = "pkcs11:token=shadowvault;object=nosuch"; };'
expect_rc 5 "tls.key naming no key" timeout 20 "$VD" -c "$VCONF" -f
expect_err 'tls.key: no key named "nosuch"' "says which"
vd_sanitizer_check
t_done
