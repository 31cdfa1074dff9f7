#!/usr/bin/env bash
# vaultd under faults: a full audit disk fails requests closed (503, no JWS
# given out for an allowed signature) and service resumes by itself; the
# audit verifier catches edits, deletions, reordering and truncation;
# killing either child restarts the pair; a bad policy file on SIGHUP keeps
# the old policy; SIGTERM drains and exits.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
PEB=$(dirname "$0")/pebble.sh

# The tmpfs is no larger than the disk the audit writer allocates ahead
# (AUDIT_RESERVE, 256 KiB): that reserve cannot be made here, so filling the
# disk reaches the log at once.
MNT=$T/mnt
mkdir -p "$MNT"
# vaultd first (it holds the audit log open on the tmpfs), then the tmpfs, then the rest.
cleanup() {
	local p
	for p in $T_PIDS; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	umount "$MNT" 2>/dev/null
	bash "$PEB" stop "$T/pebble" >/dev/null 2>&1
	t_cleanup
}
trap cleanup EXIT
if ! mount -t tmpfs -o size=256k tmpfs "$MNT" 2>"$T/mount.err"; then
	echo "SKIP: cannot mount a small tmpfs for the disk-full check: $(cat "$T/mount.err")"
	exit 77
fi
# Many refused enrolments below: the enrolment limit (60 a minute by default) must not get in the way.
vd_setup "audit = { file = \"$MNT/audit.log\"; checkpoint_records = 5; checkpoint_seconds = 1; }; limits = { enroll_per_minute = 1000; };"
printf 'shadows = {\n  web1 = { accounts = [ "x", "le" ]; names = [ "a.test" ]; };\n};\n' >"$VDIR/state/policies.conf"
vd_start || { t_done; exit 1; }
vd_enroll web1 && pass "enrol web1" || fail "enrol web1"
# An account at a real Pebble, for a signature the policy allows.
bash "$PEB" start "$T/pebble" --nonce-reject 0 >"$T/pebble.out" 2>&1 || { cat "$T/pebble.out"; fail "pebble"; t_done; exit 1; }
. "$T/pebble/env"
"$VC" -c "$VCONF" -q key create le --type ec-p256 &&
	"$VC" -c "$VCONF" -q account register le --directory "$PEBBLE_URL" --key le --ca-file "$PEBBLE_CA" --agree-tos >/dev/null \
	&& pass "account le registered" || fail "account register"
NEW_ORDER=$(curl -s --cacert "$PEBBLE_CA" "$PEBBLE_URL" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["newOrder"])')
ORDER='{"identifiers":[{"type":"dns","value":"a.test"}]}'
sign_allowed() { vd_sign web1 le "$NEW_ORDER" "faults-$1-$RANDOM$RANDOM" "$ORDER"; }
sign_allowed 1
expect_code 200 "an allowed signature while the disk has room"

# The processes as SECURITY.md describes them: netproc under its seccomp filter with no new
# privileges and, started as root, as nobody without groups in an empty root directory; no
# PKCS#11 module and nothing of the state directory in netproc; no core dump of the key process.
NP=$(vd_child netproc) KP=$(vd_child keyproc)
grep -q '^Seccomp:[[:space:]]*2$' "/proc/$NP/status" && grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$NP/status" \
	&& pass "netproc runs under its seccomp filter, with no new privileges" \
	|| fail "netproc: $(grep -E 'Seccomp|NoNewPrivs' "/proc/$NP/status" | tr '\n' ' ')"
if [ "$(id -u)" = 0 ]; then
	proc_ids "$NP" "$(id -u nobody)" "$(id -g nobody)" && [ "$(readlink "/proc/$NP/root")" = /run/shadowvault/empty ] \
		&& pass "started as root: netproc is nobody, without groups, in /run/shadowvault/empty" \
		|| fail "netproc: $(proc_ids_text "$NP") root $(readlink "/proc/$NP/root")"
	grep -q libsofthsm2 "/proc/$KP/maps" && ! grep -q libsofthsm2 "/proc/$NP/maps" \
		&& pass "the PKCS#11 module is in the key process only" || fail "libsofthsm2 in netproc, or not in keyproc"
else
	echo "# not root: netproc's privilege drop and chroot are not checked here (unit.sandbox neither)"
fi
proc_fds "$NP" >"$T/np.fds"
if grep -qF "$VDIR/state" "$T/np.fds"; then
	fail "netproc holds a descriptor in the state directory: $(grep -F "$VDIR/state" "$T/np.fds")"
else
	pass "netproc holds nothing of the state directory ($(wc -l <"$T/np.fds") descriptors)"
fi
grep -Eq '^Max core file size +0 +0 ' "/proc/$KP/limits" && pass "the key process makes no core dump" \
	|| fail "keyproc: $(grep 'core' "/proc/$KP/limits")"

enroll_bad() { # an audited refusal: an enrolment with a wrong token
	CODE=$(curl -s -D "$T/hdr" -o "$T/body" -w '%{http_code}' --cacert "$VD_CA" -H 'Content-Type: application/json' \
		--data-binary '{"token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","csr":"x","box_public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}' \
		"$VD_ENROLL/v1/enroll")
}

# Disk full: the audit record cannot be written, so the request fails closed.
enroll_bad
expect_code 403 "an audited refusal while the disk has room"
dd if=/dev/zero of="$MNT/fill" bs=4k >/dev/null 2>&1
# The log's last page may still have room for a few records: keep asking.
for i in $(seq 40); do
	enroll_bad
	[ "$CODE" = 503 ] && break
done
expect_code 503 "audit disk full: the request fails with 503"
expect_problem audit-unavailable "the problem says the audit log is unavailable"
grep -qi '^retry-after:' "$T/hdr" && pass "503 carries Retry-After" || fail "no Retry-After"
# A signature the policy allows: made while the record syncs, but never given out unrecorded.
sign_allowed 2
expect_code 503 "audit disk full: an allowed signature fails with 503"
expect_problem audit-unavailable "and says the audit log is unavailable"
grep -q '"signature"' "$T/body" && fail "a JWS left without its audit record" || pass "no JWS in the answer"
[ "$(vd_health)" = 503 ] && pass "health reports the failing audit log" || fail "health while full: $(vd_health)"
# An admin record is shorter than a refusal's and may still fit in the log's last page: ask until it does not.
for i in $(seq 20); do
	run "$VC" -c "$VCONF" key create "k$i" --type ec-p256
	[ "$RC" -ne 0 ] && break
done
[ "$RC" -eq 1 ] && pass "administration is refused while unrecorded (exit 1)" || fail "admin not refused: exit $RC"
expect_err "audit log unavailable" "the admin is told why"
rm -f "$MNT/fill"
enroll_bad
expect_code 403 "service resumes by itself once the disk has room"
sign_allowed 3
expect_code 200 "allowed signatures are made again"
grep -q '"signature"' "$T/body" && pass "with their JWS" || fail "no JWS after recovery"
sleep 0.3 # health answers may be a quarter of a second old (vaultd.8)
[ "$(vd_health)" = 200 ] && pass "health back to ok" || fail "health after recovery"
grep -q "audit log writable again" "$T/vaultd.log" && pass "recovery is logged" || fail "no recovery log line"

# SIGHUP with a broken policy keeps the old one; a fixed one is loaded.
vd_api web1 GET /v1/acme/accounts/x
expect_code 404 "policy allows account x (unknown account: 404, not 403)"
echo 'shadows = { web1 = { accounts = [ "x" ] ' >"$VDIR/state/policies.conf"
kill -HUP "$VD_PID"
sleep 0.5
grep -q "policy reload failed, keeping the old policies" "$T/vaultd.log" && pass "bad policy on SIGHUP: kept the old one, said why" || fail "no reload failure logged"
vd_api web1 GET /v1/acme/accounts/x
expect_code 404 "old policy still in force"
expect_rc 3 "vaultctl policy check reports the error" "$VC" -c "$VCONF" policy check "$VDIR/state/policies.conf"
expect_err "policies.conf:" "with file and line"
expect_rc 3 "vaultctl policy reload refuses the broken file" "$VC" -c "$VCONF" policy reload
printf 'shadows = {\n  web1 = { accounts = [ "y" ]; names = [ "a.test" ]; };\n};\n' >"$VDIR/state/policies.conf"
expect_rc 0 "policy reload of a good file" "$VC" -c "$VCONF" policy reload
vd_api web1 GET /v1/acme/accounts/x
expect_code 403 "the new policy is in force"

# Killing a child: the supervisor restarts the pair.
for child in netproc keyproc; do
	vd_kill_child "$child" && pass "killed $child: restarted and serving again" || fail "$child not restarted"
done
grep -q "restarting the key and network processes" "$T/vaultd.log" && pass "restarts are logged" || fail "restart log"
vd_api web1 GET /v1/health
expect_code 200 "enrolled shadows still served after restarts"

# The admin socket is the owner's only.
[ "$(stat -c %a "$VDIR/state/admin.sock")" = 600 ] && pass "admin socket is 0600" || fail "admin socket mode"
if command -v setpriv >/dev/null; then
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$VC" -c "$VCONF" status
	[ "$RC" -ne 0 ] && pass "another user cannot use the admin socket (exit $RC)" || fail "admin socket open to others"
fi

# SIGTERM drains and exits cleanly, with a last checkpoint.
kill -TERM "$VD_PID"
wait "$VD_PID"
rc=$?
[ $rc = 0 ] && pass "SIGTERM: clean exit" || fail "SIGTERM exit $rc"
[ ! -e "$VDIR/state/vaultd.pid" ] && pass "pid file removed" || fail "pid file left"
tail -1 "$MNT/audit.log" | grep -q '"type":"checkpoint"' && pass "last record is a checkpoint" || fail "no final checkpoint"

# The audit verifier: intact, then each kind of tampering on a copy.
expect_rc 0 "audit verify: intact" "$VC" -c "$VCONF" audit verify
tamper() { # NAME SCRIPT: copy the log (and head), apply SCRIPT to the copy, verify
	mkdir -p "$T/$1"
	cp "$MNT/audit.log" "$T/$1/audit.log"
	cp "$MNT/audit.log.head" "$T/$1/audit.log.head"
	(cd "$T/$1" && eval "$2")
	# A script that changed nothing tests nothing: say so, rather than blame the verifier.
	cmp -s "$MNT/audit.log" "$T/$1/audit.log" && { fail "tamper script for $1 changed nothing"; return; }
	run "$VC" -c "$VCONF" audit verify "$T/$1/audit.log"
	[ "$RC" -eq 1 ] && grep -q "NOT intact" "$T/err" && pass "audit verify catches: $1" || { fail "audit verify missed: $1 (exit $RC)"; cat "$T/err"; }
}
# (the first enrolment record: with checkpoints every second, line 3 can be a checkpoint)
tamper "a flipped byte" 'n=$(grep -n "\"enroll\"" audit.log | head -1 | cut -d: -f1); [ -n "$n" ] && sed -i "${n}s/\"enroll\"/\"enrolL\"/" audit.log'
tamper "a deleted line" 'sed -i 4d audit.log'
tamper "a swapped pair" 'awk "NR==4{l=\$0; next} NR==5{print; print l; next} {print}" audit.log >x && mv x audit.log'
tamper "truncation past a checkpoint" 'n=$(grep -n checkpoint audit.log | tail -1 | cut -d: -f1); head -n $((n - 1)) audit.log >x && mv x audit.log'
vd_stop

# The restart limit (vaultd.8: the pair is restarted at most 5 times a minute): a fresh
# vaultd restarts the pair after each of 5 deaths of the key process, and at the 6th within
# its 60 s window gives up - logged, its children stopped, pid file removed - and exits 1
# (failure, vaultd.8), instead of restarting a crashing key process for ever.  Last: it
# leaves vaultd stopped.
vd_start || { t_done; exit 1; }
RS='restarting the key and network processes'
R0=$(grep -c "$RS" "$T/vaultd.log")
for i in 1 2 3 4 5; do
	vd_kill_child keyproc || { fail "death $i of the key process: not restarted"; break; }
done
[ "$(grep -c "$RS" "$T/vaultd.log")" = $((R0 + 5)) ] && pass "5 deaths of the key process: 5 restarts" \
	|| fail "restarts after 5 deaths: $(($(grep -c "$RS" "$T/vaultd.log") - R0))"
NP=$(vd_child netproc)
kill -9 "$(vd_child keyproc)"
for _ in $(seq 50); do
	kill -0 "$VD_PID" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$VD_PID" 2>/dev/null; then
	fail "the 6th death in a minute: vaultd still running after 5 s"
	vd_stop # or the tmpfs stays busy at exit
else
	wait "$VD_PID"
	rc=$?
	[ $rc = 1 ] && pass "the 6th death in a minute: vaultd gives up, exit 1" || fail "giving up: exit $rc, wanted 1"
fi
grep -q "children failed 6 times within 60 s (5 restarts): giving up" "$T/vaultd.log" && [ "$(grep -c "$RS" "$T/vaultd.log")" = $((R0 + 5)) ] \
	&& pass "it says so, and made no 6th restart" || { fail "no give-up line, or a 6th restart"; tail -5 "$T/vaultd.log"; }
[ -n "$NP" ] && ! grep -qs '^State:[[:space:]]*[^Z]' "/proc/$NP/status" && [ ! -e "$VDIR/state/vaultd.pid" ] \
	&& pass "its network process is gone, the pid file removed" || fail "netproc $NP left running, or pid file left"
vd_sanitizer_check
t_done
