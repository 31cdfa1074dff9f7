#!/usr/bin/env bash
# vaultctl key management through a running vaultd (the README's flow), what
# the token really holds, and a clear error with the documented exit status
# for every bad input: names, types, PIN, module, token, configuration.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
S=$VDIR/state

vd_config
expect_rc 8 "key commands need the daemon" "$VC" -c "$VCONF" key list
expect_err "cannot reach vaultd" "says the daemon is not reachable"
expect_rc 0 "init creates state and a SoftHSM2 token" "$VC" -c "$VCONF" init
# shellcheck disable=SC2034 # read by vaultd.sh's helpers
VD_CA=$S/ca.pem
[ "$(stat -c %a "$S")" = 700 ] && pass "state dir is 0700" || fail "state dir mode $(stat -c %a "$S")"
[ "$(stat -c %a "$S/hsm/pin")" = 600 ] && pass "PIN file is 0600" || fail "PIN mode"
[ "$(stat -c %a "$S/tls/server.key")" = 600 ] && pass "TLS key is 0600" || fail "TLS key mode"
expect_rc 6 "second init refuses" "$VC" -c "$VCONF" init
expect_err "already initialised" "second init says why"
vd_start || { t_done; exit 1; }

expect_rc 0 "create ec-p256" "$VC" -c "$VCONF" key create acct --type ec-p256
expect_out '"kty":"EC"' "create prints the JWK"
expect_rc 0 "create rsa-2048 exportable" "$VC" -c "$VCONF" key create web --type rsa-2048 --exportable
expect_rc 0 "create ed25519" "$VC" -c "$VCONF" key create sig --type ed25519
expect_rc 0 "show --json" "$VC" -c "$VCONF" --json key show acct
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["jwk"]["crv"]=="P-256" and len(d["thumbprint"])==43 and d["uri"].startswith("pkcs11:token=shadowvault;object=acct@v1;id=")' "$T/out" \
	&& pass "show --json has JWK, thumbprint and URI" || fail "show --json content"
expect_rc 0 "rotate" "$VC" -c "$VCONF" key rotate acct
expect_out "version:    2" "rotate makes version 2"
expect_rc 0 "list" "$VC" -c "$VCONF" key list
grep -q '^acct  *1  *ec-p256  *retired' "$T/out" && pass "v1 retired" || fail "v1 not retired"
grep -q '^acct  *2  *ec-p256  *current' "$T/out" && pass "v2 current" || fail "v2 not current"
expect_rc 6 "destroying the current version is refused" "$VC" -c "$VCONF" key destroy acct --version 2 --yes
expect_rc 2 "destroy without --yes is refused" "$VC" -c "$VCONF" key destroy acct --version 1
expect_rc 0 "destroy retired version" "$VC" -c "$VCONF" key destroy acct --version 1 --yes
expect_rc 0 "list after destroy" "$VC" -c "$VCONF" key list
grep -q '^acct  *1  *ec-p256  *destroyed .* -$' "$T/out" && pass "v1 destroyed, no URI shown for it" || fail "v1 state: $(grep '^acct  *1 ' "$T/out")"
grep -q '^acct  *2  *ec-p256  *current .* pkcs11:.*object=acct@v2' "$T/out" && pass "v2 keeps its URI" || fail "v2 URI: $(grep '^acct  *2 ' "$T/out")"

# Bad input: clear errors, documented exit codes.
expect_rc 2 "name with a slash" "$VC" -c "$VCONF" key create 'a/b' --type ec-p256
expect_err "not allowed" "bad name explained"
expect_rc 2 "overlong name" "$VC" -c "$VCONF" key create "$(printf 'a%.0s' $(seq 70))" --type ec-p256
expect_err "longer than 64" "long name explained"
expect_rc 2 "control character in name" "$VC" -c "$VCONF" key create "$(printf 'a\tb')" --type ec-p256
expect_rc 2 "unknown type" "$VC" -c "$VCONF" key create z --type ec-p521
expect_err "unknown key type" "unknown type explained"
expect_rc 2 "exportable ed25519" "$VC" -c "$VCONF" key create z --type ed25519 --exportable
expect_rc 6 "duplicate name" "$VC" -c "$VCONF" key create web --type ec-p256
expect_rc 5 "show unknown key" "$VC" -c "$VCONF" key show nosuch
expect_rc 7 "reserved name" "$VC" -c "$VCONF" key create vault.audit --type ed25519
expect_rc 2 "unknown command" "$VC" frobnicate
expect_rc 0 "--help" "$VC" --help
expect_rc 0 "key --help" "$VC" key --help
vd_stop

# What the token holds, read back by an independent tool (vaultd stopped: one owner).
export SOFTHSM2_CONF=$S/hsm/softhsm2.conf
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label shadowvault --login \
	--pin "$(cat "$S/hsm/pin")" --list-objects --type privkey >"$T/objs" 2>&1
grep -A4 'label: *acct@v2' "$T/objs" | grep -q 'sensitive, always sensitive, never extractable' \
	&& pass "pkcs11-tool: acct is sensitive and never extractable" || { fail "acct attributes"; cat "$T/objs"; }
grep -A4 'label: *vault.shadow-ca@v1' "$T/objs" | grep -q 'never extractable' \
	&& pass "pkcs11-tool: the shadow CA key never leaves the token" || fail "CA key attributes"
grep -A4 'label: *web@v1' "$T/objs" | grep -q 'extractable' \
	&& pass "pkcs11-tool: exportable key is extractable" || fail "web attributes"
! grep -q 'label: *acct@v1' "$T/objs" && pass "the destroyed version is gone from the token" || fail "acct@v1 still there"
unset SOFTHSM2_CONF

# A wrong PIN, a missing module, a missing token, a broken configuration.
cp "$S/hsm/pin" "$T/pin.good"
printf 'wrong-pin\n' >"$S/hsm/pin"
expect_rc 4 "vaultd with a wrong PIN stops with the HSM status" "$VD" -c "$VCONF" -f
expect_err "CKR_PIN_INCORRECT" "wrong PIN explained"
cp "$T/pin.good" "$S/hsm/pin"
chmod 644 "$S/hsm/pin"
expect_rc 4 "a world-readable PIN file" "$VD" -c "$VCONF" -f
expect_err "readable by others" "PIN permissions explained"
chmod 600 "$S/hsm/pin"
sed 's|^hsm = .*|hsm = { module = "/nonexistent/pkcs11.so"; softhsm2_conf = "state/hsm/softhsm2.conf"; };|' "$VCONF" >"$VDIR/bad-module.conf"
expect_rc 4 "a missing module" "$VD" -c "$VDIR/bad-module.conf" -f
expect_err "/nonexistent/pkcs11.so" "missing module named"
sed 's|^hsm = .*|hsm = { token = "other"; softhsm2_conf = "state/hsm/softhsm2.conf"; };|' "$VCONF" >"$VDIR/bad-token.conf"
expect_rc 4 "a missing token" "$VD" -c "$VDIR/bad-token.conf" -f
expect_err 'no token labelled "other"' "missing token named"
printf 'state_dir = "%s";\nhsm = { modul = "x"; };\n' "$S" >"$T/typo.conf"
expect_rc 3 "unknown setting" "$VD" -c "$T/typo.conf" -f
expect_err "typo.conf:2: hsm.modul: unknown setting" "unknown setting with file:line"
printf 'state_dir = "x"\nhsm = {\n' >"$T/broken.conf"
expect_rc 3 "syntax error" "$VC" -c "$T/broken.conf" key list
expect_err "broken.conf:" "syntax error with file:line"
printf 'state_dir = 5;\n' >"$T/type.conf"
expect_rc 3 "wrong type" "$VC" -c "$T/type.conf" key list
expect_err "type.conf:1: state_dir: must be a string" "wrong type explained"
expect_rc 3 "missing config file" "$VC" -c "$T/none.conf" key list
expect_err "none.conf: No such file" "missing file named"
vd_start && pass "vaultd starts again with the good PIN" || fail "restart"
vd_stop
vd_sanitizer_check
t_done
