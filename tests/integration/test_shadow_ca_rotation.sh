#!/usr/bin/env bash
# Rotation of the shadow CA key (vault.shadow-ca) with overlap (SECURITY.md): the new CA
# issues, the old one stays trusted, shadows learn the new one from their answers (with
# the link the old CA signed for it) and renew onto it at once; destroying the old version
# is refused while a shadow still needs it, then reissues the vault's TLS server
# certificate from the new CA, live, and the old CA's certificates are refused in the
# handshake.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
vd_setup
printf 'shadows = {\n  web1 = { accounts = [ "x" ]; names = [ "a.test" ]; };\n};\n' >"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }
CA=$VDIR/state/ca.pem
TLS=$VDIR/state/tls/server.pem
LINKS=$VDIR/state/ca-links.pem

# ncerts FILE: how many certificates; nth FILE N OUT: the Nth (1-based) into OUT.
ncerts() { grep -c -- '-----BEGIN CERTIFICATE-----' "$1"; }
nth() {
	"$PY" - "$1" "$2" "$3" <<'PY'
import re, sys
certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", open(sys.argv[1]).read(), re.S)
open(sys.argv[3], "w").write(certs[int(sys.argv[2]) - 1])
PY
}
subject_cn() { openssl x509 -in "$1" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= //p'; }
issuer_cn() { openssl x509 -in "$1" -noout -issuer -nameopt multiline | sed -n 's/^ *commonName *= //p'; }
# verifies CAFILE CERT: CERT chains to a certificate of CAFILE (as a client certificate).
verifies() { openssl verify -purpose sslclient -CAfile "$1" "$2" >/dev/null 2>&1; }
# handshake CAFILE [CERT KEY]: the HTTP code of GET /v1/identity (000: no TLS connection).
handshake() {
	local args=(-s -o /dev/null -w '%{http_code}' --cacert "$1")
	[ $# -ge 3 ] && args+=(--cert "$2" --key "$3")
	curl "${args[@]}" "$VD_API/v1/identity"
}

vd_enroll web1 && vd_enroll web2 && vd_enroll web5 && vd_enroll web6 && pass "four shadows enrolled under the first CA" || fail "enrol"
[ ! -e "$LINKS" ] && pass "no links before a rotation" || fail "ca-links.pem exists"
cp "$CA" "$T/ca-v1.pem"
cp "$T/sh-web1/identity/cert.pem" "$T/web1-v1.pem"
cp "$T/sh-web1/identity/key.pem" "$T/web1-v1.key"
V1=$(subject_cn "$CA")

# Destroying the CA key in use is refused: it issues the shadows' certificates.
expect_rc 7 "the issuing CA version cannot be destroyed" "$VC" -c "$VCONF" key destroy vault.shadow-ca --version 1 --yes
expect_err "rotate it first" "and says to rotate first"

# The rotation: a second CA first in ca.pem, the first one still trusted.
expect_rc 0 "vaultctl key rotate vault.shadow-ca" "$VC" -c "$VCONF" key rotate vault.shadow-ca
expect_out "version:    2" "makes version 2"
nth "$CA" 1 "$T/ca-v2.pem"
nth "$CA" 2 "$T/ca2nd.pem"
V2=$(subject_cn "$T/ca-v2.pem")
[ "$(ncerts "$CA")" = 2 ] && cmp -s "$T/ca2nd.pem" "$T/ca-v1.pem" && [ "$V2" = "$V1 v2" ] \
	&& pass "ca.pem: the new CA ($V2) first, then the old one" || fail "bundle after rotation: $(ncerts "$CA") certs, '$V2'"
"$PY" - "$T/ca-v2.pem" <<'PY' 2>"$T/err" && pass "the new CA is a CA for 10 years" || { fail "new CA certificate"; cat "$T/err"; }
import subprocess, sys
t = subprocess.run(["openssl", "x509", "-in", sys.argv[1], "-noout", "-text", "-dates"], capture_output=True, text=True, check=True).stdout
assert "CA:TRUE" in t and "Certificate Sign" in t, t
subprocess.run(["openssl", "verify", "-CAfile", sys.argv[1], sys.argv[1]], check=True, capture_output=True)
PY
[ "$(ncerts "$LINKS")" = 1 ] && openssl verify -CAfile "$T/ca-v1.pem" "$LINKS" >/dev/null 2>&1 \
	&& [ "$(subject_cn "$LINKS")" = "$V2" ] \
	&& [ "$(openssl x509 -in "$LINKS" -noout -pubkey)" = "$(openssl x509 -in "$T/ca-v2.pem" -noout -pubkey)" ] \
	&& pass "ca-links.pem: the new CA's name and key, certified by the old CA" || fail "link after rotation"
[ "$(issuer_cn "$TLS")" = "$V1" ] && pass "the server certificate is left alone (still from $V1)" || fail "server cert issuer $(issuer_cn "$TLS")"
"$VC" -c "$VCONF" --json status >"$T/status.json"
[ "$(json_get "$T/status.json" "['shadow_ca']")" = "vault.shadow-ca@v2" ] && [ "$(json_get "$T/status.json" "['shadow_cas_trusted']")" = 2 ] \
	&& pass "vaultctl status: v2 issues, two CAs trusted" || { fail "status"; cat "$T/status.json"; }
[ "$(handshake "$T/ca-v1.pem" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")" = 200 ] \
	&& pass "a shadow trusting only the old CA, with its old certificate, is still served" || fail "old CA, old cert"
# Renewing the TLS certificate during the overlap keeps its CA: shadows that have not taken
# the new CA yet must still trust the server.
cp "$TLS" "$T/tls-before.pem"
expect_rc 0 "vaultctl tls renew during the overlap" "$VC" -c "$VCONF" tls renew
! cmp -s "$TLS" "$T/tls-before.pem" && [ "$(issuer_cn "$TLS")" = "$V1" ] \
	&& [ "$(handshake "$T/ca-v1.pem" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")" = 200 ] \
	&& pass "renewed by the old CA, which issued it, and served to those trusting only that one" \
	|| fail "tls renew during the overlap: issuer $(issuer_cn "$TLS")"

# Answers carry the bundle; new certificates come from the new CA.
vd_api web2 GET /v1/identity
expect_code 200 "GET /v1/identity with a certificate of the old CA"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ca"] == open(sys.argv[2]).read() and d["ca_links"] == open(sys.argv[3]).read()' \
	"$T/body" "$CA" "$LINKS" 2>"$T/err" \
	&& pass "the identity answer carries ca.pem's bundle and the link" || { fail "identity ca"; cat "$T/err"; }
# A shadow given the old CA file (copied before the rotation) still enrols: the link vouches.
TOK3=$("$VC" -c "$VCONF" --json shadow add web3 | json_get /dev/stdin '["token"]')
expect_rc 0 "a shadow enrols after the rotation, given a copy of the old ca.pem" \
	"$SH" -q --state-dir "$T/sh-web3" enroll --vault "$VD_ENROLL" --token "$TOK3" --ca "$T/ca-v1.pem"
[ "$(issuer_cn "$T/sh-web3/identity/cert.pem")" = "$V2" ] && verifies "$T/ca-v2.pem" "$T/sh-web3/identity/cert.pem" \
	&& ! verifies "$T/ca-v1.pem" "$T/sh-web3/identity/cert.pem" \
	&& pass "its certificate is from the new CA only" || fail "web3 issuer $(issuer_cn "$T/sh-web3/identity/cert.pem")"
cmp -s "$T/sh-web3/identity/vault-ca.pem" "$CA" && pass "it keeps the whole bundle" || fail "web3 vault-ca.pem"

# web2 runs `shadow renew` as its timer would: it asks for the bundle, takes it (linked
# from its v1), sees its identity is not from the new CA, and renews at once.
expect_rc 0 "shadow renew on web2" "$SH" --state-dir "$T/sh-web2" renew
expect_err "the vault's CA bundle changed" "it says it took the new bundle"
expect_out "vault identity renewed" "and renewed its identity"
cmp -s "$T/sh-web2/identity/vault-ca.pem" "$CA" && verifies "$T/ca-v2.pem" "$T/sh-web2/identity/cert.pem" \
	&& pass "web2: the bundle, and an identity from the new CA" || fail "web2 after renew: $(issuer_cn "$T/sh-web2/identity/cert.pem")"
expect_rc 0 "a second shadow renew" "$SH" --state-dir "$T/sh-web2" renew
grep -q "vault identity renewed" "$T/out" && fail "renewed again" || pass "does nothing more"

# Two runs at once on web6's due identity (a timer and a hand): one renews, the other waits
# for it (identity/ is locked) and then finds nothing due.  Without the lock both renewed,
# and the second renewal revoked the first one's certificate, which one of them installed.
"$SH" -q --state-dir "$T/sh-web6" renew >"$T/r1.out" 2>&1 &
R1=$!
"$SH" -q --state-dir "$T/sh-web6" renew >"$T/r2.out" 2>&1 &
R2=$!
wait $R1 && wait $R2 && pass "two shadow renew runs at once both succeed" || { fail "concurrent renew"; cat "$T/r1.out" "$T/r2.out"; }
N=$(grep -c '"type":"renew","shadow":"web6","serial"' "$VDIR/state/audit.log")
[ "$N" = 1 ] && pass "one renewal between them" || fail "$N renewals of web6"
vd_api web6 GET /v1/identity
expect_code 200 "web6 is served with the identity it kept"

# A certificate from the old CA renews at once; one from the new CA keeps its window.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r1.key" -subj /CN=x -out "$T/r1.csr" 2>/dev/null
vd_api web1 POST /v1/identity/renew "$(renew_body "$T/r1.csr" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")"
expect_code 201 "a fresh certificate of the old CA renews at once"
"$PY" - "$T/body" "$CA" "$T/r1.pem" <<'PY' 2>"$T/err" && pass "the renewal answer carries the bundle" || { fail "renew ca"; cat "$T/err"; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ca"] == open(sys.argv[2]).read()
open(sys.argv[3], "w").write(d["certificate"])
PY
verifies "$T/ca-v2.pem" "$T/r1.pem" && pass "the renewed certificate is from the new CA" || fail "renewed issuer $(issuer_cn "$T/r1.pem")"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r3.key" -subj /CN=x -out "$T/r3.csr" 2>/dev/null
vd_api web3 POST /v1/identity/renew "$(renew_body "$T/r3.csr" "$T/sh-web3/identity/cert.pem" "$T/sh-web3/identity/key.pem")"
expect_code 403 "a fresh certificate of the new CA does not"
# web1 takes its renewed identity into use (which retires the certificate it replaced).
cp "$T/r1.pem" "$T/sh-web1/identity/cert.pem" && cp "$T/r1.key" "$T/sh-web1/identity/key.pem"
vd_api web1 GET /v1/identity
expect_code 200 "web1 uses its renewed certificate"

expect_rc 0 "vaultctl shadow list" "$VC" -c "$VCONF" shadow list
grep -q '^web1  *active  *2  *v2 ' "$T/out" && grep -q '^web2  *active  *2  *v2 ' "$T/out" \
	&& grep -q '^web3  *active  *1  *v2 ' "$T/out" && grep -q '^web5  *active  *1  *v1 ' "$T/out" \
	&& pass "shadow list shows which CA version each shadow is on" || { fail "shadow list"; cat "$T/out"; }

# The old version cannot go while web5 still holds a certificate of it.
expect_rc 6 "destroying the old CA while web5 needs it" "$VC" -c "$VCONF" key destroy vault.shadow-ca --version 1 --yes
expect_err '["web5"]' "the refusal names the shadow still on it"
grep -qE "web1|web2|web6" "$T/err" && fail "renewed shadows listed too: $(cat "$T/err")" || pass "and only it"
[ "$(ncerts "$CA")" = 2 ] && [ "$(issuer_cn "$TLS")" = "$V1" ] && pass "a refusal changes nothing" || fail "changed by a refusal"

# web5 is revoked; now the old version goes, and the server certificate moves to the new CA.
expect_rc 0 "revoke web5" "$VC" -c "$VCONF" shadow revoke web5
expect_rc 0 "destroying the old CA version" "$VC" -c "$VCONF" --json key destroy vault.shadow-ca --version 1 --yes
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["server_certificate_reissued"] is True and d["trusted"] == 1 and d["state"] == "destroyed", d' "$T/out" 2>"$T/err" \
	&& pass "it says the server certificate was reissued" || { fail "destroy answer"; cat "$T/out" "$T/err"; }
[ "$(ncerts "$CA")" = 1 ] && cmp -s "$CA" "$T/ca-v2.pem" && pass "ca.pem holds the new CA only" || fail "ca.pem after destroy"
# The same destroy again, in text: the version is gone already.
expect_rc 6 "destroying it twice" "$VC" -c "$VCONF" key destroy vault.shadow-ca --version 1 --yes
expect_err "vault.shadow-ca@v1 is destroyed already" "says so"
[ ! -e "$LINKS" ] && pass "the link from the destroyed CA is gone" || fail "ca-links.pem left"
[ "$(issuer_cn "$TLS")" = "$V2" ] && openssl verify -purpose sslserver -CAfile "$T/ca-v2.pem" "$TLS" >/dev/null 2>&1 \
	&& pass "the server certificate file is from the new CA" || fail "server cert issuer $(issuer_cn "$TLS")"
openssl x509 -in "$TLS" -noout -ext subjectAltName 2>/dev/null | grep -q "IP Address:127.0.0.1" \
	&& pass "for the same names" || fail "server cert names"
[ "$(handshake "$T/ca-v2.pem" "$T/sh-web3/identity/cert.pem" "$T/sh-web3/identity/key.pem")" = 200 ] \
	&& pass "the running vault serves the new server certificate (no restart)" || fail "new server cert not served"
[ "$(handshake "$T/ca-v1.pem" "$T/sh-web3/identity/cert.pem" "$T/sh-web3/identity/key.pem")" = 000 ] \
	&& pass "a client trusting only the old CA no longer connects" || fail "old CA still anchors the server"
expect_rc 0 "vaultctl tls renew after the destroy" "$VC" -c "$VCONF" tls renew
[ "$(issuer_cn "$TLS")" = "$V2" ] && pass "renewed by the new CA now" || fail "issuer after destroy: $(issuer_cn "$TLS")"
[ "$(handshake "$T/ca-v2.pem" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")" = 200 ] \
	&& pass "web1's renewed certificate is served" || fail "web1 renewed cert refused"
"$VC" -c "$VCONF" --json key list >"$T/keys.json"
"$PY" -c 'import json,sys; ks=[k for k in json.load(open(sys.argv[1])) if k["name"]=="vault.shadow-ca"]; st={k["version"]: k["state"] for k in ks}; assert st == {1: "destroyed", 2: "current"}, st' "$T/keys.json" 2>"$T/err" \
	&& pass "version 1 is destroyed, version 2 current" || { fail "key states"; cat "$T/err" "$T/keys.json"; }

# web2 follows with `shadow renew`: the bundle without the old CA, and it is still served.
expect_rc 0 "shadow renew on web2 after the destroy" "$SH" --state-dir "$T/sh-web2" renew
cmp -s "$T/sh-web2/identity/vault-ca.pem" "$T/ca-v2.pem" && pass "web2 drops the old CA from its bundle" || fail "web2 bundle after destroy"
vd_api web2 GET /v1/identity
expect_code 200 "web2 is served"

# web1's first certificate, of the destroyed CA (and revoked once its renewal was used).
[ "$(handshake "$T/ca-v2.pem" "$T/web1-v1.pem" "$T/web1-v1.key")" = 000 ] \
	&& pass "a certificate of the destroyed CA is refused in the handshake" || fail "old cert served"

# After a restart: the same state, and enrolment works with the new ca.pem.
vd_stop
vd_start || { t_done; exit 1; }
vd_enroll web4 && verifies "$T/ca-v2.pem" "$T/sh-web4/identity/cert.pem" && pass "after a restart, enrolment with the new CA" || fail "enrol web4"
[ "$(handshake "$T/ca-v2.pem" "$T/sh-web3/identity/cert.pem" "$T/sh-web3/identity/key.pem")" = 200 ] \
	&& pass "web3 served after the restart" || fail "web3 after restart"

# A ca.pem without the current version's certificate stops the start, saying why.
vd_stop
cp "$CA" "$T/ca.keep"
cp "$T/ca-v1.pem" "$CA"
"$VD" -c "$VCONF" -f >"$T/vd2.log" 2>&1 &
P=$!
T_PIDS="$T_PIDS $P"
for _ in $(seq 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$P" 2>/dev/null; then
	fail "vaultd started with a CA file lacking the current CA"
	kill "$P"
else
	grep -q "holds no certificate for vault.shadow-ca@v2, the current version" "$T/vd2.log" \
		&& pass "vaultd refuses a ca.pem without the current CA, and says so" || { fail "message"; tail -5 "$T/vd2.log"; }
fi
cp "$T/ca.keep" "$CA"

# A rotation cut short before the promotion leaves the bundle's order to the key process:
# put the old order back by hand and check the answers still name the issuing CA first.
vd_start || { t_done; exit 1; }
expect_rc 0 "a second rotation" "$VC" -c "$VCONF" key rotate vault.shadow-ca
nth "$CA" 1 "$T/ca-v3.pem"
[ "$(ncerts "$LINKS")" = 1 ] && openssl verify -CAfile "$T/ca-v2.pem" "$LINKS" >/dev/null 2>&1 \
	&& pass "ca-links.pem: v3 certified by v2" || fail "link v2 -> v3"
vd_stop
cat "$T/ca-v2.pem" "$T/ca-v3.pem" >"$CA" # v2 first, as if v3 were never promoted
vd_start || { t_done; exit 1; }
vd_api web3 GET /v1/identity
"$PY" -c 'import json,sys; ca=json.load(open(sys.argv[1]))["ca"]; assert ca == open(sys.argv[2]).read() + open(sys.argv[3]).read(), ca' \
	"$T/body" "$T/ca-v3.pem" "$T/ca-v2.pem" 2>"$T/err" \
	&& pass "the issuing CA (v3) comes first in answers whatever the file's order" || { fail "order"; cat "$T/err"; }

# A rotation stopped after ca.pem was written, before the promotion (an injected fault, then
# vaultd killed): v1 still issues, the next start puts it first again, and the next rotation
# replaces the orphan certificate and its link instead of adding to them.
vd_stop
vd_start_fault ca-key-promote || { fail "vaultd did not start (SV_FAULT=ca-key-promote)"; t_done; exit 1; }
expect_rc 1 "a rotation stopped before its promotion (fault)" "$VC" -c "$VCONF" key rotate vault.shadow-ca
expect_err "fault injected (SV_FAULT=ca-key-promote)" "says so"
vd_crash
[ "$(ncerts "$CA")" = 3 ] && [ "$(subject_cn "$CA")" = "$V1 v4" ] && [ "$(ncerts "$LINKS")" = 2 ] \
	&& pass "left behind: ca.pem with the unpromoted v4 first, and its link" || fail "after the fault: $(ncerts "$CA") certs, $(subject_cn "$CA")"
vd_start || { t_done; exit 1; }
"$VC" -c "$VCONF" --json status >"$T/status.json"
[ "$(json_get "$T/status.json" "['shadow_ca']")" = "vault.shadow-ca@v3" ] && pass "after a restart v3 still issues" || fail "status: $(cat "$T/status.json")"
vd_api web3 GET /v1/identity
json_get "$T/body" "['ca']" >"$T/ans-ca.pem"
[ "$(subject_cn "$T/ans-ca.pem")" = "$V1 v3" ] && pass "and answers name it first" || fail "answer's first CA: $(subject_cn "$T/ans-ca.pem")"
expect_rc 0 "the rotation again" "$VC" -c "$VCONF" key rotate vault.shadow-ca
expect_out "version:    4" "finishes v4"
[ "$(ncerts "$CA")" = 3 ] && [ "$(ncerts "$LINKS")" = 2 ] && [ "$(subject_cn "$CA")" = "$V1 v4" ] \
	&& pass "ca.pem: v4, v3, v2 and two links: the orphan certificate and link replaced" || fail "after the second try: $(ncerts "$CA") certs, $(ncerts "$LINKS") links"
nth "$CA" 1 "$T/ca-v4.pem"
nth "$LINKS" 2 "$T/link4.pem"
openssl verify -CAfile "$T/ca-v3.pem" "$T/link4.pem" >/dev/null 2>&1 && [ "$(openssl x509 -in "$T/link4.pem" -noout -pubkey)" = "$(openssl x509 -in "$T/ca-v4.pem" -noout -pubkey)" ] \
	&& pass "the new link is for the v4 certificate in ca.pem, from v3" || fail "link after the second try"
vd_enroll web7 && verifies "$T/ca-v4.pem" "$T/sh-web7/identity/cert.pem" && pass "v4 issues" || fail "enrol web7"

# The audit trail: each step an admin record, and the log verifies.
for what in '"op":"key.rotate","name":"vault.shadow-ca","uid":[0-9]*,"decision":"done"' \
	'"op":"key.destroy","name":"vault.shadow-ca","version":1,"uid":[0-9]*,"decision":"done"' \
	'"op":"key.destroy","name":"vault.shadow-ca","version":1,"uid":[0-9]*,"decision":"failed","reason":"vault.shadow-ca@v1 issued certificates still valid for 1 shadow,'; do
	grep -q "$what" "$VDIR/state/audit.log" && pass "audited: $what" || fail "no record $what"
done
vd_stop
expect_rc 0 "vaultctl audit verify" "$VC" -c "$VCONF" audit verify
vd_sanitizer_check
t_done
