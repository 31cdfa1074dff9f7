#!/usr/bin/env bash
# The shadow client against real faults, with Pebble, vaultd and SoftHSM2:
# dns-01 through a hook (pebble-challtestsrv's DNS), webroot http-01, the
# deploy hook only on change, renew only what is due (and the vault identity
# from when the vault said, swapped in as a pair, an interrupted swap finished);
# and a CA unreachable,
# the vault unreachable, a vault denial and a failing challenge each give a
# clear error and leave the installed certificate untouched.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
# Reuse off: every order validates for real; one alternate chain, to a second root.
pebble_up --authz-reuse 0 --nonce-reject 20 --alternate-roots 1

# Identity certificates valid 20 days, renewable in their last 30 (shadow_renew_days; by
# default it would be the last third): fresh ones are due, so renew renews and status warns.
vd_setup 'shadow_cert_days = 20; shadow_renew_days = 30;'
cat >"$VDIR/state/policies.conf" <<POL
shadows = {
  web = { accounts = [ "le" ]; names = [ "a.test", "b.test", "c.test", "d.test", "*.w.test" ];
          rate = { per_minute = 6000; burst = 500; }; };
};
POL
vd_start || { t_done; exit 1; }
"$VC" -c "$VCONF" -q key create le --type ec-p256
"$VC" -c "$VCONF" -q account register le --directory "$PEBBLE_URL" --key le --ca-file "$PEBBLE_CA" --agree-tos \
	&& pass "account registered" || fail "account register"
vd_enroll web && pass "enrolled" || fail "enrol"
cat >"$T/shadow.conf" <<CONF
account = "le";
acme_ca_file = "$PEBBLE_CA";
http_port = $PEBBLE_HTTP01_PORT;
http_address = "127.0.0.1";
CONF
S() { run "$SH" -c "$T/shadow.conf" --state-dir "$T/sh-web" "$@"; }
L=$T/sh-web/live
snapshot() { (cd "$L/$1" && readlink -f . && sha256sum ./*.pem) >"$T/snap.$1"; }
same() { (cd "$L/$1" && readlink -f . && sha256sum ./*.pem) | cmp -s - "$T/snap.$1"; }

# Issue a.test with a deploy hook that records what it was given.
S issue a.test --deploy-hook "echo \"\$RENEWED_LINEAGE|\$RENEWED_DOMAINS\" >>$T/hook.log"
[ "$RC" = 0 ] && pass "issue a.test (http-01, standalone responder)" || { fail "issue a.test: $RC"; cat "$T/err"; }
[ "$(cat "$T/hook.log" 2>/dev/null)" = "$L/a.test|a.test" ] && pass "deploy hook ran with lineage and names" || fail "hook: $(cat "$T/hook.log" 2>/dev/null)"
[ "$(readlink "$L/a.test")" = "../archive/a.test/0001" ] && pass "live/a.test -> archive version 1" || fail "symlink $(readlink "$L/a.test")"
snapshot a.test

# dns-01 through a hook that publishes the TXT record in challtestsrv, for a wildcard name.
cat >"$T/dnshook.sh" <<HOOK
#!/bin/sh
case "\$SHADOW_ACTION" in
present) curl -s -X POST -d "{\"host\":\"\$SHADOW_TXT_NAME.\",\"value\":\"\$SHADOW_TXT_VALUE\"}" $CHALLTEST_MGMT/set-txt ;;
cleanup) curl -s -X POST -d "{\"host\":\"\$SHADOW_TXT_NAME.\"}" $CHALLTEST_MGMT/clear-txt ;;
esac
echo "\$SHADOW_ACTION \$SHADOW_DOMAIN" >>$T/dns.log
HOOK
chmod +x "$T/dnshook.sh"
S issue '*.w.test' --challenge dns-01 --dns-hook "$T/dnshook.sh"
[ "$RC" = 0 ] && pass "issue *.w.test with dns-01 through the hook" || { fail "dns-01: $RC"; cat "$T/err"; }
grep -q "^present w.test" "$T/dns.log" && grep -q "^cleanup w.test" "$T/dns.log" && pass "hook presented and cleaned up the TXT record" || fail "dns hook calls"
[ -s "$L/_.w.test/fullchain.pem" ] && pass "wildcard lineage installed as live/_.w.test" || fail "wildcard lineage"

# --preferred-chain: the alternate chain whose top is issued by the second root; a CN no chain has: the default.
top_issuer() { "$PY" -c 'import re, subprocess, sys
pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", open(sys.argv[1]).read(), re.S)
print(subprocess.run(["openssl", "x509", "-noout", "-issuer", "-nameopt", "sep_multiline,sname"],
    input=pems[-1], capture_output=True, text=True).stdout.split("CN=")[1].strip())' "$1"; }
cn_of() { openssl x509 -noout -subject -nameopt sep_multiline,sname | sed -n 's/^ *CN=//p'; }
ROOT0=$(cn_of <"$PEBBLE_ROOT")
ROOT1=$(curl -s --cacert "$PEBBLE_CA" "$PEBBLE_MGMT/roots/1" | cn_of)
[ -n "$ROOT1" ] && [ "$ROOT0" != "$ROOT1" ] && pass "Pebble offers a second root ($ROOT1)" || fail "second root: '$ROOT0' '$ROOT1'"
S issue e.w.test --preferred-chain "$ROOT1"
[ "$RC" = 0 ] && grep -q "using the alternate chain issued by $ROOT1" "$T/err" && [ "$(top_issuer "$L/e.w.test/chain.pem")" = "$ROOT1" ] \
	&& pass "--preferred-chain: the alternate chain to the second root installed" || { fail "preferred chain: $RC $(top_issuer "$L/e.w.test/chain.pem")"; cat "$T/err"; }
grep -q "\"preferred_chain\": \"$ROOT1\"" "$T/sh-web/renewal/e.w.test.json" && pass "the preference is recorded for renew" || fail "renewal record lacks preferred_chain"
S issue f.w.test --preferred-chain "No Such Root"
[ "$RC" = 0 ] && grep -q "no chain offered by the CA is issued by No Such Root: using the default" "$T/err" \
	&& [ "$(top_issuer "$L/f.w.test/chain.pem")" = "$ROOT0" ] && pass "--preferred-chain nobody offers: the default chain" || { fail "default chain: $RC"; cat "$T/err"; }
# The bound: an issuer CN is at most 255 bytes (a longer one is refused before any request); 255 is taken.
CN255=$(printf 'R%.0s' $(seq 255))
S issue g.w.test --preferred-chain "${CN255}R"
[ "$RC" = 2 ] && grep -q -- "--preferred-chain must be 1 to 255 bytes" "$T/err" && [ ! -e "$L/g.w.test" ] \
	&& pass "--preferred-chain of 256 bytes: usage error, nothing issued" || { fail "256-byte preferred chain: $RC"; cat "$T/err"; }
S issue g.w.test --preferred-chain ""
[ "$RC" = 2 ] && grep -q -- "--preferred-chain must be 1 to 255 bytes" "$T/err" && pass "--preferred-chain empty: usage error" || fail "empty preferred chain: $RC"
S issue g.w.test --preferred-chain "$CN255"
[ "$RC" = 0 ] && grep -q "no chain offered by the CA is issued by $CN255: using the default" "$T/err" \
	&& pass "--preferred-chain of 255 bytes: taken (no such chain: the default)" || { fail "255-byte preferred chain: $RC"; cat "$T/err"; }

# Webroot http-01: a web server on the validation port serves the webroot.
mkdir -p "$T/www"
(cd "$T/www" && exec "$PY" -m http.server "$PEBBLE_HTTP01_PORT" --bind 127.0.0.1) >/dev/null 2>&1 &
WWW=$!
T_PIDS="$T_PIDS $WWW"
for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PEBBLE_HTTP01_PORT/" && break; sleep 0.1; done
# Given relative paths, as a person at a shell would: the renewal record keeps them
# absolute, since renew runs from cron or a timer in another directory.
cd "$T" || exit 1
S issue b.test --webroot www --acme-ca-file "$(realpath --relative-to="$T" "$PEBBLE_CA")"
cd - >/dev/null || exit 1
[ "$RC" = 0 ] && pass "issue b.test with --webroot" || { fail "webroot: $RC"; cat "$T/err"; }
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert (d["webroot"], d["acme_ca_file"]) == (sys.argv[2], sys.argv[3]), d' \
	"$T/sh-web/renewal/b.test.json" "$(realpath "$T/www")" "$(realpath "$PEBBLE_CA")" 2>"$T/err" \
	&& pass "relative --webroot and --acme-ca-file are recorded absolute for renew" || { fail "renewal record paths"; cat "$T/err"; }
S issue x.test --acme-ca-file no-such-ca.pem
[ "$RC" = 3 ] && grep -q "acme: CA file $(pwd -P)/no-such-ca.pem: No such file or directory" "$T/err" \
	&& pass "a missing --acme-ca-file: a configuration error naming the file" || { fail "missing CA file: $RC"; cat "$T/err"; }
[ -z "$(ls -A "$T/www/.well-known/acme-challenge" 2>/dev/null)" ] && pass "challenge files removed afterwards" || fail "webroot not cleaned"
# A failing challenge: the webroot server answers, but the files go elsewhere.
S issue c.test --webroot "$T/elsewhere"
[ "$RC" = 8 ] && pass "failing challenge: exit 8" || { fail "failing challenge: exit $RC"; cat "$T/err"; }
grep -q "CA said: unauthorized: .*c.test.*is invalid" "$T/err" && pass "the CA's problem reaches the user" || { fail "problem text"; cat "$T/err"; }
[ ! -e "$L/c.test" ] && [ ! -e "$T/sh-web/archive/c.test" ] && pass "nothing installed or left for c.test" || fail "c.test installed or debris: $(ls "$T/sh-web/archive/c.test" 2>&1)"
kill "$WWW"; wait "$WWW" 2>/dev/null

# renew: no lineage due -> nothing changes, no hook.  The vault identity (20 days, inside
# the configured last 30) is renewed: a new key and certificate, swapped in as a pair.
ID=$T/sh-web/identity
cp "$ID/cert.pem" "$T/idA.cert"; cp "$ID/key.pem" "$T/idA.key"
S renew
[ "$RC" = 0 ] && grep -q "0 renewed, 0 failed" "$T/out" && pass "renew: nothing due" || { fail "renew idle: $RC"; cat "$T/out" "$T/err"; }
pair() { # CERT KEY: 0 if they belong together
	[ "$(openssl x509 -in "$1" -noout -pubkey)" = "$(openssl pkey -in "$2" -pubout)" ]
}
grep -q "^vault identity renewed: certificate [0-9a-f]*$" "$T/out" && ! cmp -s "$ID/cert.pem" "$T/idA.cert" \
	&& ! cmp -s "$ID/key.pem" "$T/idA.key" && pair "$ID/cert.pem" "$ID/key.pem" \
	&& [ "$(stat -c %a "$ID/key.pem")" = 600 ] && ! compgen -G "$ID/*next*" >/dev/null \
	&& pass "renew renewed the vault identity: a new key (0600) and its certificate, no debris" \
	|| { fail "identity renewal"; cat "$T/out" "$T/err"; ls -l "$ID"; }
NA=$(cert_time "$ID/cert.pem" end)
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d == {"not_after": int(sys.argv[2]), "renew_from": int(sys.argv[2]) - 30 * 86400}, d' \
	"$ID/renewal.json" "$NA" 2>"$T/err" && pass "the vault's renew_from for the new certificate is kept (shadow_renew_days)" \
	|| { fail "renewal.json after renewal"; cat "$T/err"; }
openssl verify -CAfile "$ID/vault-ca.pem" "$ID/cert.pem" >/dev/null 2>&1 \
	&& [ "$(openssl x509 -in "$ID/cert.pem" -noout -subject)" = "$(openssl x509 -in "$T/idA.cert" -noout -subject)" ] \
	&& pass "the new certificate is from the vault's CA, for the same shadow" || fail "renewed certificate chain or subject"
# shadow renew then used the new identity once (GET /v1/identity): the certificate it replaced
# is retired at once (revoked and audited), the new one is served.
hcode() { # CERT KEY PATH
	curl -s -o /dev/null -w '%{http_code}' --cacert "$ID/vault-ca.pem" --cert "$1" --key "$2" "$VD_API$3"
}
OLD=$(hcode "$T/idA.cert" "$T/idA.key" /v1/health) NEW=$(hcode "$ID/cert.pem" "$ID/key.pem" /v1/identity)
ASER=$(openssl x509 -in "$T/idA.cert" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
BSER=$(openssl x509 -in "$ID/cert.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
[ "$OLD $NEW" = "000 200" ] && ! grep -q "did not confirm" "$T/err" \
	&& grep -q "\"type\":\"retire\",\"shadow\":\"web\",\"serial\":\"$ASER\",\"by\":\"$BSER\"" "$VDIR/state/audit.log" \
	&& pass "the replaced certificate is retired once renew used the new one (audited)" \
	|| { fail "retiring the replaced certificate: old $OLD, new $NEW"; cat "$T/err"; }
same a.test && pass "renew left a.test alone" || fail "a.test changed"
[ "$(wc -l <"$T/hook.log")" = 1 ] && pass "deploy hook did not run without a change" || fail "hook ran again"
# A certificate inside its renewal window (forged to expire tomorrow) is renewed; others are not.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -subj /CN=d.test \
	-days 1 -out "$T/near.pem" 2>/dev/null
[ "$(cat "$T/sh-web/accounts/le.directory" 2>/dev/null)" = "$PEBBLE_URL" ] && pass "the account's directory is remembered" || fail "directory cache: $(cat "$T/sh-web/accounts/le.directory" 2>/dev/null)"
# A stale remembered directory (nothing listens there) costs a second open, not the issuance.
printf 'https://127.0.0.1:9/dir' >"$T/sh-web/accounts/le.directory"
S issue d.test
[ "$RC" = 0 ] && pass "issue d.test with a stale remembered directory" || { fail "stale directory: $RC"; cat "$T/err"; }
[ "$(cat "$T/sh-web/accounts/le.directory")" = "$PEBBLE_URL" ] && pass "the stale directory was replaced" || fail "directory cache not updated"
# Debris of a crash while writing version 2 must not stop the renewal below.
mkdir -p "$T/sh-web/archive/d.test/0002.tmp" && echo junk >"$T/sh-web/archive/d.test/0002.tmp/privkey.pem"
cp "$T/near.pem" "$(readlink -f "$L/d.test")/cert.pem"
snapshot b.test
S renew --days 2
[ "$RC" = 0 ] && grep -q "1 renewed, 0 failed" "$T/out" && pass "renew --days 2: the certificate inside the window renewed" || { fail "renew due: $RC"; cat "$T/out" "$T/err"; }
[ "$(readlink "$L/d.test")" = "../archive/d.test/0002" ] && pass "d.test now at version 2" || fail "d.test $(readlink "$L/d.test")"
openssl x509 -in "$L/d.test/cert.pem" -noout -checkend 86400 >/dev/null && openssl pkey -in "$L/d.test/privkey.pem" -noout 2>/dev/null \
	&& [ "$(stat -c %a "$L/d.test/privkey.pem")" = 600 ] && pass "version 2 written over the debris: new cert, key 0600" || fail "d.test version 2 content"
same b.test && same a.test && pass "certificates outside the window untouched" || fail "b.test or a.test changed"

# Old versions: the live one and the five before it stay.
RENEWAL=$T/sh-web/renewal/a.test.json
for i in 2 3 4 5 6 7; do
	S issue a.test
	[ "$i" = 2 ] && INODE=$(stat -c %i "$RENEWAL") # version 1 had a deploy hook
done
[ "$RC" = 0 ] && [ "$(readlink "$L/a.test")" = "../archive/a.test/0007" ] && pass "a.test issued six more times" || { fail "a.test again: $RC"; cat "$T/err"; }
[ "$(cd "$T/sh-web/archive/a.test" && echo *)" = "0002 0003 0004 0005 0006 0007" ] \
	&& pass "archive keeps the live version and the five before it" || fail "archive: $(ls "$T/sh-web/archive/a.test")"
[ "$(stat -c %i "$RENEWAL")" = "$INODE" ] && pass "same settings: the renewal record was not rewritten" || fail "renewal record rewritten"
touch -h -d @1700000000 "$L/a.test" # as if switched then
S --json status
"$PY" -c 'import json, sys
e = [x for x in json.load(open(sys.argv[1])) if x["name"] == "a.test"][0]
assert e["issued"] == 1700000000, e' "$T/out" \
	&& pass "status: last issued is when live/a.test was switched" || { fail "status issued"; cat "$T/out"; }
S issue a.test --key-type ec-p384
[ "$RC" = 0 ] && [ "$(stat -c %i "$RENEWAL")" != "$INODE" ] && grep -q '"key_type": "ec-p384"' "$RENEWAL" \
	&& pass "other settings: the renewal record is replaced" || { fail "renewal record after --key-type: $RC"; cat "$T/err" "$RENEWAL"; }
snapshot a.test
# One run at a time per lineage: another run holding it stops this one before it finalizes.
"$PY" -c 'import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(60)' \
	"$T/sh-web/archive/a.test" >"$T/lock.out" &
LOCKER=$!
T_PIDS="$T_PIDS $LOCKER"
for i in $(seq 50); do grep -q locked "$T/lock.out" && break; sleep 0.1; done
S issue a.test
[ "$RC" = 6 ] && grep -q "another shadow run is installing a.test" "$T/err" && pass "a locked lineage: exit 6 with the reason" || { fail "lock: $RC"; cat "$T/err"; }
kill "$LOCKER"; wait "$LOCKER" 2>/dev/null
same a.test && [ -z "$(ls -d "$T/sh-web/archive/a.test/"*.tmp 2>/dev/null)" ] && pass "a.test untouched, nothing staged" || fail "a.test changed while locked"

# Faults leave the installed certificate untouched.
"$VC" -c "$VCONF" -q shadow list >/dev/null
sed -i 's/"a.test", //' "$VDIR/state/policies.conf"
"$VC" -c "$VCONF" -q policy reload
S issue a.test
[ "$RC" = 7 ] && grep -q "not in the policy" "$T/err" && pass "vault denial: exit 7 with the reason" || { fail "denial: $RC"; cat "$T/err"; }
same a.test && pass "vault denial left a.test untouched" || fail "a.test changed after denial"
[ -z "$(ls -d "$T/sh-web/archive/a.test/"*.tmp 2>/dev/null)" ] && pass "the version staged for a.test was removed" || fail "staged version left: $(ls "$T/sh-web/archive/a.test")"
vd_stop
S issue a.test
[ "$RC" = 8 ] && grep -q "vault" "$T/err" && pass "vault unreachable: exit 8" || { fail "vault down: $RC"; cat "$T/err"; }
same a.test && pass "vault unreachable left a.test untouched" || fail "a.test changed (vault down)"
vd_start
bash "$PEB" stop "$T/pebble" >/dev/null 2>&1
S issue b.test
[ "$RC" = 8 ] && pass "CA unreachable: exit 8" || { fail "CA down: $RC"; cat "$T/err"; }
grep -q "127.0.0.1" "$T/err" && pass "the error names the CA address" || { fail "CA error text"; cat "$T/err"; }
same b.test && pass "CA unreachable left b.test untouched" || fail "b.test changed (CA down)"
# A setting longer than shadow keeps is an error with file and line, not cut short.
{ cat "$T/shadow.conf"; printf 'preferred_chain = "%s";\n' "$(printf 'x%.0s' $(seq 256))"; } >"$T/long.conf"
run "$SH" -c "$T/long.conf" --state-dir "$T/sh-web" status
[ "$RC" = 3 ] && grep -q "long.conf:5.*preferred_chain is longer than 255 bytes" "$T/err" \
	&& pass "an over-long setting: exit 3 with file and line" || { fail "long setting: exit $RC"; cat "$T/err"; }
S status
grep -q "^a.test" "$T/out" && grep -q "^_.w.test" "$T/out" && pass "status lists the lineages" || { fail "status"; cat "$T/out"; }
grep -Eq "^vault identity: expires 20[0-9-]{8}T[0-9:]{5}Z \(1[89] days left\)$" "$T/out" && pass "status shows the vault identity's expiry" \
	|| { fail "status identity"; cat "$T/out"; }
grep -Eq "warning: this server's vault identity certificate expires on 20[0-9-]{8}T[0-9:]{5}Z \(in 1[89] days\): shadow renew renews it" "$T/err" \
	&& pass "status warns that the vault identity expires within 30 days" || { fail "no identity warning"; cat "$T/err"; }

# A swap the process did not finish (killed between the two renames: new key, old
# certificate, new certificate beside it) is finished at the next start; a certificate
# beside the pair that does not match the key is debris and goes.
cp "$ID/cert.pem" "$T/idB.cert"; cp "$ID/key.pem" "$T/idB.key" # renew --days 2 above renewed it too
S renew
cp "$ID/cert.pem" "$T/idC.cert"
cp "$T/idC.cert" "$ID/cert.pem.next"; cp "$T/idB.cert" "$ID/cert.pem"
S status
cmp -s "$ID/cert.pem" "$T/idC.cert" && [ ! -e "$ID/cert.pem.next" ] && pair "$ID/cert.pem" "$ID/key.pem" \
	&& pass "an interrupted identity swap is finished at start" || { fail "identity recovery"; ls -l "$ID"; }
cp "$T/idB.cert" "$ID/cert.pem.next"
S status
cmp -s "$ID/cert.pem" "$T/idC.cert" && [ ! -e "$ID/cert.pem.next" ] && pass "a certificate.next for another key is dropped" \
	|| { fail "identity debris"; ls -l "$ID"; }
# One certificate renewed twice (as if the client died before using the first renewal): the
# first renewal is revoked, so each certificate has at most one valid successor; using the
# second retires the certificate both replaced.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/csr.key" -subj /CN=x \
	-out "$T/csr.pem" 2>/dev/null
renew_with() { # CERT KEY N: a renewal for csr.pem made with that identity; the code, the certificate in y$N.cert
	curl -s -o "$T/ren$3.json" -w '%{http_code}' --cacert "$ID/vault-ca.pem" --cert "$1" --key "$2" \
		-H 'Content-Type: application/json' --data-binary "$(renew_body "$T/csr.pem" "$1" "$2")" \
		"$VD_API/v1/identity/renew"
	json_get "$T/ren$3.json" '["certificate"]' >"$T/y$3.cert" 2>/dev/null
}
R1=$(renew_with "$ID/cert.pem" "$ID/key.pem" 1) R2=$(renew_with "$ID/cert.pem" "$ID/key.pem" 2)
Y1=$(hcode "$T/y1.cert" "$T/csr.key" /v1/identity) Y2=$(hcode "$T/y2.cert" "$T/csr.key" /v1/identity)
X=$(hcode "$ID/cert.pem" "$ID/key.pem" /v1/health)
[ "$R1 $R2 $Y1 $Y2 $X" = "201 201 000 200 000" ] \
	&& pass "renewed twice: the first renewal revoked, the second in use, the replaced one retired" \
	|| fail "renewed twice: $R1 $R2 $Y1 $Y2 $X"
S --json status
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert {x["name"] for x in d} >= {"a.test","b.test","d.test","_.w.test"}' "$T/out" \
	&& pass "status --json" || fail "status json"
vd_stop
vd_sanitizer_check
t_done
