#!/usr/bin/env bash
# vaultd started as root, as in production, with its state directory owned by
# an unprivileged user (here `daemon`): the key process runs as that user
# without groups, the network process as `user` (nobody) in its empty root,
# and the supervisor holds neither the token nor anything of the state
# directory; the vault still enrols, serves a shadow, writes its audit log and
# answers vaultctl (SECURITY.md, "Processes and what each may do").
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"
if [ "$(id -u)" != 0 ]; then
	echo "SKIP: the privilege drops happen only when vaultd starts as root"
	t_cleanup
	exit 77
fi
# fs.suid_dumpable 1 while vaultd starts: a change of uid resets a process's dumpable flag
# to it, so the key process must make itself not dumpable after its switch, not only before.
SUID_DUMPABLE=$(cat /proc/sys/fs/suid_dumpable)
trap 'echo "$SUID_DUMPABLE" >/proc/sys/fs/suid_dumpable; t_cleanup' EXIT
OWNER=daemon
OU=$(id -u "$OWNER") OG=$(id -g "$OWNER") || { fail "no user $OWNER"; t_done; exit 1; }

vd_setup
# The state directory is the owner's, as `chown -R` after `vaultctl init` makes it; the
# owner may pass through the test's directory (mode 0700 from mktemp) to reach it.
chown -R "$OWNER:$OWNER" "$VDIR/state"
chmod 0711 "$T"
echo 1 >/proc/sys/fs/suid_dumpable
vd_start || { t_done; exit 1; }
echo "$SUID_DUMPABLE" >/proc/sys/fs/suid_dumpable

KP=$(vd_child keyproc) NP=$(vd_child netproc)
proc_ids "$KP" "$OU" "$OG" \
	&& pass "the key process runs as the state directory's owner ($OWNER), without groups" \
	|| fail "keyproc: $(proc_ids_text "$KP")"
proc_ids "$NP" "$(id -u nobody)" "$(id -g nobody)" && [ "$(readlink "/proc/$NP/root")" = /run/shadowvault/empty ] \
	&& pass "the network process runs as nobody in /run/shadowvault/empty" \
	|| fail "netproc: $(proc_ids_text "$NP") root $(readlink "/proc/$NP/root")"
# Not dumpable: its /proc files are root's, and its own user cannot read them.
[ "$(stat -c %u "/proc/$KP/environ")" = 0 ] && ! setpriv --reuid="$OU" --regid="$OG" --clear-groups cat "/proc/$KP/environ" >/dev/null 2>&1 \
	&& pass "the key process is not dumpable, even for its own user" \
	|| fail "keyproc dumpable: /proc/$KP/environ is uid $(stat -c %u "/proc/$KP/environ")'s"
[ "$(stat -c %u "/proc/$NP/environ")" = 0 ] && ! setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups cat "/proc/$NP/environ" >/dev/null 2>&1 \
	&& pass "the network process (it holds the TLS key) is not dumpable, even for nobody" \
	|| fail "netproc dumpable: /proc/$NP/environ is uid $(stat -c %u "/proc/$NP/environ")'s"
proc_fds "$VD_PID" >"$T/sup.fds"
! grep -q libsofthsm2 "/proc/$VD_PID/maps" && ! grep -qF "$VDIR/state" "$T/sup.fds" \
	&& pass "the supervisor holds no PKCS#11 module and nothing of the state directory" \
	|| fail "supervisor: $(grep -c libsofthsm2 "/proc/$VD_PID/maps") module mappings; $(grep -F "$VDIR/state" "$T/sup.fds" | tr '\n' ' ')"

# It still does its work: an enrolment (the CA key in the token, the database, the audit
# log), a shadow's request, vaultctl over the admin socket, a verifiable audit log.
vd_enroll web1 && pass "a shadow enrols" || fail "enrol web1"
vd_api web1 GET /v1/identity
expect_code 200 "the shadow is served"
[ "$(stat -c %U "$VDIR/state/admin.sock")" = "$OWNER" ] && [ "$(stat -c %U "$VDIR/state/audit.log")" = "$OWNER" ] \
	&& pass "the admin socket and the audit log are the owner's" \
	|| fail "owners: admin.sock $(stat -c %U "$VDIR/state/admin.sock"), audit.log $(stat -c %U "$VDIR/state/audit.log")"
expect_rc 0 "vaultctl shadow list as root" "$VC" -c "$VCONF" shadow list
grep -q web1 "$T/out" && pass "and it lists web1" || fail "shadow list: $(cat "$T/out")"
# The admin socket takes root and the vault's own user, nobody else, even when the socket
# and the path to it are opened up (the peer's uid is checked, not only the file mode).
expect_rc 0 "vaultctl status as the state owner" setpriv --reuid="$OU" --regid="$OG" --clear-groups "$VC" -c "$VCONF" status
chmod o+x "$VDIR/state"
chmod 0666 "$VDIR/state/admin.sock"
run setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups "$VC" -c "$VCONF" status
[ "$RC" -ne 0 ] && grep -q "admin: connection from uid $(id -u nobody) refused" "$T/vaultd.log" \
	&& pass "another user is refused by its uid (exit $RC), and the log says so" \
	|| fail "admin socket as nobody: exit $RC; $(grep 'admin:' "$T/vaultd.log" | tail -2)"
chmod 0600 "$VDIR/state/admin.sock"
chmod o-x "$VDIR/state"
vd_stop
expect_rc 0 "the audit log verifies" "$VC" -c "$VCONF" audit verify
vd_sanitizer_check
t_done
