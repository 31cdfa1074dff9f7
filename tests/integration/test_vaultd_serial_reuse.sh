#!/usr/bin/env bash
# A serial is no secret (the audit log records it). A certificate signed with the
# shadow CA's key that carries an enrolled shadow's serial passes the TLS handshake,
# but it is not the certificate the vault issued: the key process compares the
# fingerprint netproc read off the handshake with the one it recorded, and refuses
# it (403, audited, logged), whether the serial is in its cache or not. Here the
# forger signs in the vault's own token (svtool, with vaultd stopped: one process
# owns the token), as only someone holding the CA key could.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
vd_setup
printf 'shadows = {\n  web1 = { accounts = [ "x" ]; names = [ "a.test" ]; };\n};\n' >"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }
vd_enroll web1 && pass "enrol web1" || fail "enrol web1"
vd_api web1 GET /v1/identity
expect_code 200 "web1's certificate is served"
vd_stop

# The forgery: web1's certificate (subject, serial, dates, extensions) for a new key,
# signed again by the shadow CA's key in the token.
mkdir -p "$T/sh-forged/identity"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/sh-forged/identity/key.pem" 2>"$T/err"
"$(sv_bin svtool)" "$VCONF" reissue "$T/sh-web1/identity/cert.pem" "$T/sh-forged/identity/key.pem" \
	>"$T/sh-forged/identity/cert.pem" 2>"$T/err" && pass "svtool reissue" || { fail "svtool reissue"; cat "$T/err"; }
SERIAL1=$(openssl x509 -in "$T/sh-web1/identity/cert.pem" -noout -serial | cut -d= -f2 | tr A-F a-f)
[ "$(openssl x509 -in "$T/sh-forged/identity/cert.pem" -noout -serial 2>/dev/null | cut -d= -f2 | tr A-F a-f)" = "$SERIAL1" ] \
	&& openssl verify -CAfile "$VD_CA" "$T/sh-forged/identity/cert.pem" >/dev/null 2>&1 \
	&& [ "$(openssl x509 -in "$T/sh-forged/identity/cert.pem" -noout -fingerprint -sha256)" != \
		"$(openssl x509 -in "$T/sh-web1/identity/cert.pem" -noout -fingerprint -sha256)" ] \
	&& pass "a second certificate with web1's serial, valid under the shadow CA" \
	|| fail "forged certificate: $(openssl verify -CAfile "$VD_CA" "$T/sh-forged/identity/cert.pem" 2>&1)"

NOT_ISSUED="client certificate is not the one the vault issued with its serial"
vd_start || { t_done; exit 1; }
# First the forgery (the serial not cached yet), then web1 (cached), then the forgery again.
vd_api forged GET /v1/identity
expect_code 403 "its handshake passes, the key process refuses it (serial not cached)"
grep -qF "problem:revoked\"" "$T/body" && grep -qF "\"detail\":\"$NOT_ISSUED\"" "$T/body" \
	&& pass "and says why (type revoked)" || fail "answer: $(cat "$T/body")"
vd_api web1 GET /v1/identity
expect_code 200 "web1's own certificate is served"
vd_api forged GET /v1/acme/accounts/x
expect_code 403 "refused again (serial cached)"
vd_sign forged x https://ca.test/acme/new-order nforged1 '{"identifiers":[{"type":"dns","value":"a.test"}]}'
expect_code 403 "a signing request with it is refused"
grep -qF "\"shadow\":\"?\",\"serial\":\"$SERIAL1\",\"account\":\"x\",\"op\":\"unclassified\"" "$VDIR/state/audit.log" \
	&& grep -qF "\"decision\":\"deny\",\"code\":\"revoked\",\"reason\":\"$NOT_ISSUED\"" "$VDIR/state/audit.log" \
	&& pass "audited: a refusal of that serial, naming no shadow" || { fail "audit record"; tail -3 "$VDIR/state/audit.log"; }
grep -q "a client certificate with serial $SERIAL1 (shadow web1) is not the one the vault issued: fingerprint [0-9a-f]\{64\}, issued [0-9a-f]\{64\}; refused" "$T/vaultd.log" \
	&& pass "vaultd's log names the serial, the shadow and both fingerprints" || fail "no log line"
vd_api web1 GET /v1/identity
expect_code 200 "web1 is still served after the refusals"
expect_rc 0 "the audit log verifies" "$VC" -c "$VCONF" audit verify
vd_stop
vd_sanitizer_check
t_done
