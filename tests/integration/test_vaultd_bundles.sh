#!/usr/bin/env bash
# Sealed key bundles, the vault's side, end to end: a real vaultd with a
# SoftHSM2 token; keys created exportable and not; `vaultctl cert csr` signed
# by a throwaway openssl CA made here, `vaultctl cert import` and its
# refusals, `cert list`; GET /v1/bundles/{name} with client certificates:
# allowed (the bundle opened here with the shadow's box key through
# libsodium, its signature checked against the bundle key the enrolment and
# renewal answers carry, its key matching the certificate), refused by
# policy, no certificate, not exportable (non-exportable, Ed25519,
# destroyed), rate-limited, without a client certificate; sequences growing
# with each import; the audit log verified, with the bundle records and no
# key material; then `shadow fetch` opening, checking and installing them;
# then two rotations of the bundle key, followed by fetch and renew.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"

# Renewal is open at once (for the renewal answer's bundle_key below).
vd_setup 'shadow_cert_days = 12; shadow_renew_days = 3650;'
cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  sa = { accounts = []; names = [ "bundle.test" ]; bundles = [ "web", "webrsa", "locked", "edk", "old", "nocert" ]; };
  sb = { accounts = []; names = [ "bundle.test" ]; };
  sc = { accounts = []; names = [ "bundle.test" ]; };
  sr = { accounts = []; names = [ "bundle.test" ]; bundles = [ "web" ]; rate = { per_minute = 1; burst = 2; }; };
};
POL

# A state directory initialised before bundles has no bundle key: vaultd makes it at start.
sqlite3 "$VDIR/state/state.db" "DELETE FROM keys WHERE name = 'vault.bundle'"
vd_start || { t_done; exit 1; }
grep -q 'created the bundle key vault.bundle' "$T/vaultd.log" &&
	pass "vaultd creates the bundle key when an older init did not, and says so" ||
	fail "no log line for the bundle key made at start"
"$VC" -c "$VCONF" --json key show vault.bundle >"$T/bkey.json" 2>"$T/err" &&
	[ "$(json_get "$T/bkey.json" '["type"]')" = ed25519 ] &&
	[ "$(json_get "$T/bkey.json" '["exportable"]')" = False ] &&
	pass "vault.bundle is a non-exportable Ed25519 key" || { fail "vault.bundle"; cat "$T/bkey.json" "$T/err"; }
BUNDLE_PK=$(json_get "$T/bkey.json" '["jwk"]["x"]')
vd_stop
vd_start || { t_done; exit 1; }
[ "$(grep -c 'created the bundle key' "$T/vaultd.log")" = 1 ] &&
	pass "only once: the next start finds it" || fail "bundle key created again"
[ "$(grep -c '"type":"admin","op":"key.create","name":"vault.bundle","key_type":"ed25519","version":1,"by":"vaultd"' \
	"$VDIR/state/audit.log")" = 1 ] && pass "and audits it, once" || fail "bundle key creation not audited once"

# Keys: exportable EC and RSA, non-exportable, Ed25519, one to rotate and destroy.
expect_rc 0 "exportable EC key" "$VC" -c "$VCONF" -q key create web --type ec-p256 --exportable
expect_rc 0 "exportable RSA key" "$VC" -c "$VCONF" -q key create webrsa --type rsa-2048 --exportable
expect_rc 0 "non-exportable key" "$VC" -c "$VCONF" -q key create locked --type ec-p384
expect_rc 0 "Ed25519 key" "$VC" -c "$VCONF" -q key create edk --type ed25519
expect_rc 0 "exportable key to retire" "$VC" -c "$VCONF" -q key create old --type ec-p256 --exportable

# CSRs, signed in the token by the named key.
expect_rc 0 "cert csr" "$VC" -c "$VCONF" cert csr web --dns Web.Bundle.Test --dns www.bundle.test
cp "$T/out" "$T/web.csr"
openssl req -in "$T/web.csr" -noout -verify >/dev/null 2>&1 && pass "the CSR's signature verifies (ES256)" || fail "CSR signature"
openssl req -in "$T/web.csr" -noout -subject -text >"$T/csr.txt" 2>&1
grep -q 'CN *= *web.bundle.test' "$T/csr.txt" && grep -q 'DNS:web.bundle.test, DNS:www.bundle.test' "$T/csr.txt" &&
	pass "CN is the first name, subjectAltName all, normalised" || { fail "CSR contents"; cat "$T/csr.txt"; }
for k in webrsa locked edk old; do
	"$VC" -c "$VCONF" cert csr "$k" --dns "$k.bundle.test" >"$T/$k.csr" 2>"$T/err" &&
		openssl req -in "$T/$k.csr" -noout -verify >/dev/null 2>&1 &&
		pass "CSR of $k verifies" || { fail "CSR of $k"; cat "$T/err"; }
done
expect_rc 2 "cert csr without --dns" "$VC" -c "$VCONF" cert csr web
expect_err "at least one --dns" "says what is missing"
expect_rc 2 "cert csr with a bad DNS name" "$VC" -c "$VCONF" cert csr web --dns 'bad_name!.test'
expect_err "--dns" "names the option"
args=()
for i in $(seq 101); do args+=(--dns "n$i.bundle.test"); done
expect_rc 2 "cert csr with 101 names" "$VC" -c "$VCONF" cert csr web "${args[@]}"
expect_err "at most 100" "says the cap"
expect_rc 5 "cert csr for an unknown key" "$VC" -c "$VCONF" cert csr nokey --dns a.bundle.test
expect_err 'no key named "nokey"' "names the key"
expect_rc 7 "cert csr for a vault key" "$VC" -c "$VCONF" cert csr vault.audit --dns a.bundle.test
expect_rc 0 "cert --help" "$VC" -c "$VCONF" cert --help
expect_out "vaultctl cert import NAME FILE" "help shows import"

# A throwaway CA signs them.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" \
	-subj "/CN=throwaway CA" -days 30 -out "$T/ca.pem" 2>/dev/null
sign_csr() { # CSR OUT: the leaf and the CA, leaf first
	openssl x509 -req -in "$1" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -CAserial "$T/ca.srl" \
		-days 30 -copy_extensions copy -out "$2.leaf" 2>/dev/null && cat "$2.leaf" "$T/ca.pem" >"$2"
}
for k in web webrsa locked edk old; do sign_csr "$T/$k.csr" "$T/$k.chain"; done

# Imports, and their refusals.
expect_rc 0 "cert import" "$VC" -c "$VCONF" cert import web "$T/web.chain"
expect_out "imported web sequence 1 (key version 1" "prints the sequence"
for k in webrsa old; do
	expect_rc 0 "cert import $k" "$VC" -c "$VCONF" cert import "$k" "$T/$k.chain"
done
for k in locked edk; do
	expect_rc 0 "cert import $k" "$VC" -c "$VCONF" cert import "$k" "$T/$k.chain"
	expect_out "note: key $k is not exportable" "importing for a key that cannot be fetched says so"
done
expect_rc 2 "a chain for another key" "$VC" -c "$VCONF" cert import web "$T/locked.chain"
expect_err "is not that of key web" "key mismatch explained"
expect_err "locked.chain" "and the file named"
"$PY" - "$T/web.csr" "$T/ca.pem" "$T/ca.key" >"$T/expired.pem" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
csr = x509.load_pem_x509_csr(open(sys.argv[1], "rb").read())
ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[3], "rb").read(), None)
now = datetime.datetime.utcnow()
c = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
     .public_key(csr.public_key()).serial_number(x509.random_serial_number())
     .not_valid_before(now - datetime.timedelta(days=10))
     .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
sys.stdout.write(c.public_bytes(serialization.Encoding.PEM).decode())
PY
expect_rc 2 "an expired leaf" "$VC" -c "$VCONF" cert import web "$T/expired.pem"
expect_err "has expired" "expiry explained"
echo "this is not a certificate" >"$T/garbage.pem"
expect_rc 2 "a garbage file" "$VC" -c "$VCONF" cert import web "$T/garbage.pem"
expect_err "garbage.pem: no PEM certificate" "garbage explained, with the file"
cat "$T/ca.pem" "$T/web.chain.leaf" >"$T/reversed.pem"
expect_rc 2 "a chain issuer first" "$VC" -c "$VCONF" cert import web "$T/reversed.pem"
expect_err "did not issue" "order explained"
openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | cat "$T/web.chain.leaf" - >"$T/withkey.pem"
expect_rc 2 "a chain holding a private key" "$VC" -c "$VCONF" cert import web "$T/withkey.pem"
expect_err "PRIVATE KEY" "the key block refused by name"
head -c 70000 /dev/zero | tr '\0' 'a' >"$T/big.pem"
expect_rc 2 "a file over 64 KiB" "$VC" -c "$VCONF" cert import web "$T/big.pem"
expect_rc 5 "an unknown key name" "$VC" -c "$VCONF" cert import nokey "$T/web.chain"
expect_err 'no key named "nokey"' "unknown key named"
expect_rc 7 "a vault key" "$VC" -c "$VCONF" cert import vault.audit "$T/web.chain"
expect_rc 5 "a missing file" "$VC" -c "$VCONF" cert import web "$T/none.pem"
expect_err "none.pem: No such file" "the missing file is named"
expect_rc 0 "cert list" "$VC" -c "$VCONF" cert list
grep -Eq '^web +1 +1 +[0-9TZ:-]+ +yes' "$T/out" && grep -Eq '^locked +1 +1 +[0-9TZ:-]+ +no' "$T/out" &&
	grep -Eq '^edk +1 +1 +[0-9TZ:-]+ +no' "$T/out" && pass "cert list: name, sequence, key version, not after, exportable" ||
	{ fail "cert list"; cat "$T/out"; }

# The retired version still serves its certificate; destroyed, it cannot.
expect_rc 0 "rotate old" "$VC" -c "$VCONF" -q key rotate old

# Shadows: sa, sb, sr enrol with shadow; sc by hand, to read the enrolment answer.
for s in sa sb sr; do vd_enroll "$s" && pass "enrol $s" || fail "enrol $s"; done
TOK=$("$VC" -c "$VCONF" --json shadow add sc | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
mkdir -p "$T/sh-sc/identity"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/sh-sc/identity/key.pem" \
	-subj "/CN=sc" -out "$T/sc.csr" 2>/dev/null
BODY=$("$PY" -c 'import json,sys; print(json.dumps({"token": sys.argv[1], "csr": open(sys.argv[2]).read(), "box_public_key": sys.argv[3]}))' \
	"$TOK" "$T/sc.csr" "$(head -c 32 /dev/urandom | b64url)")
CODE=$(curl -s -o "$T/enroll.json" -w '%{http_code}' --cacert "$VD_CA" -H 'Content-Type: application/json' \
	--data-binary "$BODY" "$VD_ENROLL/v1/enroll")
expect_code 201 "enrolment by hand"
[ "$(json_get "$T/enroll.json" '["bundle_key"]')" = "$BUNDLE_PK" ] &&
	pass "the enrolment answer carries bundle_key, vault.bundle's public key" || { fail "enrol bundle_key"; cat "$T/enroll.json"; }
json_get "$T/enroll.json" '["certificate"]' >"$T/sh-sc/identity/cert.pem"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r.key" -subj "/CN=sc" -out "$T/r.csr" 2>/dev/null
vd_api sc POST /v1/identity/renew "$(renew_body "$T/r.csr" "$T/sh-sc/identity/cert.pem" "$T/sh-sc/identity/key.pem")"
expect_code 201 "identity renewal"
[ "$(json_get "$T/body" '["bundle_key"]')" = "$BUNDLE_PK" ] &&
	pass "the renewal answer carries bundle_key" || { fail "renew bundle_key"; cat "$T/body"; }

# open_bundle SHADOW NAME SEQUENCE CHAIN: open $T/body with SHADOW's box key (libsodium through
# ctypes), check signature, header and key; the key's DER (base64) into $T/keys.
open_bundle() {
	"$PY" - "$T/body" "$T/sh-$1/identity/box.key" "$BUNDLE_PK" "$1" "$2" "$3" "$4" "$T/keys" <<'PY'
import base64, ctypes, ctypes.util, json, re, struct, sys, time
from cryptography import x509
from cryptography.hazmat.primitives import serialization as ser
def unb64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
ans = json.load(open(sys.argv[1]))
sk = unb64(open(sys.argv[2]).read().strip()); spk = unb64(sys.argv[3])
who, name, seq = sys.argv[4], sys.argv[5], int(sys.argv[6])
assert set(ans) == {"name", "sequence", "id", "expires_at", "sealed"}, sorted(ans)
assert ans["name"] == name and ans["sequence"] == seq, ans
na = ctypes.CDLL(ctypes.util.find_library("sodium"))
assert na.sodium_init() >= 0
pk = ctypes.create_string_buffer(32)
na.crypto_scalarmult_base(pk, sk)
sealed = unb64(ans["sealed"])
pt = ctypes.create_string_buffer(len(sealed) - 48)
assert na.crypto_box_seal_open(pt, sealed, ctypes.c_ulonglong(len(sealed)), pk.raw, sk) == 0, "cannot open"
p = pt.raw
assert p[:4] == b"SVB1"
hl = struct.unpack(">I", p[4:8])[0]
hdr = json.loads(p[8:8 + hl])
o = 8 + hl
kl = struct.unpack(">I", p[o:o + 4])[0]
der = p[o + 4:o + 4 + kl]
o += 4 + kl
assert len(p) == o + 64
assert na.crypto_sign_verify_detached(p[o:], p[:o], ctypes.c_ulonglong(o), spk) == 0, "signature"
assert set(hdr) == {"v", "id", "recipient", "name", "sequence", "issued_at", "expires_at", "chain"}, sorted(hdr)
assert hdr["v"] == 1 and hdr["recipient"] == who and hdr["name"] == name and hdr["sequence"] == seq, hdr
assert hdr["id"] == ans["id"] and len(hdr["id"]) == 32 and int(hdr["id"], 16) >= 0
assert hdr["expires_at"] == ans["expires_at"] == hdr["issued_at"] + 3600
assert abs(hdr["issued_at"] - time.time()) < 120
def certs(pem):
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    return [x509.load_pem_x509_certificate(b) for b in blocks]
want = certs(open(sys.argv[7], "rb").read())
got = certs(hdr["chain"].encode())
assert got == want and len(got) == 2, "chain"
priv = ser.load_der_private_key(der, None)
spki = lambda k: k.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
assert spki(priv.public_key()) == spki(got[0].public_key()), "the key is not the leaf's"
with open(sys.argv[8], "a") as f:
    f.write(base64.b64encode(der).decode() + "\n")
PY
}

# Bundles.
vd_api sa GET /v1/bundles/web
expect_code 200 "shadow A gets the bundle of web"
tr -d '\r' <"$T/headers" | grep -qix 'content-type: application/json' &&
	tr -d '\r' <"$T/headers" | grep -qix 'cache-control: no-store' &&
	pass "as application/json, not cached" || { fail "headers of a bundle"; cat "$T/headers"; }
[ "$(json_get "$T/body" '["sequence"]')" = 1 ] && pass "sequence 1" || fail "sequence: $(cat "$T/body")"
ID1=$(json_get "$T/body" '["id"]')
open_bundle sa web 1 "$T/web.chain" 2>"$T/err" &&
	pass "opened with A's box key: signed by the bundle key, header right, key matches the certificate" ||
	{ fail "bundle contents"; cat "$T/err"; }
vd_api sa GET /v1/bundles/webrsa
expect_code 200 "an RSA key's bundle"
open_bundle sa webrsa 1 "$T/webrsa.chain" 2>"$T/err" && pass "the RSA bundle opens and matches" ||
	{ fail "RSA bundle"; cat "$T/err"; }
vd_api sa GET /v1/bundles/old
expect_code 200 "a retired (not destroyed) key version still serves its certificate"
vd_api sb GET /v1/bundles/web
expect_code 403 "shadow B, whose policy lists no bundles"
expect_problem bundle "refused by policy (code bundle)"
grep -q 'may not fetch the key bundle of web' "$T/body" && pass "with the policy's reason" || fail "reason: $(cat "$T/body")"
vd_api sa GET /v1/bundles/nocert
expect_code 404 "a name in the policy with no certificate"
expect_problem no-certificate "as no-certificate"
vd_api sa GET /v1/bundles/locked
expect_code 409 "a non-exportable key"
expect_problem not-exportable "as not-exportable"
vd_api sa GET /v1/bundles/edk
expect_code 409 "an Ed25519 key"
grep -q "Ed25519" "$T/body" && pass "says Ed25519" || fail "Ed25519 reason: $(cat "$T/body")"
expect_rc 0 "destroy the retired version of old" "$VC" -c "$VCONF" -q key destroy old --version 1 --yes
vd_api sa GET /v1/bundles/old
expect_code 409 "a destroyed key version"
grep -q "destroyed" "$T/body" && pass "says destroyed" || fail "destroyed reason: $(cat "$T/body")"
vd_api sa GET /v1/bundles/-bad
expect_code 403 "a name that is not a vault name"
expect_problem bad-name "as bad-name"
vd_api sa POST /v1/bundles/web '{}'
expect_code 405 "POST"
CODE=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$VD_CA" "$VD_API/v1/bundles/web")
[ "$CODE" = 000 ] || [ "$CODE" = 401 ] && pass "no client certificate: refused ($CODE)" || fail "without a client certificate: $CODE"
rm -f "$T/rl"
for i in 1 2 3 4; do vd_api sr GET /v1/bundles/web; echo "$CODE" >>"$T/rl"; done
head -1 "$T/rl" | grep -q 200 && grep -q 429 "$T/rl" && pass "the shadow's rate limit applies ($(tr '\n' ' ' <"$T/rl"))" ||
	fail "rate limit: $(tr '\n' ' ' <"$T/rl")"

# A second import: sequence 2, and the bundle carries it.
sign_csr "$T/web.csr" "$T/web2.chain"
expect_rc 0 "second import" "$VC" -c "$VCONF" cert import web "$T/web2.chain"
expect_out "sequence 2" "sequence 2"
vd_api sa GET /v1/bundles/web
expect_code 200 "the bundle after the second import"
open_bundle sa web 2 "$T/web2.chain" 2>"$T/err" && pass "carries sequence 2 and the new chain" ||
	{ fail "bundle 2"; cat "$T/err"; }
[ "$(json_get "$T/body" '["id"]')" != "$ID1" ] && pass "a fresh id" || fail "id reused"

curl -s --cacert "$VD_CA" --cert "$T/sh-sa/identity/cert.pem" --key "$T/sh-sa/identity/key.pem" "$VD_API/metrics" >"$T/metrics"
grep -q 'shadowvault_bundles_total{result="ok",shadow="sa"} 4\|shadowvault_bundles_total{shadow="sa",result="ok"} 4' "$T/metrics" &&
	grep -q 'shadowvault_bundles_total{.*"no-certificate"' "$T/metrics" &&
	pass "metrics: bundles by shadow and result" || { fail "metrics"; grep bundles "$T/metrics"; }

# ---------------------------------------------------------------------------
# shadow fetch, end to end: shadow sa opens, checks and installs what the
# vault seals for it; web is at sequence 2 here.
# ---------------------------------------------------------------------------
A=$T/sh-sa
[ "$(json_get "$A/identity/vault.json" '["bundle_key"]')" = "$BUNDLE_PK" ] &&
	pass "shadow enroll pins bundle_key in vault.json" || { fail "pinned key"; cat "$A/identity/vault.json"; }
expect_rc 0 "fetch --help" "$SH" --state-dir "$A" fetch --help
expect_out "usage: shadow fetch NAME" "help on stdout"
expect_rc 2 "fetch without a name" "$SH" --state-dir "$A" fetch
expect_err "name the certificate to fetch" "says what is missing"
expect_rc 2 "fetch with two names" "$SH" --state-dir "$A" fetch web other
expect_rc 2 "fetch with a bad name" "$SH" --state-dir "$A" fetch 'a/b'
expect_err "certificate name" "names the bad argument"
expect_rc 2 "fetch with an unknown option" "$SH" --state-dir "$A" fetch web --nope
expect_rc 2 "fetch with an empty --out" "$SH" --state-dir "$A" fetch web --out ''
expect_rc 0 "shadow --help" "$SH" --help
expect_out "fetch NAME [--out DIR] [--deploy-hook CMD]" "lists fetch"
expect_rc 3 "fetch when not enrolled" "$SH" --state-dir "$T/nowhere" fetch web
expect_err "not enrolled" "says so"

O=$T/o
expect_rc 0 "fetch web" "$SH" --state-dir "$A" fetch web --out "$O" --deploy-hook "env > $T/hook.env"
expect_out "installed web (sequence 2): $O/live/web/" "says what it installed, with the sequence"
cmp -s "$O/live/web/cert.pem" "$T/web2.chain.leaf" && cmp -s "$O/live/web/chain.pem" "$T/ca.pem" &&
	cat "$T/web2.chain.leaf" "$T/ca.pem" | cmp -s - "$O/live/web/fullchain.pem" &&
	pass "cert, chain and fullchain are the imported ones" || fail "installed certificates"
[ "$(openssl x509 -in "$O/live/web/cert.pem" -noout -pubkey | openssl sha256)" = \
	"$(openssl pkey -in "$O/live/web/privkey.pem" -pubout 2>/dev/null | openssl sha256)" ] &&
	head -1 "$O/live/web/privkey.pem" | grep -qx -- '-----BEGIN PRIVATE KEY-----' &&
	[ "$(stat -c %a "$O/live/web/privkey.pem")" = 600 ] &&
	pass "privkey.pem: the certificate's key, PKCS#8, 0600" || fail "installed key"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert set(d)=={"sequence","id","installed_at"} and d["sequence"]==2 and len(d["id"])==32, d' \
	"$O/bundles/web.json" && pass "OUT/bundles/web.json records sequence 2" || fail "record: $(cat "$O/bundles/web.json")"
[ ! -e "$O/renewal/web.json" ] && pass "no renewal record (the vault's admin renews it)" || fail "renewal record written"
grep -qx "RENEWED_LINEAGE=$O/live/web" "$T/hook.env" && grep -qx 'RENEWED_DOMAINS=web.bundle.test www.bundle.test' "$T/hook.env" &&
	pass "the deploy hook ran with RENEWED_LINEAGE and the certificate's names" || { fail "hook"; grep RENEWED "$T/hook.env"; }

rm -f "$T/hook.env"
ls -la --time-style=full-iso "$O/live" "$O/archive/web" "$O/bundles" >"$T/before"
expect_rc 0 "fetch again" "$SH" --state-dir "$A" fetch web --out "$O" --deploy-hook "env > $T/hook.env"
expect_out "web is up to date (sequence 2)" "up to date"
ls -la --time-style=full-iso "$O/live" "$O/archive/web" "$O/bundles" >"$T/after"
cmp -s "$T/before" "$T/after" && [ ! -e "$T/hook.env" ] && pass "nothing touched, no hook" ||
	{ fail "up to date touched something"; diff "$T/before" "$T/after"; }
expect_rc 0 "fetch --json" "$SH" --json --state-dir "$A" fetch web --out "$O"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["result"]=="up-to-date" and d["sequence"]==2, d' "$T/out" &&
	pass "--json: up-to-date" || { fail "--json"; cat "$T/out"; }

sign_csr "$T/web.csr" "$T/web3.chain"
expect_rc 0 "third import" "$VC" -c "$VCONF" -q cert import web "$T/web3.chain"
expect_rc 0 "fetch sequence 3, quietly" "$SH" -q --state-dir "$A" fetch web --out "$O"
[ ! -s "$T/out" ] && pass "-q prints nothing" || fail "-q printed: $(cat "$T/out")"
cmp -s "$O/live/web/cert.pem" "$T/web3.chain.leaf" && [ "$(readlink "$O/live/web")" = ../archive/web/0002 ] &&
	[ "$(json_get "$O/bundles/web.json" '["sequence"]')" = 3 ] &&
	pass "the newer certificate is installed as the next archive version" ||
	fail "sequence 3: $(readlink "$O/live/web") $(cat "$O/bundles/web.json")"

"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["sequence"]=9; json.dump(d, open(sys.argv[1],"w"))' "$O/bundles/web.json"
ls -la --time-style=full-iso "$O/live" "$O/archive/web" >"$T/before"
expect_rc 6 "an older sequence than installed" "$SH" --state-dir "$A" fetch web --out "$O"
expect_err "refusing a rollback: the vault's bundle for web has sequence 3, older than the installed 9" "refused as a rollback"
ls -la --time-style=full-iso "$O/live" "$O/archive/web" >"$T/after"
cmp -s "$T/before" "$T/after" && pass "nothing installed" || { fail "rollback touched"; diff "$T/before" "$T/after"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["sequence"]=3; json.dump(d, open(sys.argv[1],"w"))' "$O/bundles/web.json"
cp "$O/bundles/web.json" "$T/record"
echo '{"sequence": "x"}' >"$O/bundles/web.json"
expect_rc 2 "a broken record" "$SH" --state-dir "$A" fetch web --out "$O"
expect_err "not a bundle record" "names the broken record"
cp "$T/record" "$O/bundles/web.json"
expect_rc 0 "fetch into another --out" "$SH" --state-dir "$A" fetch web --out "$T/o2"
expect_out "installed web (sequence 3)" "the record belongs to its output directory"

expect_rc 7 "fetch refused by policy" "$SH" --state-dir "$T/sh-sb" fetch web --out "$T/ob"
expect_err "may not fetch the key bundle of web" "prints the vault's reason"
[ ! -e "$T/ob" ] && pass "nothing written after a refusal" || fail "written after a refusal"
expect_rc 5 "fetch of a name without a certificate" "$SH" --state-dir "$A" fetch nocert --out "$O"
expect_err "the vault has no certificate for nocert (HTTP 404)" "404 explained"
expect_rc 6 "fetch of a key that cannot be exported" "$SH" --state-dir "$A" fetch locked --out "$O"
expect_err "the vault cannot export the key of locked (HTTP 409)" "409 explained"
[ ! -e "$O/live/locked" ] && [ ! -e "$O/archive/locked" ] && pass "nothing written for 409" || fail "locked written"

# Copies of sa's state with one thing changed each: the bundle must be refused, nothing written.
cp -a "$A" "$T/sa2"
setv() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d[sys.argv[2]]=sys.argv[3]; json.dump(d, open(sys.argv[1],"w"))' \
	"$T/sa2/identity/vault.json" "$1" "$2"; }
setv bundle_key "$(head -c 32 /dev/urandom | b64url)"
expect_rc 1 "another pinned bundle key" "$SH" --state-dir "$T/sa2" fetch web --out "$T/o3"
expect_err "signature is not by the pinned vault bundle key" "a signature by another key refused"
setv bundle_key "$BUNDLE_PK"
cp "$T/sh-sb/identity/box.key" "$T/sa2/identity/box.key"
expect_rc 1 "another box key" "$SH" --state-dir "$T/sa2" fetch web --out "$T/o3"
expect_err "cannot be opened with this shadow's box key" "a bundle sealed to another key refused"
cp "$A/identity/box.key" "$T/sa2/identity/box.key"
setv name sb
expect_rc 1 "another recipient expected" "$SH" --state-dir "$T/sa2" fetch web --out "$T/o3"
expect_err 'sealed for shadow "sa", not "sb"' "a bundle for another shadow refused"
[ ! -e "$T/o3" ] && pass "nothing written for any of them" || fail "o3 written"
chmod 644 "$A/identity/box.key"
expect_rc 3 "box.key readable by others" "$SH" --state-dir "$A" fetch web --out "$O"
expect_err "readable by others" "says why"
chmod 600 "$A/identity/box.key"

# An enrolment from before bundles has no pinned key: fetch asks the vault
# (GET /v1/identity) and pins it, and so does an identity renewal.
unpin() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["bundle_key"]; json.dump(d, open(sys.argv[1],"w"))' "$A/identity/vault.json"; }
unpin
vd_api sa GET /v1/identity
[ "$(json_get "$T/body" '["bundle_key"]')" = "$BUNDLE_PK" ] && pass "GET /v1/identity names the bundle key" ||
	{ fail "identity answer"; cat "$T/body"; }
expect_rc 0 "fetch with no pinned bundle key" "$SH" --state-dir "$A" fetch web --out "$O"
expect_err "pinned the vault's bundle key" "pins the vault's key first, and says so"
expect_out "web is up to date (sequence 3)" "then fetches"
[ "$(json_get "$A/identity/vault.json" '["bundle_key"]')" = "$BUNDLE_PK" ] && pass "vault.json has bundle_key" ||
	{ fail "not pinned by fetch"; cat "$A/identity/vault.json"; }
unpin
rm -f "$O/bundles/web.json"
expect_rc 0 "identity renewal" "$SH" --state-dir "$A" renew
expect_err "pinned the vault's bundle key" "the renewal pins it"
[ "$(json_get "$A/identity/vault.json" '["bundle_key"]')" = "$BUNDLE_PK" ] && pass "vault.json has bundle_key again" ||
	{ fail "not pinned by renew"; cat "$A/identity/vault.json"; }
expect_rc 1 "fetch with a failing deploy hook" "$SH" --state-dir "$A" fetch web --out "$O" --deploy-hook 'exit 3'
expect_err "the bundle is installed, but" "the hook's failure is reported"
expect_out "installed web (sequence 3)" "and the bundle installed"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["bundle_key"]=sys.argv[2]; json.dump(d, open(sys.argv[1],"w"))' \
	"$A/identity/vault.json" "$(head -c 32 /dev/urandom | b64url)"
PINNED=$(json_get "$A/identity/vault.json" '["bundle_key"]')
expect_rc 0 "another identity renewal" "$SH" --state-dir "$A" renew
expect_err "keeping the pinned one" "a pinned key is never replaced by a renewal answer"
[ "$(json_get "$A/identity/vault.json" '["bundle_key"]')" = "$PINNED" ] && pass "the pinned key stays" || fail "pinned key replaced"

# Rotating the bundle key: bundles are signed by the new version and carry the link from
# each older one, which a shadow that pinned an older key follows to the new one.
setpin() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["bundle_key"]=sys.argv[2]; json.dump(d, open(sys.argv[1],"w"))' "$1/identity/vault.json" "$2"; }
pinned() { json_get "$1/identity/vault.json" '["bundle_key"]'; }
# check_links FILE KEY...: FILE's key_chain is exactly the links KEY1->KEY2->..., each
# signature checked here with libsodium over the documented message.
check_links() {
	"$PY" - "$@" <<'PY'
import base64, ctypes, ctypes.util, json, sys
def unb64(s): return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
chain, keys = json.load(open(sys.argv[1]))["key_chain"], sys.argv[2:]
na = ctypes.CDLL(ctypes.util.find_library("sodium"))
assert na.sodium_init() >= 0
assert [(l["from"], l["to"]) for l in chain] == list(zip(keys, keys[1:])), chain
for l in chain:
    assert set(l) == {"from", "to", "sig"}, l
    msg = b"shadowvault bundle key handover v1\n" + unb64(l["from"]) + unb64(l["to"])
    assert na.crypto_sign_verify_detached(unb64(l["sig"]), msg, ctypes.c_ulonglong(len(msg)), unb64(l["from"])) == 0, "link signature"
PY
}
setpin "$A" "$BUNDLE_PK"
vd_api sa GET /v1/bundles/web
expect_code 200 "a bundle before the rotation"
"$PY" -c 'import json,sys; assert "key_chain" not in json.load(open(sys.argv[1]))' "$T/body" &&
	pass "no key_chain while the bundle key has one version" || fail "key_chain before a rotation"
expect_rc 0 "key rotate vault.bundle" "$VC" -c "$VCONF" key rotate vault.bundle
expect_out "version:    2" "the bundle key is at version 2"
vd_api sa GET /v1/identity
BUNDLE_PK2=$(json_get "$T/body" '["bundle_key"]')
[ -n "$BUNDLE_PK2" ] && [ "$BUNDLE_PK2" != "$BUNDLE_PK" ] && pass "GET /v1/identity names the new key" ||
	{ fail "identity after rotation"; cat "$T/body"; }
check_links "$T/body" "$BUNDLE_PK" "$BUNDLE_PK2" && pass "and the link v1 -> v2, signed by v1" || fail "identity key_chain"
vd_api sa GET /v1/bundles/web
expect_code 200 "a bundle after the rotation"
check_links "$T/body" "$BUNDLE_PK" "$BUNDLE_PK2" && pass "the bundle answer carries the link" || fail "bundle key_chain"
rm -f "$O/bundles/web.json"
expect_rc 0 "fetch with the old key pinned" "$SH" --state-dir "$A" fetch web --out "$O"
expect_out "installed web (sequence 3)" "the bundle, signed by v2, is installed"
[ "$(pinned "$A")" = "$BUNDLE_PK2" ] && pass "the shadow now pins v2" || fail "pin after fetch: $(pinned "$A")"
expect_rc 0 "fetch again" "$SH" --state-dir "$A" fetch web --out "$O"
expect_out "web is up to date (sequence 3)" "with v2 pinned"
# A second rotation: sa follows v2 -> v3 on an up-to-date fetch; sb, which pinned v1 at
# enrolment, follows v1 -> v2 -> v3 by an identity renewal.
expect_rc 0 "a second rotation" "$VC" -c "$VCONF" key rotate vault.bundle
vd_api sa GET /v1/identity
BUNDLE_PK3=$(json_get "$T/body" '["bundle_key"]')
check_links "$T/body" "$BUNDLE_PK" "$BUNDLE_PK2" "$BUNDLE_PK3" && pass "two links, v1 -> v2 -> v3" || fail "two links"
expect_rc 0 "fetch --json, up to date, after the second rotation" "$SH" --json --state-dir "$A" fetch web --out "$O"
[ "$(pinned "$A")" = "$BUNDLE_PK3" ] && pass "sa pins v3" || fail "sa pin: $(pinned "$A")"
"$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); assert d["result"]=="up-to-date" and d["bundle_key_pinned"]==sys.argv[2], d' \
	"$T/out" "$BUNDLE_PK3" && pass "--json says which key it pinned" || fail "--json: $(cat "$T/out")"
expect_rc 0 "fetch --json again" "$SH" --json --state-dir "$A" fetch web --out "$O"
"$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); assert "bundle_key_pinned" not in d, d' "$T/out" &&
	pass "and nothing once it is pinned" || fail "--json again: $(cat "$T/out")"
[ "$(pinned "$T/sh-sb")" = "$BUNDLE_PK" ] && pass "sb still pins v1" || fail "sb pin before renew: $(pinned "$T/sh-sb")"
expect_rc 0 "identity renewal of sb" "$SH" --state-dir "$T/sh-sb" renew
[ "$(pinned "$T/sh-sb")" = "$BUNDLE_PK3" ] && pass "the renewal follows the links: sb pins v3" || fail "sb pin: $(pinned "$T/sh-sb")"
# A key the links do not start from: refused, nothing replaced.
OTHER=$(head -c 32 /dev/urandom | b64url)
setpin "$A" "$OTHER"
expect_rc 1 "fetch with a key outside the chain pinned" "$SH" --state-dir "$A" fetch web --out "$O"
[ "$(pinned "$A")" = "$OTHER" ] && pass "the pin is left alone" || fail "pin replaced: $(pinned "$A")"
setpin "$A" "$BUNDLE_PK3"
# A shadow enrolled now pins v3 at once; a vaultd restarted makes the same links.
vd_enroll sd && pass "enrol sd" || fail "enrol sd"
[ "$(pinned "$T/sh-sd")" = "$BUNDLE_PK3" ] && pass "sd pins v3 at enrolment" || fail "sd pin: $(pinned "$T/sh-sd")"
vd_stop
vd_start || { t_done; exit 1; }
vd_api sa GET /v1/identity
check_links "$T/body" "$BUNDLE_PK" "$BUNDLE_PK2" "$BUNDLE_PK3" && pass "the links after a restart" || fail "links after restart"

vd_stop
expect_rc 0 "audit log verifies" "$VC" -c "$VCONF" audit verify
AUD=$VDIR/state/audit.log
"$PY" - "$AUD" "$ID1" <<'PY' && pass "bundle records: allow (with id, sequence, key version) and each refusal" || fail "bundle audit records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"type":"bundle"' in l]
def has(**kw): return any(all(r.get(k) == v for k, v in kw.items()) for r in recs)
assert has(op="bundle", shadow="sa", name="web", decision="allow", sequence=1, key_version=1, id=sys.argv[2]), "allow"
assert has(shadow="sa", name="web", decision="allow", sequence=2), "allow 2"
assert has(shadow="sb", name="web", decision="deny", code="bundle"), "policy"
assert has(shadow="sa", name="nocert", decision="deny", code="no-certificate"), "404"
assert has(shadow="sa", name="locked", decision="deny", code="not-exportable", sequence=1), "409"
assert has(shadow="sr", decision="deny", code="rate-limited"), "429"
PY
grep -q '"type":"cert","op":"import","name":"web","sequence":2' "$AUD" && pass "imports are audited with their sequence" ||
	fail "no import record"
"$PY" - "$AUD" "$T/keys" <<'PY' && pass "no key material in the audit log" || fail "key material in the audit log"
import base64, sys
log = open(sys.argv[1]).read()
assert "PRIVATE KEY" not in log and '"sealed"' not in log
for line in open(sys.argv[2]):
    der = base64.b64decode(line.strip())
    for enc in (base64.b64encode(der).decode(), base64.urlsafe_b64encode(der).decode().rstrip("="), der.hex()):
        for i in range(0, len(enc) - 24, 24):
            assert enc[i:i + 24] not in log, "a piece of a key"
PY
vd_sanitizer_check
t_done
