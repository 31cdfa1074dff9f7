#!/usr/bin/env bash
# The MASTER/SHADOW scenario end to end, against a real Pebble (with
# pebble-challtestsrv as DNS on loopback), a real vaultd and SoftHSM2.
#  - shadow MASTER solves http-01 for master.test with its own responder;
#  - shadow SHADOW, enrolled separately and allowed master.test, then gets a
#    certificate for master.test with no challenge responder at all (the
#    account's authorization is reused, PEBBLE_AUTHZREUSE=100);
#  - a third shadow not allowed master.test is refused by the vault;
#  - with reuse off (0), SHADOW must and can validate on its own;
#  - the "hosts file" check: SHADOW's certificate served on 127.0.0.1 is
#    trusted by curl with Pebble's root, and not without it.
# Pebble rejects 25% of good nonces throughout: every badNonce retry is
# signed again by the vault.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
PEB=$(dirname "$0")/pebble.sh
cleanup() {
	bash "$PEB" stop "$T/pebble" >/dev/null 2>&1
	bash "$PEB" stop "$T/pebble0" >/dev/null 2>&1
	t_cleanup
}
trap cleanup EXIT
bash "$PEB" start "$T/pebble" --authz-reuse 100 --nonce-reject 25 >"$T/p.out" 2>&1 || { cat "$T/p.out"; fail "pebble"; t_done; exit 1; }
. "$T/pebble/env"
P100_URL=$PEBBLE_URL P100_CA=$PEBBLE_CA P100_ROOT=$PEBBLE_ROOT HTTP01=$PEBBLE_HTTP01_PORT

vd_setup
cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  master = { accounts = [ "le" ]; names = [ "master.test" ]; };
  shadow = { accounts = [ "le", "le0" ]; names = [ "master.test" ]; };
  third  = { accounts = [ "le" ]; names = [ "third.test" ]; };
};
POL
vd_start || { t_done; exit 1; }
"$VC" -c "$VCONF" -q key create le --type ec-p256
expect_rc 0 "register the account at pebble" "$VC" -c "$VCONF" -q account register le \
	--directory "$P100_URL" --key le --ca-file "$P100_CA" --agree-tos
for s in master shadow third; do vd_enroll "$s" && pass "enrol $s" || fail "enrol $s"; done
issue() { # NAME SHADOW-ARGS...: shadow issue as shadow NAME, output in $T/out, $T/err
	local who=$1
	shift
	run "$SH" --state-dir "$T/sh-$who" issue --account le --acme-ca-file "$P100_CA" --timeout 60 "$@"
}

# MASTER validates with its own http-01 responder.
issue master master.test --http-port "$HTTP01" --http-address 127.0.0.1
[ "$RC" = 0 ] && pass "MASTER: issued with its own http-01 responder" || { fail "MASTER issue: $RC"; cat "$T/err"; }
grep -q "validating master.test (http-01)" "$T/err" && pass "MASTER really validated" || fail "MASTER progress"
ML=$T/sh-master/live/master.test
openssl verify -CAfile "$P100_ROOT" -untrusted "$ML/chain.pem" "$ML/cert.pem" >/dev/null 2>&1 \
	&& pass "MASTER's certificate chains to Pebble's root" || fail "MASTER chain"

# SHADOW: the account's authorization is reused; no responder at all (dns-01 without a hook would fail).
issue shadow master.test --challenge dns-01
[ "$RC" = 0 ] && pass "SHADOW: issued with no challenge responder (authz reused)" || { fail "SHADOW issue: $RC"; cat "$T/err"; }
grep -q "^finalizing" "$T/err" && ! grep -q validating "$T/err" && pass "SHADOW's order needed no validation" \
	|| { fail "SHADOW progress"; cat "$T/err"; }
SL=$T/sh-shadow/live/master.test
for f in cert chain fullchain privkey; do [ -s "$SL/$f.pem" ] || fail "missing $f.pem"; done
[ "$(stat -c %a "$SL/privkey.pem")" = 600 ] && pass "privkey.pem is 0600" || fail "privkey mode"
[ "$(cat "$SL/cert.pem" "$SL/chain.pem")" = "$(cat "$SL/fullchain.pem")" ] && pass "fullchain = cert + chain" || fail "fullchain"
[ "$(openssl x509 -in "$SL/cert.pem" -noout -pubkey)" = "$(openssl pkey -in "$SL/privkey.pem" -pubout)" ] \
	&& pass "the certificate is for the key made on SHADOW" || fail "key mismatch"
! cmp -s "$SL/privkey.pem" "$ML/privkey.pem" && pass "SHADOW and MASTER have their own keys" || fail "same key"

# A third shadow, not allowed master.test, gets nothing.
issue third master.test --challenge dns-01
[ "$RC" = 7 ] && pass "third shadow refused by the vault (exit 7)" || { fail "third: exit $RC"; cat "$T/err"; }
grep -q 'name "master.test" is not in the policy of shadow third' "$T/err" && pass "the refusal says why" || { fail "third: message"; cat "$T/err"; }
[ ! -e "$T/sh-third/live/master.test" ] && pass "third shadow got no certificate" || fail "third has a lineage"

# With reuse off, SHADOW must and can validate on its own (a second account at a second Pebble).
bash "$PEB" start "$T/pebble0" --authz-reuse 0 --nonce-reject 25 >"$T/p0.out" 2>&1 || { cat "$T/p0.out"; fail "pebble0"; }
. "$T/pebble0/env"
"$VC" -c "$VCONF" -q key create le0 --type ec-p256
expect_rc 0 "register a second account (reuse off)" "$VC" -c "$VCONF" -q account register le0 \
	--directory "$PEBBLE_URL" --key le0 --ca-file "$PEBBLE_CA" --agree-tos
run "$SH" --state-dir "$T/sh-shadow" issue master.test --account le0 --acme-ca-file "$PEBBLE_CA" \
	--http-port "$PEBBLE_HTTP01_PORT" --http-address 127.0.0.1 --out "$T/shadow-reuse0" --timeout 60
[ "$RC" = 0 ] && pass "reuse off: SHADOW validates on its own and gets a certificate" || { fail "reuse off: $RC"; cat "$T/err"; }
grep -q "validating master.test (http-01)" "$T/err" && pass "reuse off: it really validated" || fail "reuse off progress"

# The hosts-file check: SHADOW's certificate served for master.test on loopback.
PORT=$(free_port)
openssl s_server -accept "127.0.0.1:$PORT" -cert "$SL/cert.pem" -key "$SL/privkey.pem" \
	-cert_chain "$SL/chain.pem" -www -quiet >/dev/null 2>&1 &
SRV=$!
T_PIDS="$T_PIDS $SRV"
for _ in $(seq 50); do curl -s -k -o /dev/null "https://127.0.0.1:$PORT/" && break; sleep 0.1; done
run curl -sS --resolve "master.test:$PORT:127.0.0.1" --cacert "$P100_ROOT" "https://master.test:$PORT/"
[ "$RC" = 0 ] && pass "curl --resolve master.test with Pebble's root trusts SHADOW's certificate" || { fail "hosts check: curl $RC"; cat "$T/err"; }
run curl -sS --resolve "master.test:$PORT:127.0.0.1" --cacert "$VD_CA" "https://master.test:$PORT/"
[ "$RC" != 0 ] && pass "and fails without Pebble's root (curl $RC)" || fail "trusted without the root"
kill "$SRV"

# Every JWS the shadows used was signed by the vault, and audited.
vd_stop
grep -c '"type":"sign".*"decision":"allow"' "$VDIR/state/audit.log" >"$T/n"
[ "$(cat "$T/n")" -ge 10 ] && pass "the vault signed and audited $(cat "$T/n") requests" || fail "audit count $(cat "$T/n")"
expect_rc 0 "audit log intact" "$VC" -c "$VCONF" audit verify
vd_sanitizer_check
t_done
