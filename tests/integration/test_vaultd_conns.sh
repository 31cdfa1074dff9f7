#!/usr/bin/env bash
# vaultd against abusive clients.  Enrolment attempts beyond the limit get
# 429 and leave no audit record.  A client that sends a byte now and then is
# cut at the request deadline.  Under a flood of connections that never
# speak, with an open-file limit of 200, the network process lowers
# limits.max_connections to fit (and says so), accepts that many, leaves the
# rest in the listen queue, burns no CPU meanwhile (libevent alone would retry
# the failing accept() in a loop), cuts the idle ones after
# limits.request_timeout, and serves again by itself.  The admin socket has a
# cap of its own, and refuses bad frames without harm.  One address cannot
# hold more than limits.max_connections_per_address.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vaultd.sh"

# vaultd with a hard limit of 200 descriptors (each of its processes).
cat >"$T/vaultd-200" <<EOF
#!/usr/bin/env bash
ulimit -n 200 || exit 1
exec "$VD" "\$@"
EOF
chmod +x "$T/vaultd-200"
VD=$T/vaultd-200
vd_setup 'limits = { request_timeout = 3; enroll_per_minute = 3; };'
vd_start || { t_done; exit 1; }
NP=$(vd_child netproc)
grep -q "limits.max_connections lowered from 4096 to 136: the open-file limit allows no more" "$T/vaultd.log" \
	&& pass "max_connections lowered to fit 200 descriptors (200 - 64 reserved)" || { fail "no lowering message"; tail -5 "$T/vaultd.log"; }

# Enrolment attempts are limited for all clients together (here 3 a minute): each one the
# key process sees costs an audit record, so a stranger must not be able to fill the disk.
KEY=$(head -c 32 /dev/zero | b64url)
for i in 1 2 3 4 5; do
	curl -s -o "$T/enr$i" -w '%{http_code}\n' -D "$T/enrh$i" --cacert "$VD_CA" -H 'Content-Type: application/json' \
		-d "{\"token\":\"wrong$i\",\"csr\":\"x\",\"box_public_key\":\"$KEY\"}" "$VD_ENROLL/v1/enroll"
done >"$T/enr.codes"
[ "$(tr '\n' ' ' <"$T/enr.codes")" = "403 403 403 429 429 " ] && grep -qi '^retry-after: [0-9]' "$T/enrh4" \
	&& grep -q 'problem:rate-limited"' "$T/enr4" && pass "enrolment: 3 attempts judged, then 429 with Retry-After" \
	|| fail "enrolment limit: $(tr '\n' ' ' <"$T/enr.codes") $(cat "$T/enr4")"
N=$("$PY" -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if l.strip() and json.loads(l).get("type") == "enroll"))' "$VDIR/state/audit.log")
[ "$N" = 3 ] && pass "only the 3 judged attempts are in the audit log" || fail "enroll records in the audit log: $N"

# A client that sends a byte now and then never times out of evhttp's idle timer; the
# request deadline (limits.request_timeout, here 3 s, from the accept) cuts it on both ports.
"$PY" - "$VD_ENROLL_PORT" "$VD_API_PORT" >"$T/drip.out" 2>&1 <<'PY'
import socket, sys, time
socks = [socket.create_connection(("127.0.0.1", int(p))) for p in sys.argv[1:]]
for s in socks:
    s.send(bytes([0x16, 0x03, 0x01, 0x02, 0x00]))  # a TLS record of 512 bytes, announced
t0, cut = time.time(), {}
while time.time() - t0 < 10 and len(cut) < len(socks):
    time.sleep(0.5)
    for i, s in enumerate(socks):
        if i in cut:
            continue
        try:
            s.send(b"\x01")
        except OSError:
            cut[i] = round(time.time() - t0, 1)
print("cut", sorted(cut.items()), flush=True)
PY
grep -Eq "^cut \[\(0, [2-6]\.[0-9]\), \(1, [2-6]\.[0-9]\)\]" "$T/drip.out" \
	&& pass "slow-drip clients cut after the request deadline: $(cat "$T/drip.out")" || fail "slow drip: $(cat "$T/drip.out")"

# hold TARGET N OUT [SRC]: N connections that never send a byte, to 127.0.0.1:TARGET (from
# the address SRC if given) or to the unix socket TARGET, held until $FLOOD is killed;
# returns once they are made.
hold() {
	"$PY" - "$1" "$2" "${4:-}" >"$3" 2>&1 <<'PY' &
import socket, sys, time
target, n, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
unix = "/" in target
socks = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX if unix else socket.AF_INET)
    s.settimeout(5)
    if src:
        s.bind((src, 0))
    s.connect(target if unix else ("127.0.0.1", int(target)))
    socks.append(s)
print("connected", len(socks), flush=True)
time.sleep(60)
PY
	FLOOD=$!
	T_PIDS="$T_PIDS $FLOOD"
	for i in $(seq 50); do grep -q connected "$3" && break; sleep 0.1; done
}
# cpu_ticks PID: the clock ticks (1/100 s) the process has run, user and system.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# 250 TCP connections (more than the 200 descriptors) to the enrolment port.
hold "$VD_ENROLL_PORT" 250 "$T/flood.out"
grep -q "connected 250" "$T/flood.out" && pass "250 connections made (the kernel queues what vaultd does not accept)" || fail "flood: $(cat "$T/flood.out")"

sleep 0.5
t0=$(cpu_ticks "$NP")
sleep 1
t1=$(cpu_ticks "$NP")
socks=$(find "/proc/$NP/fd" -lname 'socket:*' | wc -l)
[ "$socks" -le 150 ] && pass "netproc holds at most the cap ($socks sockets)" || fail "netproc holds $socks sockets"
[ $((t1 - t0)) -lt 30 ] && pass "netproc idle while at the cap ($((t1 - t0)) ticks in 1 s)" || fail "netproc busy at the cap: $((t1 - t0)) ticks in 1 s"
[ "$(grep -c "136 connections open (limits.max_connections): new ones wait in the listen queue" "$T/vaultd.log")" = 1 ] \
	&& pass "the cap is logged once" || { fail "cap log lines"; grep -c "connections open" "$T/vaultd.log"; }
grep -q "Error from accept" "$T/vaultd.log" && fail "libevent's accept error loop in the log" || pass "no accept() error loop in the log"

# The flood stays connected; its idle connections are cut after 3 s, the queued ones
# get their turn and are cut too, and a real client gets through.
CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$VD_CA" "$VD_ENROLL/v1/health")
[ "$CODE" = 200 ] && pass "health answered while the flood holds its sockets" || fail "health during the flood: $CODE"
kill "$FLOOD"
wait "$FLOOD" 2>/dev/null
kill -0 "$NP" 2>/dev/null && [ "$(vd_child netproc)" = "$NP" ] && pass "the same netproc still serves" || fail "netproc was replaced or died"

# The admin socket has its own cap (64): 80 silent connections, the key process idle, then vaultctl works.
KP=$(vd_child keyproc)
hold "$VDIR/state/admin.sock" 80 "$T/admin.out"
sleep 0.3
t0=$(cpu_ticks "$KP")
sleep 1
t1=$(cpu_ticks "$KP")
grep -q "connected 80" "$T/admin.out" && grep -q "64 connections open (admin socket limit)" "$T/vaultd.log" \
	&& pass "admin socket: 64 connections taken, the rest queued" || { fail "admin cap: $(cat "$T/admin.out")"; tail -3 "$T/vaultd.log"; }
[ $((t1 - t0)) -lt 30 ] && pass "key process idle at the admin cap ($((t1 - t0)) ticks in 1 s)" || fail "key process busy: $((t1 - t0)) ticks"
kill "$FLOOD"
wait "$FLOOD" 2>/dev/null
# Bad admin frames: an announced 2 GiB request ends that connection; a frame that is not a
# JSON object gets an error answer on a connection that stays usable.
"$PY" - "$VDIR/state/admin.sock" >"$T/adminbad.out" 2>&1 <<'PY'
import json, socket, struct, sys
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1]); return s
def answer(s):
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
s = conn(); s.sendall(struct.pack(">I", 0x7fffffff)); print("huge:", "closed" if s.recv(1) == b"" else "open")
s = conn()
for body in (b"[1,2]", b"\xff{not json"):
    s.sendall(struct.pack(">I", len(body)) + body); a = answer(s); print("bad:", a.get("ok"), a.get("error"))
PY
grep -q "^huge: closed" "$T/adminbad.out" && [ "$(grep -c '^bad: False admin request is not a JSON object' "$T/adminbad.out")" = 2 ] \
	&& pass "admin socket: oversized frame closed, non-object frames answered with an error" || fail "admin frames: $(cat "$T/adminbad.out")"
run "$VC" -c "$VCONF" status
[ "$RC" = 0 ] && pass "vaultctl status once they are gone" || { fail "vaultctl status: $RC"; cat "$T/err"; }
vd_sanitizer_check
vd_stop

# Per address (limits.max_connections_per_address, here 10): a client at 127.0.0.2 holding
# 10 silent connections gets its next ones closed at once, on either port, while clients
# at other addresses are served; once its connections close it is served again.
vd_config 'limits = { max_connections_per_address = 10; enroll_per_minute_per_address = 2; };'
vd_start || { t_done; exit 1; }
vd_enroll web1 && pass "enrol web1 (to read /metrics)" || fail "enrol web1"
# probe PORT SRC: "cut" if vaultd closes a new connection from SRC within 2 s, else "open".
probe() {
	"$PY" - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(); s.bind((sys.argv[2], 0)); s.settimeout(2)
s.connect(("127.0.0.1", int(sys.argv[1])))
try:
    print("cut" if s.recv(1) == b"" else "data")
except ConnectionResetError:
    print("cut")
except socket.timeout:
    print("open")
PY
}
[ "$(probe "$VD_ENROLL_PORT" 127.0.0.2)" = open ] && pass "a connection from 127.0.0.2 stays open below the limit" \
	|| fail "a first connection from 127.0.0.2 was cut"
hold "$VD_ENROLL_PORT" 10 "$T/peer.out" 127.0.0.2
grep -q "connected 10" "$T/peer.out" && pass "127.0.0.2 holds 10 connections" || fail "hold: $(cat "$T/peer.out")"
sleep 0.3
P1=$(probe "$VD_ENROLL_PORT" 127.0.0.2) P2=$(probe "$VD_API_PORT" 127.0.0.2)
[ "$P1 $P2" = "cut cut" ] && pass "its 11th connection is closed at once, on both ports" || fail "past the limit: $P1 $P2"
[ "$(probe "$VD_ENROLL_PORT" 127.0.0.3)" = open ] && pass "127.0.0.3 is not limited by 127.0.0.2's connections" \
	|| fail "127.0.0.3 was cut"
CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$VD_CA" "$VD_ENROLL/v1/health")
[ "$CODE" = 200 ] && pass "health from 127.0.0.1 meanwhile" || fail "health from 127.0.0.1: $CODE"
[ "$(grep -c "127.0.0.2 holds 10 connections: closing new ones past limits.max_connections_per_address (10" "$T/vaultd.log")" = 1 ] \
	&& pass "the limit is logged once, with the address" || { fail "per-address log lines"; grep 'per_address' "$T/vaultd.log"; }
curl -s --cacert "$VD_CA" --cert "$T/sh-web1/identity/cert.pem" --key "$T/sh-web1/identity/key.pem" "$VD_API/metrics" >"$T/metrics"
grep -q '^shadowvault_address_limit_total 2$' "$T/metrics" && pass "metrics: 2 connections closed by the per-address limit" \
	|| fail "metrics: $(grep address_limit "$T/metrics")"
kill "$FLOOD"
wait "$FLOOD" 2>/dev/null
sleep 0.3
CODE=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --interface 127.0.0.2 --cacert "$VD_CA" "$VD_ENROLL/v1/health")
[ "$CODE" = 200 ] && pass "127.0.0.2 is served again once its connections are gone" || fail "health from 127.0.0.2: $CODE"

# Enrolment attempts per address (here 2 a minute): 127.0.0.2's third is refused before the
# key process sees it, and 127.0.0.3 still gets its attempts judged.
enroll_from() { # SRC N: enrolment attempt N with a made-up token from address SRC; prints the code
	curl -s -o "$T/enrA$2" -w '%{http_code} ' --interface "$1" --cacert "$VD_CA" -H 'Content-Type: application/json' \
		-d "{\"token\":\"wrongA$2\",\"csr\":\"x\",\"box_public_key\":\"$KEY\"}" "$VD_ENROLL/v1/enroll"
}
denials() { # enrolment refusals in the audit log
	"$PY" -c 'import json, sys
print(sum(1 for l in open(sys.argv[1]) if l.strip() and json.loads(l).get("type") == "enroll" and json.loads(l).get("decision") == "deny"))' "$VDIR/state/audit.log"
}
N0=$(denials)
A=$(enroll_from 127.0.0.2 1; enroll_from 127.0.0.2 2; enroll_from 127.0.0.2 3; enroll_from 127.0.0.3 4; enroll_from 127.0.0.3 5)
[ "$A" = "403 403 429 403 403 " ] && grep -q 'enroll_per_minute_per_address' "$T/enrA3" \
	&& pass "enrolment per address: 127.0.0.2 judged twice then 429, 127.0.0.3 judged" || fail "enrolment per address: $A $(cat "$T/enrA3")"
[ $(($(denials) - N0)) = 4 ] && pass "the 4 judged attempts are in the audit log, the refused one is not" \
	|| fail "enrolment refusals audited: $(($(denials) - N0))"
vd_sanitizer_check
vd_stop
t_done
