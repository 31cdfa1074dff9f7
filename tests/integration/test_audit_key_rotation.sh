#!/usr/bin/env bash
# Rotating the audit key (vault.audit) with a running vaultd: the log is handed over to
# the new version by a checkpoint the old one signs, audit-key.pem gains the new public
# key, and a copy of the first key alone still verifies every log, rotated ones too.
# A rotation stopped before its handover (a fault injected into the key process, then
# vaultd killed) is finished at the next start.  A key file holding only the new key
# does not verify what the old one signed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
S=$VDIR/state

# Checkpoints only when asked (audit rotate) or at a stop, so that each step is visible.
vd_setup 'audit = { checkpoint_records = 100000; checkpoint_seconds = 3600; };'
vd_start || { t_done; exit 1; }
LOG=$S/audit.log

keys_in() { grep -c 'BEGIN PUBLIC KEY' "$1"; }
handovers() { grep -c '"type":"checkpoint","key":"[^"]*","next":' "$LOG"; }

cp "$S/audit-key.pem" "$T/v1.pem"
expect_rc 0 "an admin action before the rotation" "$VC" -c "$VCONF" key create acct --type ec-p256
[ "$(keys_in "$S/audit-key.pem")" = 1 ] && pass "init writes one audit key" || fail "keys at init: $(keys_in "$S/audit-key.pem")"

expect_rc 0 "key rotate vault.audit" "$VC" -c "$VCONF" key rotate vault.audit
expect_out "version:    2" "the audit key is at version 2"
expect_rc 0 "key list" "$VC" -c "$VCONF" key list
grep -q '^vault.audit  *1  *ed25519  *retired' "$T/out" && pass "v1 retired" || fail "v1: $(grep '^vault.audit  *1 ' "$T/out")"
grep -q '^vault.audit  *2  *ed25519  *current' "$T/out" && pass "v2 current" || fail "v2: $(grep '^vault.audit  *2 ' "$T/out")"
[ "$(keys_in "$S/audit-key.pem")" = 2 ] && pass "audit-key.pem holds both keys" || fail "keys: $(keys_in "$S/audit-key.pem")"
head -c "$(stat -c %s "$T/v1.pem")" "$S/audit-key.pem" | cmp -s - "$T/v1.pem" \
	&& pass "the first key stays first, unchanged" || fail "audit-key.pem no longer starts with v1"
[ "$(handovers)" = 1 ] && pass "one handover checkpoint in the log" || fail "handovers: $(handovers)"
grep '"next":' "$LOG" | grep -q '"key":"vault.audit@v1","next":"vault.audit@v2","pub":"' \
	&& pass "the handover is signed by v1 and names v2" || fail "handover line: $(grep '"next":' "$LOG")"
# The handover's pub is v2's key (the second block of the file), byte for byte.
"$PY" - "$LOG" "$S/audit-key.pem" <<'PY' && pass "the handover carries v2's public key" || fail "handover pub differs from v2"
import base64, json, subprocess, sys
line = [l for l in open(sys.argv[1]) if '"next":' in l][0]
pub = base64.urlsafe_b64decode(json.loads(line)["pub"] + "=")
pem = open(sys.argv[2]).read()
second = "-----BEGIN" + pem.split("-----BEGIN")[2]
der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=second.encode(),
                     capture_output=True, check=True).stdout
sys.exit(0 if der[-32:] == pub else 1)
PY
expect_rc 0 "a second rotation" "$VC" -c "$VCONF" key rotate vault.audit
expect_out "version:    3" "makes v3"
expect_rc 7 "nor can an audit key version be destroyed" "$VC" -c "$VCONF" key destroy vault.audit --version 1 --yes

# New records, then a log rotation: its checkpoint is signed by v3.
expect_rc 0 "an admin action after the rotation" "$VC" -c "$VCONF" key create acct2 --type ec-p256
expect_rc 0 "audit rotate" "$VC" -c "$VCONF" audit rotate
ARCHIVE=$(ls "$LOG".0*[0-9])
vd_stop
tail -1 "$LOG" | grep -q '"type":"checkpoint","key":"vault.audit@v3","sig"' \
	&& pass "the stop's checkpoint is signed by v3" || fail "last line: $(tail -1 "$LOG")"

# Administration is recorded as type admin, before and after (the key type as key_type).
"$PY" - "$ARCHIVE" <<'PY' && pass "admin records: key create and both rotations, requested and done" || fail "admin records"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
def has(**kw): return any(all(r.get(k) == v for k, v in kw.items()) for r in recs)
for d in ("requested", "done"):
    assert has(type="admin", op="key.create", name="acct", key_type="ec-p256", decision=d), d
    assert has(type="admin", op="key.rotate", name="vault.audit", decision=d), d
# A done record names what the action made (version, thumbprint); a requested one cannot know it yet.
def made(op, name):
    return [r["result"] for r in recs if r.get("type") == "admin" and r.get("op") == op
            and r.get("name") == name and r.get("decision") == "done"]
m = made("key.create", "acct")
assert len(m) == 1 and m[0]["version"] == 1 and len(m[0]["thumbprint"]) == 43, m
m = made("key.rotate", "vault.audit")
assert [x["version"] for x in m] == [2, 3] and all(isinstance(x["handover_seq"], int) for x in m), m
assert not any("result" in r for r in recs if r.get("decision") == "requested"), "requested with a result"
assert not any(r.get("type") == "ec-p256" for r in recs), "a record typed by its key type"
PY
expect_rc 0 "verify with audit-key.pem (every version)" "$VC" -c "$VCONF" audit verify "$ARCHIVE" "$LOG"
expect_out "key handed over 2 times" "the report counts the handovers"
expect_out "chain: 2 logs chained" "the logs chain"
expect_rc 0 "verify with a copy of the first key only" "$VC" -c "$VCONF" audit verify "$ARCHIVE" "$LOG" --key "$T/v1.pem"
expect_rc 0 "--json" "$VC" -c "$VCONF" --json audit verify "$ARCHIVE" --key "$T/v1.pem"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["intact"] and d["handovers"]==2, d' "$T/out" \
	&& pass "--json reports 2 handovers" || fail "--json: $(cat "$T/out")"
# Only the newest key: the archive's first checkpoints were signed by v1.
awk '/BEGIN/ { b = "" } { b = b $0 "\n" } END { printf "%s", b }' "$S/audit-key.pem" >"$T/v3.pem"
[ "$(keys_in "$T/v3.pem")" = 1 ] && ! cmp -s "$T/v3.pem" "$T/v1.pem" && pass "v3.pem holds only the newest key" || fail "v3.pem"
expect_rc 1 "the newest key alone does not verify what v1 signed" "$VC" -c "$VCONF" audit verify "$ARCHIVE" --key "$T/v3.pem"
expect_err "signature does not verify" "says which signature fails"
expect_rc 0 "but it verifies the live log (signed by v3 only)" "$VC" -c "$VCONF" audit verify "$LOG" --key "$T/v3.pem"
expect_rc 1 "the first key alone cannot verify the live log without the archive" \
	"$VC" -c "$VCONF" audit verify "$LOG" --key "$T/v1.pem"
expect_err "line 3: checkpoint (key \"vault.audit@v3\")" "its first checkpoint is by a key only the archive names"

# An edited handover (another next key named) breaks v1's signature over it.
cp "$ARCHIVE" "$T/edited.log"
sed -i 's/"next":"vault.audit@v2"/"next":"vault.audit@v9"/' "$T/edited.log"
expect_rc 1 "an edited handover is caught" "$VC" -c "$VCONF" audit verify "$T/edited.log" --key "$T/v1.pem"

# A bad key file: a clear error with the file's name.
printf 'not a key\n' >"$T/bad.pem"
expect_rc 2 "a key file with no key" "$VC" -c "$VCONF" audit verify "$LOG" --key "$T/bad.pem"
expect_err "bad.pem: no Ed25519 public key" "names the file"
{ cat "$T/v1.pem"; openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout; } >"$T/mixed.pem"
expect_rc 2 "a key file with a P-256 key in it" "$VC" -c "$VCONF" audit verify "$LOG" --key "$T/mixed.pem"
expect_err "key 2 is not an Ed25519 public key" "says which key"

# A rotation stopped before its handover: v4 current, the log still in v3's hands.  The
# fault is injected into vaultd's key process; then vaultd and its children are killed.
vd_start_fault audit-key-handover || { fail "vaultd did not start (SV_FAULT=audit-key-handover)"; t_done; exit 1; }
expect_rc 1 "rotation stopped before the handover (fault)" "$VC" -c "$VCONF" key rotate vault.audit
expect_err "vault.audit@v4 is now current" "says the new version is current and the handover is pending"
N=$(handovers)
vd_crash
[ "$(handovers)" = "$N" ] && pass "no handover was written before the kill" || fail "handovers: $(handovers), was $N"
vd_start || { t_done; exit 1; }
grep -q 'hands the log over from vault.audit@v3 to vault.audit@v4' "$T/vaultd.log" \
	&& pass "the restart finishes the handover" || fail "no handover at start: $(tail -5 "$T/vaultd.log")"
[ "$(handovers)" = $((N + 1)) ] && pass "one more handover in the log" || fail "handovers: $(handovers)"
expect_rc 0 "an admin action on v4" "$VC" -c "$VCONF" key create acct3 --type ec-p256
vd_stop
expect_rc 0 "everything verifies with the first key alone" "$VC" -c "$VCONF" audit verify "$ARCHIVE" "$LOG" --key "$T/v1.pem"
expect_out "key handed over 1 time" "the live log holds the third handover"
expect_rc 0 "and with audit-key.pem" "$VC" -c "$VCONF" audit verify "$ARCHIVE" "$LOG"
[ "$(keys_in "$S/audit-key.pem")" = 4 ] && pass "audit-key.pem holds v1..v4" || fail "keys: $(keys_in "$S/audit-key.pem")"
t_done
