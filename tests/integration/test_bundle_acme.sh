#!/usr/bin/env bash
# A certificate whose key stays in the vault, issued by our own ACME client
# and handed out as sealed bundles, end to end against a real Pebble, a real
# vaultd and SoftHSM2:
#  - an exportable key in the vault, `vaultctl cert csr` (signed in the token);
#  - shadow "issuer" runs `shadow issue --csr` through the vault (real http-01
#    with its own responder): cert, chain and fullchain for the CSR's key, no
#    privkey.pem, the CSR's absolute path in the renewal record; its deploy
#    hook runs `vaultctl cert import` (sequence 1);
#  - shadow "web2", whose policy lists the bundle, runs `shadow fetch`: the
#    key it installs is the Pebble-issued certificate's; `shadow status`
#    lists the bundle (text and JSON);
#  - `shadow renew --force` reads the same CSR again, the hook imports
#    sequence 2, and `shadow fetch` installs it;
#  - refusals: a CSR whose signature is bad, --csr with --key-type, names that
#    are not the CSR's, a missing CSR; at renewal a CSR gone, naming other
#    names, or holding another key.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
pebble_up --authz-reuse 100 --nonce-reject 10

vd_setup
cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  issuer = { accounts = [ "le" ]; names = [ "www.bundle.test", "bundle.test" ]; };
  web2   = { accounts = [ ]; names = [ "web2.test" ]; bundles = [ "www" ]; };
};
POL
vd_start || { t_done; exit 1; }
"$VC" -c "$VCONF" -q key create le --type ec-p256
expect_rc 0 "register the account at pebble" "$VC" -c "$VCONF" -q account register le \
	--directory "$PEBBLE_URL" --key le --ca-file "$PEBBLE_CA" --agree-tos
expect_rc 0 "an exportable key in the vault" "$VC" -c "$VCONF" -q key create www --type ec-p256 --exportable
expect_rc 0 "vaultctl cert csr" "$VC" -c "$VCONF" cert csr www --dns www.bundle.test --dns bundle.test
cp "$T/out" "$T/www.csr"
for s in issuer web2; do vd_enroll "$s" && pass "enrol $s" || fail "enrol $s"; done

ISS=$T/sh-issuer
L=$ISS/live/www.bundle.test
HOOK="\"$VC\" -c \"$VCONF\" cert import www \"\$RENEWED_LINEAGE/fullchain.pem\" >>\"$T/hook.out\" 2>&1"
issue() { # ARGS...: shadow issue as the issuer, from $T (the CSR named relative)
	(cd "$T" && "$SH" --state-dir "$ISS" issue --account le --acme-ca-file "$PEBBLE_CA" --timeout 60 \
		--http-port "$PEBBLE_HTTP01_PORT" --http-address 127.0.0.1 "$@") >"$T/out" 2>"$T/err"
	RC=$?
}
csr_pub() { openssl req -in "$1" -noout -pubkey; }
cert_pub() { openssl x509 -in "$1" -noout -pubkey; }

# Refusals, before anything is ordered.
openssl req -in "$T/www.csr" -outform DER -out "$T/www.der"
"$PY" -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[-1] ^= 1; open(sys.argv[2], "wb").write(d)' \
	"$T/www.der" "$T/bad.der"
issue --csr bad.der
[ "$RC" = 2 ] && pass "a CSR whose signature is bad: exit 2" || { fail "bad CSR: exit $RC"; cat "$T/err"; }
expect_err "$T/bad.der: the CSR's signature does not verify with its own key" "the refusal names the file and says why"
issue --csr www.csr --key-type ec-p384
[ "$RC" = 2 ] && pass "--csr with --key-type: exit 2" || { fail "--key-type: exit $RC"; cat "$T/err"; }
expect_err "--key-type cannot be used with --csr" "says so"
issue other.bundle.test --csr www.csr
[ "$RC" = 2 ] && pass "a name the CSR does not have: exit 2" || { fail "other name: exit $RC"; cat "$T/err"; }
expect_err "the names given (other.bundle.test) are not those of the CSR $T/www.csr (www.bundle.test bundle.test)" \
	"the refusal lists both sets"
issue www.bundle.test --csr www.csr
[ "$RC" = 2 ] && grep -q "are not those of the CSR" "$T/err" && pass "fewer names than the CSR: exit 2" ||
	{ fail "fewer names: exit $RC"; cat "$T/err"; }
issue --csr nothere.csr
[ "$RC" = 5 ] && grep -q "nothere.csr: No such file" "$T/err" && pass "a missing CSR: exit 5, named" ||
	{ fail "missing CSR: exit $RC"; cat "$T/err"; }
[ ! -e "$ISS/live" ] && [ ! -e "$ISS/archive" ] && pass "nothing installed or staged by the refusals" ||
	fail "the refusals left files: $(ls "$ISS")"

# The issuance: real http-01, the CSR as is, the deploy hook imports into the vault.
issue --csr www.csr --deploy-hook "$HOOK"
[ "$RC" = 0 ] && pass "shadow issue --csr through the vault" || { fail "issue --csr: exit $RC"; cat "$T/err"; }
grep -q "validating www.bundle.test (http-01)" "$T/err" && grep -q "validating bundle.test (http-01)" "$T/err" &&
	pass "both names really validated (http-01)" || { fail "validation progress"; cat "$T/err"; }
expect_out "issued www.bundle.test: $L/" "the lineage is named by the CSR's first name"
for f in cert chain fullchain; do [ -s "$L/$f.pem" ] || fail "missing $f.pem"; done
[ ! -e "$L/privkey.pem" ] && [ -z "$(find "$ISS/archive" -name 'privkey*')" ] &&
	pass "no privkey.pem: the key is in the vault" || fail "a privkey.pem was written"
[ "$(cert_pub "$L/cert.pem")" = "$(csr_pub "$T/www.csr")" ] && pass "the certificate holds the CSR's key" ||
	fail "certificate key is not the CSR's"
openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$L/chain.pem" "$L/cert.pem" >/dev/null 2>&1 &&
	pass "it chains to Pebble's root" || fail "chain"
openssl x509 -in "$L/cert.pem" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:www.bundle.test, DNS:bundle.test" &&
	pass "for the CSR's names" || fail "names: $(openssl x509 -in "$L/cert.pem" -noout -ext subjectAltName)"
REC=$ISS/renewal/www.bundle.test.json
"$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d["csr"] == sys.argv[2] and "key_type" not in d, d
assert d["names"] == ["www.bundle.test", "bundle.test"], d' "$REC" "$T/www.csr" &&
	pass "the renewal record keeps the CSR's absolute path, no key type" || { fail "renewal record"; cat "$REC"; }
grep -q "imported www sequence 1 " "$T/hook.out" && pass "the deploy hook imported it into the vault: sequence 1" ||
	{ fail "hook import"; cat "$T/hook.out"; }
run "$VC" -c "$VCONF" cert list
grep -Eq '^www +1 +1 +[0-9TZ:-]+ +yes' "$T/out" && pass "vaultctl cert list: www, sequence 1, fetchable" ||
	{ fail "cert list"; cat "$T/out"; }
run "$SH" --state-dir "$ISS" status
[ "$RC" = 0 ] && grep -Eq '^www\.bundle\.test +20' "$T/out" && pass "shadow status shows the --csr lineage" ||
	{ fail "issuer status: $RC"; cat "$T/out" "$T/err"; }
! grep -q '^BUNDLE' "$T/out" && pass "and no bundle table where no bundle was fetched" || fail "bundle table on the issuer"

# The same set of names in another order: the lineage is named by the first given.
issue bundle.test WWW.bundle.test --csr "$T/www.csr" --out "$T/o3"
[ "$RC" = 0 ] && [ -s "$T/o3/live/bundle.test/cert.pem" ] && [ ! -e "$T/o3/live/bundle.test/privkey.pem" ] &&
	pass "the CSR's names given in another order and case: lineage bundle.test" || { fail "reordered names: $RC"; cat "$T/err"; }
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["names"] == ["bundle.test", "www.bundle.test"], d' \
	"$T/o3/renewal/bundle.test.json" && pass "recorded in that order, spelled as in the CSR" ||
	{ fail "reordered record"; cat "$T/o3/renewal/bundle.test.json"; }

# A second shadow gets the key as a sealed bundle: it is the Pebble certificate's.
W=$T/sh-web2
O=$T/o2
expect_rc 0 "shadow fetch on the second shadow" "$SH" --state-dir "$W" fetch www --out "$O"
expect_out "installed www (sequence 1): $O/live/www/" "sequence 1"
cmp -s "$O/live/www/cert.pem" "$L/cert.pem" && cmp -s "$O/live/www/fullchain.pem" "$L/fullchain.pem" &&
	pass "the fetched certificate is the one Pebble issued to the issuer" || fail "fetched certificate"
echo "proof of possession" >"$T/data"
openssl dgst -sha256 -sign "$O/live/www/privkey.pem" -out "$T/sig" "$T/data" 2>/dev/null &&
	openssl dgst -sha256 -verify <(cert_pub "$L/cert.pem") -signature "$T/sig" "$T/data" >/dev/null 2>&1 &&
	pass "the fetched privkey.pem signs for the Pebble-issued certificate" || fail "fetched key does not match"
check_status() { # SEQ: shadow status on web2 lists bundle www at SEQ with its certificate's expiry
	local na want
	na=$(cert_time "$O/live/www/cert.pem" end)
	want=$(date -u -d "@$na" +%Y-%m-%dT%H:%MZ)
	run "$SH" --state-dir "$W" status --out "$O"
	grep -Eq '^BUNDLE +SEQUENCE +EXPIRES +DAYS LEFT +INSTALLED$' "$T/out" &&
		grep -Eq "^www +$1 +$want +[0-9]+ +20[0-9-]{8}T[0-9:]{5}Z$" "$T/out" &&
		pass "status lists bundle www: sequence $1, expires $want" || { fail "status text ($1)"; cat "$T/out" "$T/err"; }
	grep -Eq '^NAME +EXPIRES +DAYS LEFT +LAST ISSUED +ACCOUNT$' "$T/out" && pass "the lineage table's header as before" ||
		fail "status header"
	run "$SH" --state-dir "$W" --json status --out "$O"
	"$PY" -c 'import json, sys, time
d = json.load(open(sys.argv[1]))
rec = json.load(open(sys.argv[2]))
b = [x for x in d if x.get("type") == "bundle"]
assert len(b) == 1, d
b = b[0]
assert b["name"] == "www" and b["sequence"] == int(sys.argv[3]), b
assert b["not_after"] == int(sys.argv[4]) and b["installed_at"] == rec["installed_at"], b
assert abs(b["days_left"] - (b["not_after"] - time.time()) / 86400) <= 1, b' "$T/out" "$O/bundles/www.json" "$1" "$na" &&
		pass "status --json: the bundle, its sequence, expiry and installation" || { fail "status json ($1)"; cat "$T/out"; }
}
check_status 1

# Renewal: the same CSR, read again; the hook imports sequence 2; fetch picks it up.
SERIAL1=$(openssl x509 -in "$L/cert.pem" -noout -serial)
(cd / && "$SH" --state-dir "$ISS" renew --force) >"$T/out" 2>"$T/err"
RC=$?
[ "$RC" = 0 ] && grep -q "renew: 1 renewed, 0 failed" "$T/out" && pass "shadow renew --force from / (absolute CSR path)" ||
	{ fail "renew: exit $RC"; cat "$T/out" "$T/err"; }
[ "$(openssl x509 -in "$L/cert.pem" -noout -serial)" != "$SERIAL1" ] && [ "$(readlink "$ISS/live/www.bundle.test")" = ../archive/www.bundle.test/0002 ] &&
	pass "a new certificate is live (version 0002)" || fail "not renewed"
[ "$(cert_pub "$L/cert.pem")" = "$(csr_pub "$T/www.csr")" ] && [ ! -e "$L/privkey.pem" ] &&
	pass "for the same CSR key, still without privkey.pem" || fail "renewed key"
grep -q "imported www sequence 2 " "$T/hook.out" && pass "the hook imported sequence 2" || { fail "hook import 2"; cat "$T/hook.out"; }
expect_rc 0 "fetch again" "$SH" --state-dir "$W" fetch www --out "$O"
expect_out "installed www (sequence 2): $O/live/www/" "fetch picks up sequence 2"
cmp -s "$O/live/www/cert.pem" "$L/cert.pem" && pass "the renewed certificate" || fail "fetched certificate 2"
check_status 2

# Renewal refusals: each a clear error for that lineage, nothing installed.
renew_fails() { # WHAT TEXT: renew --force fails for www.bundle.test with TEXT, the lineage untouched
	(cd / && "$SH" --state-dir "$ISS" renew --force) >"$T/out" 2>"$T/err"
	RC=$?
	[ "$RC" != 0 ] && grep -q "renew: 0 renewed, 1 failed" "$T/out" &&
		grep -qF "shadow: www.bundle.test: cannot be renewed: " "$T/err" && grep -qF -- "$2" "$T/err" &&
		[ "$(readlink "$ISS/live/www.bundle.test")" = ../archive/www.bundle.test/0002 ] &&
		pass "renewal with $1: exit $RC, the reason named" || { fail "renewal with $1: exit $RC"; cat "$T/out" "$T/err"; }
}
mv "$T/www.csr" "$T/www.csr.orig"
renew_fails "the CSR gone" "$T/www.csr: No such file"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/other.key" \
	-subj /CN=www.bundle.test -addext "subjectAltName=DNS:www.bundle.test,DNS:bundle.test" -out "$T/www.csr" 2>/dev/null
renew_fails "a CSR for another key" "now holds another key than live/www.bundle.test/cert.pem"
"$VC" -c "$VCONF" cert csr www --dns www.bundle.test >"$T/www.csr"
renew_fails "a CSR naming other names" "records other names than its CSR"
grep -c "imported www" "$T/hook.out" | grep -qx 2 && pass "no import after a refused renewal" || { fail "hook ran"; cat "$T/hook.out"; }

vd_stop
expect_rc 0 "audit log intact" "$VC" -c "$VCONF" audit verify
vd_sanitizer_check
t_done
