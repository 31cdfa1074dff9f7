#!/usr/bin/env bash
# Who may talk to vaultd: enrolment tokens are single use and expire; the API
# port refuses missing, foreign, expired and revoked client certificates in
# the TLS handshake, before any HTTP; revocation also cuts connections that
# are already open.  Client certificates here are valid 12 days: renewable
# only in their last third (4 days), not the moment they are issued.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
vd_setup 'shadow_cert_days = 12;'
printf 'shadows = {\n  web1 = { accounts = [ "x" ]; names = [ "a.test" ]; };\n  web2 = { accounts = [ "x" ]; names = [ "b.test" ]; };\n};\n' \
	>"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }

# Enrolment.
TOK=$("$VC" -c "$VCONF" --json shadow add web1 | json_get /dev/stdin '["token"]')
expect_rc 7 "enrolment with a wrong token" "$SH" --state-dir "$T/x" enroll --vault "$VD_ENROLL" \
	--token AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA --ca "$VD_CA"
expect_err "token invalid, used or expired" "a wrong token is refused with a reason"
expect_rc 8 "enrolment trusting another CA" "$SH" --state-dir "$T/y" enroll --vault "$VD_ENROLL" \
	--token "$TOK" --ca /etc/ssl/certs/ca-certificates.crt
expect_rc 0 "enrolment with the token" "$SH" --state-dir "$T/sh-web1" enroll --vault "$VD_ENROLL" --token "$TOK" --ca "$VD_CA"
[ "$(stat -c %a "$T/sh-web1/identity/key.pem")" = 600 ] && pass "shadow key is 0600" || fail "key mode"
expect_rc 7 "the token is single use" "$SH" --state-dir "$T/z" enroll --vault "$VD_ENROLL" --token "$TOK" --ca "$VD_CA"
! grep -q "already used" "$T/err" \
	&& grep -qF '"type":"enroll","shadow":"web1","decision":"deny","code":"bad-token","reason":"enrolment token invalid, used or expired: token already used"' "$VDIR/state/audit.log" \
	&& grep -qF '"type":"enroll","shadow":"?","decision":"deny","code":"bad-token","reason":"enrolment token invalid, used or expired: unknown token"' "$VDIR/state/audit.log" \
	&& pass "the audit log says which check refused a token, and for which shadow; the client is not told" \
	|| { fail "bad-token records"; grep bad-token "$VDIR/state/audit.log"; cat "$T/err"; }
expect_rc 6 "enrolling twice needs --force" "$SH" --state-dir "$T/sh-web1" enroll --vault "$VD_ENROLL" --token "$TOK" --ca "$VD_CA"
expect_rc 2 "a token lifetime over 30 days is refused" "$VC" -c "$VCONF" shadow add web9 --ttl 31d
expect_rc 6 "an active shadow cannot get a new token" "$VC" -c "$VCONF" shadow add web1
vd_enroll web2 && pass "enrol web2" || fail "enrol web2"
openssl x509 -in "$T/sh-web1/identity/cert.pem" -noout -subject -ext extendedKeyUsage >"$T/c.txt"
grep -q "CN = web1" "$T/c.txt" && grep -q "Client Authentication" "$T/c.txt" \
	&& pass "certificate names the shadow, client auth only" || fail "certificate content"

# Secrets and the state are owner-only, on both sides (SECURITY.md): the vault's state
# directory, database, audit log, TLS key, PIN files and token directory; the shadow's
# TLS and box keys.
BAD=
for f in "$VDIR/state" "$VDIR/state/hsm" "$VDIR/state/hsm/tokens" "$VDIR/state/tls" "$T/sh-web1"; do
	[ "$(stat -c %a "$f")" = 700 ] || BAD="$BAD $f:$(stat -c %a "$f")"
done
for f in state.db audit.log admin.sock tls/server.key hsm/pin hsm/so-pin; do
	[ "$(stat -c %a "$VDIR/state/$f")" = 600 ] || BAD="$BAD $f:$(stat -c %a "$VDIR/state/$f")"
done
for f in key.pem box.key; do
	[ "$(stat -c %a "$T/sh-web1/identity/$f")" = 600 ] || BAD="$BAD $f:$(stat -c %a "$T/sh-web1/identity/$f")"
done
[ -z "$BAD" ] && pass "state, keys and PINs are owner-only (directories 0700, files 0600)" || fail "modes:$BAD"

# An expired token is refused like a wrong one: exit 7 (refused by the vault, shadow(8)),
# HTTP 403 with the same detail, and a bad-token record in the audit log naming web3 and
# "token expired", though its shadow is still pending and the token unused.  The shortest --ttl is a minute, so web3's token is aged in the database
# instead, with vaultd stopped; vaultd runs again afterwards for the checks below.
TOK3=$("$VC" -c "$VCONF" --json shadow add web3 --ttl 1h | json_get /dev/stdin '["token"]')
vd_stop
"$PY" - "$VDIR/state/state.db" <<'PY' 2>"$T/err" && pass "web3's token aged past its expiry" || { fail "ageing the token"; cat "$T/err"; }
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
n = db.execute("UPDATE enroll_tokens SET expires = ? WHERE shadow = 'web3' AND used IS NULL",
               (int(time.time()) - 60,)).rowcount
db.commit()
assert n == 1, n
PY
vd_start || { t_done; exit 1; }
DENY='"type":"enroll","shadow":"web3","decision":"deny","code":"bad-token","reason":"enrolment token invalid, used or expired: token expired"'
NDENY=$(grep -cF "$DENY" "$VDIR/state/audit.log")
expect_rc 7 "enrolment with an expired token" "$SH" --state-dir "$T/sh-web3" enroll --vault "$VD_ENROLL" \
	--token "$TOK3" --ca "$VD_CA"
expect_err "(HTTP 403): enrolment token invalid, used or expired" "the vault refused the expired token (403)"
! grep -q "token expired" "$T/err" && pass "without telling the client the token expired" || fail "the client was told why: $(cat "$T/err")"
[ "$(grep -cF "$DENY" "$VDIR/state/audit.log")" = $((NDENY + 1)) ] \
	&& pass "the expired token's refusal is audited as bad-token" || fail "no bad-token record for the expired token"
[ ! -e "$T/sh-web3/identity/cert.pem" ] && pass "no identity kept for the expired token" || fail "expired token gave a certificate"

vd_api web1 GET /v1/health
expect_code 200 "an enrolled shadow is served"

vd_api web1 GET /v1/identity
expect_code 200 "GET /v1/identity"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["shadow"] == "web1" and len(d["serial"]) >= 16 and d["not_after"] > 0' "$T/body" \
	&& pass "it names the shadow, the certificate's serial and expiry" || fail "identity answer: $(cat "$T/body")"

# When the identity may be renewed: the vault says so at enrolment (renew_from), and the
# shadow keeps it beside the certificate.  For 12 days: the last third (4 days, and a third
# of the minutes notBefore is set back by), not 30.
NA=$(cert_time "$T/sh-web1/identity/cert.pem" end)
NB=$(cert_time "$T/sh-web1/identity/cert.pem" start)
RF=$((NA - (NA - NB) / 3))
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d == {"not_after": int(sys.argv[2]), "renew_from": int(sys.argv[3])}, d' \
	"$T/sh-web1/identity/renewal.json" "$NA" "$RF" 2>"$T/err" \
	&& [ $((NA - RF)) -ge $((4 * 86400)) ] && [ $((NA - RF)) -lt $((4 * 86400 + 3600)) ] \
	&& pass "enrolment kept renew_from: the last third of a 12-day certificate" || { fail "renewal.json"; cat "$T/err"; }

# Renewing the client certificate (POST /v1/identity/renew): only from renew_from, so a
# fresh one is refused (audited); a body other than {csr}, another method and a
# client without a certificate are refused before the key process.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/r.key" -subj /CN=x -out "$T/r.csr" 2>/dev/null
# The request must prove it comes from the certificate's key (the key process does not see the
# TLS handshake): a proof by another key, or another certificate than the one in use, is refused.
vd_api web1 POST /v1/identity/renew "$(renew_body "$T/r.csr" "$T/sh-web1/identity/cert.pem" "$T/r.key")"
expect_code 403 "a renewal whose proof is by another key"
expect_problem bad-proof "refused as a bad proof"
vd_api web1 POST /v1/identity/renew "$(renew_body "$T/r.csr" "$T/sh-web2/identity/cert.pem" "$T/sh-web2/identity/key.pem")"
expect_code 403 "a renewal proved with another shadow's certificate and key"
grep -q '"code":"bad-proof","reason":"certificate is not the one this request came with"' "$VDIR/state/audit.log" \
	&& pass "refused as not the certificate in use" || fail "no bad-proof record for a foreign certificate"
RBODY=$(renew_body "$T/r.csr" "$T/sh-web1/identity/cert.pem" "$T/sh-web1/identity/key.pem")
vd_api web1 POST /v1/identity/renew "$RBODY"
expect_code 403 "renewing a fresh certificate"
expect_problem too-early "refused as too early"
grep -q "this certificate can be renewed from $RF\"" "$T/body" \
	&& [ "$(json_get "$T/body" "['renew_from']")" = "$RF" ] \
	&& pass "the refusal says from when, in its detail and as renew_from" || fail "too-early detail: $(cat "$T/body")"
grep -q '"type":"renew","shadow":"web1","replaces":"[0-9a-f]*","decision":"deny","code":"too-early"' "$VDIR/state/audit.log" \
	&& pass "the refused renewal is audited" || fail "no renew record"
# shadow renew leaves a fresh 12-day identity alone, without a warning (it used to renew
# every certificate of 30 days or less at every run).
cp "$T/sh-web1/identity/cert.pem" "$T/id1.cert"
expect_rc 0 "shadow renew with a fresh identity" "$SH" --state-dir "$T/sh-web1" renew
cmp -s "$T/sh-web1/identity/cert.pem" "$T/id1.cert" && ! grep -q "identity" "$T/out" "$T/err" \
	&& pass "a fresh identity is not renewed, and no warning" || { fail "fresh identity renewed or warned"; cat "$T/out" "$T/err"; }
# A shadow that kept an earlier window (shadow_renew_days changed since its issuance) asks,
# is told too-early with the vault's time, keeps that, and says nothing.
"$PY" -c 'import json,sys; json.dump({"not_after": int(sys.argv[2]), "renew_from": int(sys.argv[3])}, open(sys.argv[1], "w"))' \
	"$T/sh-web1/identity/renewal.json" "$NA" "$(($(date +%s) - 60))"
expect_rc 0 "shadow renew with a stale renewal time" "$SH" --state-dir "$T/sh-web1" renew
cmp -s "$T/sh-web1/identity/cert.pem" "$T/id1.cert" && ! grep -q "identity" "$T/out" "$T/err" \
	&& [ "$(json_get "$T/sh-web1/identity/renewal.json" "['renew_from']")" = "$RF" ] \
	&& pass "a stale renewal time is replaced by the vault's, without a warning" \
	|| { fail "stale renewal time"; cat "$T/out" "$T/err" "$T/sh-web1/identity/renewal.json"; }
grep -c '"type":"renew","shadow":"web1","replaces":"[0-9a-f]*","decision":"deny","code":"too-early"' "$VDIR/state/audit.log" >"$T/n"
[ "$(cat "$T/n")" = 2 ] && pass "that one ask is audited as too-early" || fail "too-early records: $(cat "$T/n")"
# Whatever renewal.json says, an expired identity is warned about (a forged expired
# certificate, with a renew_from far after its expiry).
cp -r "$T/sh-web1" "$T/sh-exp"
"$PY" - "$T/sh-exp/identity" <<'PY' 2>"$T/err" || fail "forging an expired identity: $(cat "$T/err")"
import datetime, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
d = sys.argv[1]
k = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
n = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "web1")])
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=10))
     .not_valid_after(now - datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
open(d + "/cert.pem", "wb").write(c.public_bytes(serialization.Encoding.PEM))
na = int((now - datetime.timedelta(days=1)).timestamp())
json.dump({"not_after": na, "renew_from": na + 100 * 86400}, open(d + "/renewal.json", "w"))
PY
run "$SH" --state-dir "$T/sh-exp" status
grep -q "warning: this server's vault identity certificate expired on" "$T/err" \
	&& pass "an expired identity is warned about, whatever renewal.json says" || { fail "no warning for an expired identity"; cat "$T/out" "$T/err"; }
vd_api web1 POST /v1/identity/renew '{"csr":"x","certificate":"y","proof":"z","extra":"w"}'
expect_code 400 "a renewal body with an extra member"
vd_api web1 GET /v1/identity/renew
expect_code 405 "renewal by GET"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' --cacert "$VD_CA" -H 'Content-Type: application/json' --data-binary "$RBODY" "$VD_API/v1/identity/renew")
[ "$CODE" = 401 ] || [ "$CODE" = 000 ] && pass "renewal without a client certificate refused ($CODE)" || fail "renewal without a certificate: $CODE"

# No renegotiation (TLS 1.2): a connection's certificate never changes, so netproc reads its
# serial once.  openssl s_client's "R" asks for one; the vault answers with the
# no_renegotiation alert, and the request sent after it is never answered.  (OpenSSL 3
# refuses client renegotiation by default as well; vaultd also sets SSL_OP_NO_RENEGOTIATION.
# With SSL_OP_ALLOW_CLIENT_RENEGOTIATION set, this check fails: the request gets its 200.)
( printf 'R\n'; sleep 1; printf 'GET /v1/identity HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; sleep 1 ) |
	timeout 10 openssl s_client -tls1_2 -connect "127.0.0.1:$VD_API_PORT" -CAfile "$VD_CA" \
		-cert "$T/sh-web1/identity/cert.pem" -key "$T/sh-web1/identity/key.pem" >"$T/reneg.out" 2>&1
grep -q "RENEGOTIATING" "$T/reneg.out" && grep -q "no renegotiation" "$T/reneg.out" && ! grep -q "^HTTP/1.1 200" "$T/reneg.out" \
	&& pass "TLS 1.2 renegotiation refused (no_renegotiation alert)" \
	|| { fail "renegotiation"; grep -E "RENEG|renegotiation|^HTTP" "$T/reneg.out"; }

# No resumption: every connection shows its certificate again (TLS 1.3 and 1.2).
"$PY" - "$VD_API_PORT" "$VD_CA" "$T/sh-web1/identity" >"$T/resume.out" 2>&1 <<'PY'
import http.client, ssl, sys
port, ca, ident = sys.argv[1:4]
for v in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(ident + "/cert.pem", ident + "/key.pem")
    ctx.minimum_version = ctx.maximum_version = v
    sess = None
    for i in range(2):
        c = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx)
        c.connect()
        if sess is not None:
            c.sock.close()
            c.sock = ctx.wrap_socket(__import__("socket").create_connection(("127.0.0.1", int(port))),
                                     server_hostname="127.0.0.1", session=sess)
        c.request("GET", "/v1/health"); r = c.getresponse(); r.read()
        print(v.name, i, r.status, "reused" if c.sock.session_reused else "full", flush=True)
        sess = c.sock.session
        c.close()
PY
grep -c " 200 full$" "$T/resume.out" | grep -qx 4 && pass "no TLS session resumption (1.3 and 1.2)" \
	|| { fail "TLS session resumed"; cat "$T/resume.out"; }

# No certificate, a foreign one, an expired one: refused in the handshake.
run curl -s --cacert "$VD_CA" "$VD_API/v1/health"
[ "$RC" -ne 0 ] && pass "no client certificate: TLS handshake refused (curl $RC)" || fail "no cert accepted"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/fk.pem" -out "$T/fc.pem" \
	-subj "/CN=web1" -days 2 2>/dev/null
run curl -s --cacert "$VD_CA" --cert "$T/fc.pem" --key "$T/fk.pem" "$VD_API/v1/health"
[ "$RC" -ne 0 ] && pass "a certificate from another CA: refused (curl $RC)" || fail "foreign cert accepted"
vd_stop
"$(sv_bin svtool)" "$VCONF" expired web1 "$T/sh-web1/identity/key.pem" >"$T/expired.pem" \
	&& pass "expired certificate made" || fail "svtool expired"
vd_start
run curl -s --cacert "$VD_CA" --cert "$T/expired.pem" --key "$T/sh-web1/identity/key.pem" "$VD_API/v1/health"
[ "$RC" -ne 0 ] && pass "an expired certificate: refused (curl $RC)" || fail "expired cert accepted"
# The key process checks expiry too (netproc is not trusted): web1's certificate, recorded
# as expired in the database while its real notAfter is ahead, passes the handshake and is
# refused by the key process (403 expired, audited); then its date is put back.
set_na() { # SHIFT: web1's valid certificates' not_after += SHIFT, vaultd stopped
	vd_stop
	"$PY" - "$VDIR/state/state.db" "$1" <<'PY' || fail "changing web1's not_after"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
n = db.execute("UPDATE shadow_certs SET not_after = not_after + ? WHERE shadow = 'web1' AND revoked = 0",
               (int(sys.argv[2]),)).rowcount
db.commit()
assert n >= 1, n
PY
	vd_start
}
set_na -$((400 * 86400))
vd_api web1 GET /v1/identity
expect_code 403 "a certificate the vault records as expired, though TLS accepts it"
expect_problem expired "refused by the key process as expired"
vd_sign web1 le "https://127.0.0.1:1/x" "exp-$RANDOM" '{}'
expect_code 403 "and a signing request with it"
grep -q '"decision":"deny","code":"expired"' "$VDIR/state/audit.log" \
	&& pass "the refusal is audited as expired" || fail "no expired record"
set_na $((400 * 86400))
vd_api web1 GET /v1/identity
expect_code 200 "served again once its date is back"
run curl -s --cacert "$VD_CA" "$VD_ENROLL/v1/acme/accounts/x"
grep -q "only /v1/enroll" "$T/out" && pass "the enrolment port serves nothing else" || fail "enroll port routes"

# Revocation: new connections refused; an open keep-alive connection is cut.
"$PY" - "$VD_API_PORT" "$VD_CA" "$T/sh-web2/identity" "$VC" "$VCONF" >"$T/ka.out" 2>&1 <<'PY'
import http.client, ssl, subprocess, sys
port, ca, ident, vc, conf = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(ident + "/cert.pem", ident + "/key.pem")
c = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx)
c.request("GET", "/v1/health"); r = c.getresponse(); r.read()
print("before", r.status)
subprocess.run([vc, "-c", conf, "-q", "shadow", "revoke", "web2"], check=True)
try:
    c.request("GET", "/v1/health"); r = c.getresponse(); r.read()
    print("after", r.status)
except Exception as e:
    print("after closed", type(e).__name__)
PY
grep -q "before 200" "$T/ka.out" && pass "keep-alive connection served before revocation" || { fail "keep-alive"; cat "$T/ka.out"; }
grep -q "after closed" "$T/ka.out" && pass "revocation cut the open connection" || { fail "open connection not cut"; cat "$T/ka.out"; }
run curl -s --cacert "$VD_CA" --cert "$T/sh-web2/identity/cert.pem" --key "$T/sh-web2/identity/key.pem" "$VD_API/v1/health"
[ "$RC" -ne 0 ] && pass "a revoked certificate: refused at once (curl $RC)" || fail "revoked cert accepted"
vd_api web1 GET /v1/health
expect_code 200 "other shadows are unaffected"
expect_rc 0 "shadow list" "$VC" -c "$VCONF" shadow list
grep -q '^web2  *revoked' "$T/out" && pass "web2 listed as revoked" || fail "shadow list state"
# Enrolled again the documented way (a new certificate before the old one expires): add the
# revoked shadow again and enrol with the new token and --force.
TOK2=$("$VC" -c "$VCONF" --json shadow add web2 | json_get /dev/stdin '["token"]')
expect_rc 0 "a revoked shadow enrols again with a new token (--force)" \
	"$SH" -q --state-dir "$T/sh-web2" enroll --vault "$VD_ENROLL" --token "$TOK2" --ca "$VD_CA" --force
vd_api web2 GET /v1/health
expect_code 200 "web2 is served again with its new certificate"
expect_rc 5 "revoking an unknown shadow" "$VC" -c "$VCONF" shadow revoke nosuch

# Tokens are kept only as their SHA-256 (vaultctl(8)): each token of this test - used (web1,
# web2's second), expired (web3) - is in enroll_tokens by its hash, and its text is nowhere
# in the state directory (state.db, its -wal, audit.log...) nor in vaultd's log.
"$PY" - "$VDIR/state/state.db" "$TOK" "$TOK2" "$TOK3" <<'PY' 2>"$T/err" \
	&& pass "the tokens are in the database by their SHA-256" || { fail "token hashes"; cat "$T/err"; }
import hashlib, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
for t in sys.argv[2:]:
    h = hashlib.sha256(t.encode()).digest()
    assert db.execute("SELECT count(*) FROM enroll_tokens WHERE hash = ?", (h,)).fetchone()[0] == 1, t
PY
for f in state.db state.db-wal audit.log; do
	[ -s "$VDIR/state/$f" ] || fail "no $f to look for tokens in"
done
LEAK=$(grep -rlaF -e "$TOK" -e "$TOK2" -e "$TOK3" "$VDIR/state" "$T/vaultd.log")
[ -z "$LEAK" ] && pass "no token in clear in state.db, its -wal, audit.log or vaultd's log" \
	|| fail "an enrolment token in clear in: $LEAK"
vd_stop
vd_sanitizer_check
t_done
