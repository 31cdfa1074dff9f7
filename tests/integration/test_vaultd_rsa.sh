#!/usr/bin/env bash
# An RSA-2048 account key (RS256, certbot's default kind of account key): the
# key process splits batches of such signatures with its signer thread (a
# second PKCS#11 session), so this is where that thread signs; and the audit
# log rotated twice under that load.  A real vaultd
# with a SoftHSM2 token, an account registered at a real Pebble, concurrent
# clients (bench/signload and curl) with client certificates; every signature
# checked against the account JWK (python3-jwcrypto), one accepted by Pebble.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
SIGNLOAD=$(sv_bin signload) || { fail "no signload"; t_done; exit 1; }

pebble_up --nonce-reject 0

vd_setup
cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  web1 = { accounts = [ "big" ]; names = [ "master.test", "*.master.test" ];
           rate = { per_minute = 100000; burst = 100000; }; };
};
POL
vd_start || { t_done; exit 1; }
expect_rc 0 "an RSA-2048 key for the account" "$VC" -c "$VCONF" -q key create big --type rsa-2048
expect_rc 0 "account register at pebble (RS256)" "$VC" -c "$VCONF" account register big \
	--directory "$PEBBLE_URL" --key big --ca-file "$PEBBLE_CA" --email admin@master.test --agree-tos
vd_enroll web1 && pass "enrol web1" || fail "enrol web1"
curl -s --cacert "$PEBBLE_CA" "$PEBBLE_URL" >"$T/dir.json"
NEW_ORDER=$(json_get "$T/dir.json" '["newOrder"]')
NEW_NONCE=$(json_get "$T/dir.json" '["newNonce"]')
ORDER='{"identifiers":[{"type":"dns","value":"www.master.test"}]}'
vd_api web1 GET /v1/acme/accounts/big
expect_code 200 "account information"
cp "$T/body" "$T/acct.json"

# Load from 8 clients: batches of two and more, split between the two sessions.  signload
# fails on any answer but 200 with a JWS.  (Kept short and light: ctest runs another test beside.)
ID=$T/sh-web1/identity
"$SIGNLOAD" --url "$VD_API/v1/acme/accounts/big/sign" --cacert "$VD_CA" --cert "$ID/cert.pem" --key "$ID/key.pem" \
	--acme-url "$NEW_ORDER" --payload "$ORDER" --clients 8 --seconds 2 --warmup 0.3 --nonce-prefix load \
	>"$T/load.out" 2>&1 && pass "8 clients for 2 s: every answer a JWS ($(grep -o "rate=[0-9.]*" "$T/load.out" | cut -d= -f2) sig/s)" ||
	{ fail "signload"; tail -5 "$T/load.out"; }
curl -s --cacert "$VD_CA" --cert "$ID/cert.pem" --key "$ID/key.pem" "$VD_API/metrics" >"$T/metrics"
SECOND=$(sed -n 's/^shadowvault_signer_thread_signatures_total \([0-9]*\)$/\1/p' "$T/metrics")
if [ "$(nproc)" -gt 1 ]; then
	[ "${SECOND:-0}" -gt 0 ] && pass "the signer thread made $SECOND of the signatures" ||
		fail "no signature by the signer thread: $(grep signer_thread "$T/metrics")"
else # one CPU: vaultd starts no signer thread (vaultd(8))
	[ "${SECOND:-0}" = 0 ] && pass "one CPU: no signer thread, every signature on one session" ||
		fail "a signer thread on one CPU: $SECOND signatures"
fi

# 16 at once: each answer verifies with the account's JWK, whichever session made it.
seq 16 | xargs -P 16 -I{} sh -c 'curl -s -o "$1/par{}.json" --cacert "$2" --cert "$3/cert.pem" --key "$3/key.pem" \
	-H "Content-Type: application/json" --data-binary "{\"url\":\"$4\",\"nonce\":\"par{}\",\"payload\":\"$5\"}" \
	"$6/v1/acme/accounts/big/sign"' _ "$T" "$VD_CA" "$ID" "$NEW_ORDER" "$(printf '%s' "$ORDER" | b64url)" "$VD_API"
"$PY" - "$T/acct.json" "$T" "$NEW_ORDER" <<'PY' >"$T/par.out" 2>&1 && pass "16 concurrent RS256 signatures verify (jwcrypto)" || { fail "concurrent signatures"; cat "$T/par.out"; }
import json, sys
from jwcrypto import jwk, jws
acct = json.load(open(sys.argv[1]))
key = jwk.JWK(**acct["jwk"])
assert acct["alg"] == "RS256", acct["alg"]
for i in range(1, 17):
    t = jws.JWS(); t.deserialize(open("%s/par%d.json" % (sys.argv[2], i)).read()); t.verify(key)
    h = json.loads(t.objects["protected"])
    assert h["alg"] == "RS256" and h["nonce"] == "par%d" % i and h["url"] == sys.argv[3], h
PY

# The CA takes one: a fresh nonce, signed through the vault, posted to Pebble.
N=$(curl -s -I --cacert "$PEBBLE_CA" "$NEW_NONCE" | tr -d '\r' | sed -n 's/^[Rr]eplay-[Nn]once: //p')
vd_sign web1 big "$NEW_ORDER" "$N" "$ORDER"
expect_code 200 "newOrder signed with the RSA key"
CODE=$(curl -s -o "$T/order.json" -w '%{http_code}' --cacert "$PEBBLE_CA" \
	-H 'Content-Type: application/jose+json' --data-binary @"$T/body" "$NEW_ORDER")
[ "$CODE" = 201 ] && pass "Pebble accepts the RS256 JWS (order created)" || { fail "Pebble refused: $CODE"; cat "$T/order.json"; }
vd_sign web1 big "$NEW_ORDER" par3 "$ORDER"
expect_code 403 "a nonce signed in a split batch is not signed again"

# The audit log rotated twice under that load: no request fails, and the three logs chain.
"$SIGNLOAD" --url "$VD_API/v1/acme/accounts/big/sign" --cacert "$VD_CA" --cert "$ID/cert.pem" --key "$ID/key.pem" \
	--acme-url "$NEW_ORDER" --payload "$ORDER" --clients 4 --seconds 3 --warmup 0.2 --nonce-prefix rot \
	>"$T/rotload.out" 2>&1 &
LOAD=$!
T_PIDS="$T_PIDS $LOAD"
sleep 1
"$VC" -c "$VCONF" -q audit rotate && pass "rotated under load" || fail "audit rotate under load"
sleep 1
"$VC" -c "$VCONF" -q audit rotate && pass "rotated under load again" || fail "second audit rotate under load"
wait "$LOAD" && pass "the load went on: every answer a JWS ($(grep -o "n=[0-9]*" "$T/rotload.out" | head -1))" ||
	{ fail "signload during the rotations"; tail -5 "$T/rotload.out"; }
vd_stop
expect_rc 0 "audit log verifies" "$VC" -c "$VCONF" audit verify
ARCHIVES=("$VDIR"/state/audit.log.*[0-9])
[ "${#ARCHIVES[@]}" = 2 ] && pass "two archives" || fail "archives: ${ARCHIVES[*]}"
expect_rc 0 "the three logs verify as one chain" "$VC" -c "$VCONF" audit verify "${ARCHIVES[@]}" "$VDIR/state/audit.log"
grep -q '^chain: 3 logs chained, seq 1 to ' "$T/out" && pass "$(grep '^chain' "$T/out")" || fail "chain: $(cat "$T/out")"

# A signature the second session fails is made again on the first: nobody sees the failure.
# (SV_FAULT=signer-fails: every signature on the signer thread fails.)
if [ "$(nproc)" -gt 1 ]; then
	SV_FAULT=signer-fails vd_start || { t_done; exit 1; }
	"$SIGNLOAD" --url "$VD_API/v1/acme/accounts/big/sign" --cacert "$VD_CA" --cert "$ID/cert.pem" --key "$ID/key.pem" \
		--acme-url "$NEW_ORDER" --payload "$ORDER" --clients 8 --seconds 2 --warmup 0.3 --nonce-prefix fault \
		>"$T/fault.out" 2>&1 && pass "second session failing: still every answer a JWS" ||
		{ fail "signload with the second session failing"; tail -5 "$T/fault.out"; }
	RETRIED=$(grep -c "on the second session: fault injected (SV_FAULT=signer-fails); signing on the first" "$T/vaultd.log")
	curl -s --cacert "$VD_CA" --cert "$ID/cert.pem" --key "$ID/key.pem" "$VD_API/metrics" >"$T/metrics"
	SECOND=$(sed -n 's/^shadowvault_signer_thread_signatures_total \([0-9]*\)$/\1/p' "$T/metrics")
	[ "$RETRIED" -gt 0 ] && [ "${SECOND:-0}" = 0 ] && pass "$RETRIED signatures retried on the first session, none counted as the thread's" ||
		fail "fallback: $RETRIED retried, $SECOND counted"
	vd_stop
	expect_rc 0 "audit log verifies after the retries" "$VC" -c "$VCONF" audit verify
fi
vd_sanitizer_check
t_done
