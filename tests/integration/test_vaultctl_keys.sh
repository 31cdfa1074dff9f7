#!/usr/bin/env bash
# vaultctl key management on a fresh development vault (embedded defaults):
# the README's flow, what the token really holds, and a clear error with the
# documented exit status for every bad input.
. "$(dirname "$0")/lib.sh"
V=$(sv_bin vaultctl) || exit 1
cd "$T"

expect_rc 0 "init creates state and a SoftHSM2 token" "$V" init
[ "$(stat -c %a state)" = 700 ] && pass "state dir is 0700" || fail "state dir mode $(stat -c %a state)"
[ "$(stat -c %a state/hsm/pin)" = 600 ] && pass "PIN file is 0600" || fail "PIN mode"
expect_rc 6 "second init refuses" "$V" init
expect_err "already initialised" "second init says why"

expect_rc 0 "create ec-p256" "$V" key create acct --type ec-p256
expect_out '"kty":"EC"' "create prints the JWK"
expect_rc 0 "create rsa-2048 exportable" "$V" key create web --type rsa-2048 --exportable
expect_rc 0 "create ed25519" "$V" key create sig --type ed25519
expect_rc 0 "show --json" "$V" --json key show acct
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["jwk"]["crv"]=="P-256" and len(d["thumbprint"])==43 and d["uri"].startswith("pkcs11:token=shadowvault;object=acct@v1;id=")' "$T/out" \
	&& pass "show --json has JWK, thumbprint and URI" || fail "show --json content"

# What the token holds, read back by an independent tool.
export SOFTHSM2_CONF=$T/state/hsm/softhsm2.conf
pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label shadowvault --login \
	--pin "$(cat state/hsm/pin)" --list-objects --type privkey >"$T/objs" 2>&1
grep -A4 'label: *acct@v1' "$T/objs" | grep -q 'sensitive, always sensitive, never extractable' \
	&& pass "pkcs11-tool: acct is sensitive and never extractable" || { fail "acct attributes"; cat "$T/objs"; }
grep -A4 'label: *web@v1' "$T/objs" | grep -q 'extractable' \
	&& pass "pkcs11-tool: exportable key is extractable" || fail "web attributes"
unset SOFTHSM2_CONF

expect_rc 0 "rotate" "$V" key rotate acct
expect_out "version:    2" "rotate makes version 2"
expect_rc 0 "list" "$V" key list
grep -q '^acct  *1  *ec-p256  *retired' "$T/out" && pass "v1 retired" || fail "v1 not retired"
grep -q '^acct  *2  *ec-p256  *current' "$T/out" && pass "v2 current" || fail "v2 not current"
expect_rc 6 "destroying the current version is refused" "$V" key destroy acct --version 2 --yes
expect_rc 2 "destroy without --yes is refused" "$V" key destroy acct --version 1
expect_rc 0 "destroy retired version" "$V" key destroy acct --version 1 --yes
expect_rc 0 "list after destroy" "$V" key list
grep -q '^acct  *1  *ec-p256  *destroyed' "$T/out" && pass "v1 destroyed" || fail "v1 state"

# Bad input: clear errors, documented exit codes.
expect_rc 2 "name with a slash" "$V" key create 'a/b' --type ec-p256
expect_err "not allowed" "bad name explained"
expect_rc 2 "overlong name" "$V" key create "$(printf 'a%.0s' $(seq 70))" --type ec-p256
expect_err "longer than 64" "long name explained"
expect_rc 2 "control character in name" "$V" key create "$(printf 'a\tb')" --type ec-p256
expect_rc 2 "unknown type" "$V" key create z --type ec-p521
expect_err "unknown key type" "unknown type explained"
expect_rc 2 "exportable ed25519" "$V" key create z --type ed25519 --exportable
expect_rc 6 "duplicate name" "$V" key create web --type ec-p256
expect_rc 5 "show unknown key" "$V" key show nosuch
expect_rc 7 "reserved name" "$V" key create vault.audit --type ed25519
expect_rc 2 "unknown command" "$V" frobnicate
expect_rc 0 "--help" "$V" --help
expect_rc 0 "key --help" "$V" key --help

# A wrong PIN, a missing module, a missing token, a broken config.
cp state/hsm/pin pin.good
printf 'wrong-pin\n' >state/hsm/pin
expect_rc 4 "wrong PIN" "$V" key list
expect_err "CKR_PIN_INCORRECT" "wrong PIN explained"
cp pin.good state/hsm/pin
chmod 644 state/hsm/pin
expect_rc 4 "world-readable PIN file" "$V" key list
expect_err "readable by others" "PIN permissions explained"
chmod 600 state/hsm/pin
cat >bad-module.conf <<CONF
state_dir = "$T/state";
hsm = { module = "/nonexistent/pkcs11.so"; softhsm2_conf = "$T/state/hsm/softhsm2.conf"; };
CONF
expect_rc 4 "missing module" "$V" -c bad-module.conf key list
expect_err "/nonexistent/pkcs11.so" "missing module named"
cat >bad-token.conf <<CONF
state_dir = "$T/state";
hsm = { token = "other"; softhsm2_conf = "$T/state/hsm/softhsm2.conf"; };
CONF
expect_rc 4 "missing token" "$V" -c bad-token.conf key list
expect_err 'no token labelled "other"' "missing token named"
printf 'state_dir = "%s/state";\nhsm = { modul = "x"; };\n' "$T" >typo.conf
expect_rc 3 "unknown setting" "$V" -c typo.conf key list
expect_err "typo.conf:2: hsm.modul: unknown setting" "unknown setting with file:line"
printf 'state_dir = "x"\nhsm = {\n' >broken.conf
expect_rc 3 "syntax error" "$V" -c broken.conf key list
expect_err "broken.conf:" "syntax error with file:line"
printf 'state_dir = 5;\n' >type.conf
expect_rc 3 "wrong type" "$V" -c type.conf key list
expect_err "type.conf:1: state_dir: must be a string" "wrong type explained"
expect_rc 3 "missing config file" "$V" -c "$T/none.conf" key list
expect_err "none.conf: No such file" "missing file named"
t_done
