#!/usr/bin/env bash
# The vault's TLS server certificate, issued by the shadow CA at init, is renewed by vaultd
# itself in its last tls.renew_days days (at start, then every hour), and at once by
# `vaultctl tls renew`: the same key and names, a new serial, served by the running
# network process, audited.  A certificate the shadow CA did not issue is left alone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
vd_setup 'tls = { renew_days = 900; };' # longer than the 825 days init gives: due at once
TLS=$VDIR/state/tls/server.pem
cp "$TLS" "$T/init.pem"

serial() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
pubkey() { openssl x509 -in "$1" -noout -pubkey; }
# served PORT: the certificate the running vault presents, into $T/served.pem.
served() {
	openssl s_client -connect "127.0.0.1:$1" </dev/null 2>/dev/null | openssl x509 >"$T/served.pem" 2>/dev/null
}

vd_start || { t_done; exit 1; }
[ "$(serial "$TLS")" != "$(serial "$T/init.pem")" ] && [ "$(pubkey "$TLS")" = "$(pubkey "$T/init.pem")" ] \
	&& pass "in its renewal window at start: reissued, same key" || fail "not renewed at start"
openssl verify -purpose sslserver -CAfile "$VD_CA" "$TLS" >/dev/null 2>&1 \
	&& openssl x509 -in "$TLS" -noout -ext subjectAltName | grep -q "IP Address:127.0.0.1" \
	&& pass "from the shadow CA, for the same names" || fail "renewed certificate"
served "$VD_API_PORT"
[ "$(serial "$T/served.pem")" = "$(serial "$TLS")" ] && pass "the API serves it" || fail "served $(serial "$T/served.pem")"
served "$VD_ENROLL_PORT"
[ "$(serial "$T/served.pem")" = "$(serial "$TLS")" ] && pass "the enrolment port too" || fail "enrol port served $(serial "$T/served.pem")"
grep -q '"type":"admin","serial":"[0-9a-f]*","not_after":[0-9]*,"op":"tls.renew","by":"vaultd","decision":"done"' "$VDIR/state/audit.log" \
	&& pass "audited as done by vaultd" || { fail "no audit record"; grep tls.renew "$VDIR/state/audit.log"; }
vd_enroll web1 && pass "a shadow enrols against it" || fail "enrol"

# Outside its window (the default): left alone at start.
vd_stop
vd_config ''
cp "$TLS" "$T/before.pem"
vd_start || { t_done; exit 1; }
cmp -s "$TLS" "$T/before.pem" && pass "not due: not reissued at start" || fail "reissued when not due"

# vaultctl tls renew: at once, whatever the window.
expect_rc 0 "vaultctl tls renew" "$VC" -c "$VCONF" tls renew
S=$(serial "$TLS")
grep -qi "TLS certificate renewed: serial $S, valid until 20" "$T/out" && [ "$S" != "$(serial "$T/before.pem")" ] \
	&& pass "it says the new serial and expiry" || { fail "tls renew output"; cat "$T/out"; }
served "$VD_API_PORT"
[ "$(serial "$T/served.pem")" = "$S" ] && pass "served at once, no restart" || fail "served $(serial "$T/served.pem")"
vd_api web1 GET /v1/identity
expect_code 200 "a shadow's mutual TLS with the renewed certificate"
grep -q '"op":"tls.renew","uid":[0-9]*,"decision":"done"' "$VDIR/state/audit.log" \
	&& pass "the admin request is audited" || fail "no admin record"
expect_rc 2 "vaultctl tls with no subcommand" "$VC" -c "$VCONF" tls
expect_rc 0 "vaultctl status" "$VC" -c "$VCONF" --json status
WANT=$(date -u -d "$(openssl x509 -in "$TLS" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
[ "$(json_get "$T/out" "['tls_cert_expires']")" = "$WANT" ] && [ "$(json_get "$T/out" "['shadow_ca']")" = "vault.shadow-ca@v1" ] \
	&& [ "$(json_get "$T/out" "['tls_key']")" = "$VDIR/state/tls/server.key" ] \
	&& pass "status shows the TLS certificate's expiry, the issuing CA and the key file" || { fail "status"; cat "$T/out"; }

# A new key: vaultctl tls renew --new-key replaces the key file and serves a certificate for
# the new key at once; shadows go on (they trust the CA, not the key).
KEYF=$VDIR/state/tls/server.key
cp "$KEYF" "$T/key-before.pem"
cp "$TLS" "$T/cert-before.pem"
expect_rc 0 "vaultctl tls renew --new-key" "$VC" -c "$VCONF" tls renew --new-key
expect_out "TLS certificate renewed for a new key" "says so"
grep -q '"op":"tls.renew","new_key":true,"uid":[0-9]*,"decision":"done"' "$VDIR/state/audit.log" \
	&& pass "the audit record says it was for a new key" || { fail "no new_key record"; grep tls.renew "$VDIR/state/audit.log"; }
[ "$(pubkey "$TLS")" != "$(pubkey "$T/cert-before.pem")" ] && ! cmp -s "$KEYF" "$T/key-before.pem" \
	&& [ "$(openssl pkey -in "$KEYF" -pubout)" = "$(pubkey "$TLS")" ] && [ "$(stat -c %a "$KEYF")" = 600 ] \
	&& [ ! -e "$KEYF.next" ] \
	&& pass "a new key in tls.key (0600), the certificate for it, nothing left beside" || fail "new key files"
served "$VD_API_PORT"
[ "$(pubkey "$T/served.pem")" = "$(pubkey "$TLS")" ] && pass "served at once, no restart" || fail "new key not served"
vd_api web1 GET /v1/identity
expect_code 200 "a shadow's mutual TLS with the new key"
vd_stop
vd_start || { t_done; exit 1; }
served "$VD_ENROLL_PORT"
[ "$(pubkey "$T/served.pem")" = "$(pubkey "$TLS")" ] && pass "and after a restart" || fail "after restart"

# The swap cut short (an injected fault after the certificate, then vaultd killed): the new
# key waits in tls.key.next; at the next start netproc takes it and the key process puts it in
# place.
vd_stop
vd_start_fault tls-key-swap || { fail "vaultd did not start (SV_FAULT=tls-key-swap)"; t_done; exit 1; }
expect_rc 1 "tls renew --new-key stopped before the key swap (fault)" "$VC" -c "$VCONF" tls renew --new-key
vd_crash
[ -e "$KEYF.next" ] && [ "$(openssl pkey -in "$KEYF.next" -pubout)" = "$(pubkey "$TLS")" ] \
	&& [ "$(openssl pkey -in "$KEYF" -pubout)" != "$(pubkey "$TLS")" ] \
	&& pass "left behind: the certificate for the key in tls.key.next, not tls.key" || fail "after the fault"
vd_start || { t_done; exit 1; }
served "$VD_API_PORT"
[ "$(pubkey "$T/served.pem")" = "$(pubkey "$TLS")" ] && [ ! -e "$KEYF.next" ] \
	&& [ "$(openssl pkey -in "$KEYF" -pubout)" = "$(pubkey "$TLS")" ] \
	&& pass "the restart serves the new key and finishes the swap" || { fail "after the restart"; tail -5 "$T/vaultd.log"; }
vd_api web1 GET /v1/identity
expect_code 200 "shadows are served"

# A certificate from elsewhere (self-signed here) for the same key: left alone, at start and
# by vaultctl tls renew, which says why.
vd_stop
openssl req -x509 -key "$VDIR/state/tls/server.key" -subj /CN=elsewhere -days 2 \
	-addext "subjectAltName=IP:127.0.0.1" -out "$TLS" 2>/dev/null
cp "$TLS" "$T/elsewhere.pem"
vd_config 'tls = { renew_days = 900; };'
VD_CA_SAVED=$VD_CA
VD_CA=$T/elsewhere.pem # what vd_start's health check trusts now
vd_start || { t_done; exit 1; }
cmp -s "$TLS" "$T/elsewhere.pem" && pass "a certificate from elsewhere is left alone, though due" || fail "replaced"
expect_rc 6 "vaultctl tls renew of a certificate from elsewhere" "$VC" -c "$VCONF" tls renew
expect_err "not issued by the shadow CA: renew it where it came from" "says why"
VD_CA=$VD_CA_SAVED
vd_stop
expect_rc 0 "vaultctl audit verify" "$VC" -c "$VCONF" audit verify
vd_sanitizer_check
t_done
