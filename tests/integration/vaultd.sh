# shellcheck shell=bash
# Helpers for tests that run a real vaultd (source after lib.sh).
#
#   vd_setup            config in $T/vd/vaultd.conf, free ports, vaultctl init
#   vd_start / vd_stop  run vaultd in the foreground, stopped by PID
#   vd_enroll NAME      enrol a shadow into $T/sh-NAME (prints nothing)
#   vd_api NAME METHOD PATH [BODY]   mTLS request as shadow NAME: $CODE, $T/body
#   vd_sign NAME ACCOUNT URL NONCE PAYLOAD   signing request: $CODE, $T/body
#   vd_start_fault FAULT / vd_crash   vaultd with SV_FAULT set; all three processes killed
#   proc_ids PID UID GID, proc_ids_text PID, proc_fds PID   a process as /proc shows it
VC=$(sv_bin vaultctl) || exit 1
VD=$(sv_bin vaultd) || exit 1
SH=$(sv_bin shadow) || exit 1
PY=/usr/bin/python3
VDIR=$T/vd
VCONF=$VDIR/vaultd.conf

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# renew_body CSR CERT KEY: the JSON body of POST /v1/identity/renew for CSR, made by the
# holder of CERT and KEY (the proof: KEY's signature over the context and the CSR).
renew_body() {
	local proof
	proof=$({ printf 'shadowvault identity renewal v1\n'; cat "$1"; } | openssl dgst -sha256 -sign "$3" -binary | b64url)
	"$PY" -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read(), "certificate": open(sys.argv[2]).read(), "proof": sys.argv[3]}))' \
		"$1" "$2" "$proof"
}

# vd_config EXTRA: (re)write the configuration; EXTRA is appended verbatim.
vd_config() {
	mkdir -p "$VDIR"
	: "${VD_API_PORT:=$(free_port)}" "${VD_ENROLL_PORT:=$(free_port)}"
	local audit='audit = { checkpoint_records = 5; checkpoint_seconds = 1; };'
	case "${1:-}" in *"audit = {"*) audit= ;; esac
	cat >"$VCONF" <<CONF
state_dir = "state";
hsm = { softhsm2_conf = "state/hsm/softhsm2.conf"; };
listen = "127.0.0.1:$VD_API_PORT";
enroll_listen = "127.0.0.1:$VD_ENROLL_PORT";
$audit
${1:-}
CONF
	VD_API=https://127.0.0.1:$VD_API_PORT
	VD_ENROLL=https://127.0.0.1:$VD_ENROLL_PORT
}

vd_setup() {
	vd_config "${1:-}"
	"$VC" -c "$VCONF" -q init || { fail "vaultctl init"; t_done; exit 1; }
	VD_CA=$VDIR/state/ca.pem
}

vd_health() { curl -s -o /dev/null -w '%{http_code}' --cacert "$VD_CA" "$VD_ENROLL/v1/health"; }

vd_start() {
	"$VD" -c "$VCONF" -f >>"$T/vaultd.log" 2>&1 &
	VD_PID=$!
	T_PIDS="$T_PIDS $VD_PID"
	local _
	for _ in $(seq 100); do
		[ "$(vd_health)" = 200 ] && return 0
		kill -0 "$VD_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "vaultd did not start"
	tail -20 "$T/vaultd.log"
	return 1
}

vd_stop() {
	kill -TERM "$VD_PID" 2>/dev/null
	wait "$VD_PID" 2>/dev/null
}

# vd_child keyproc|netproc: PID of that child of the running vaultd.
vd_child() {
	local p
	for p in $(pgrep -P "$VD_PID"); do
		[ "$(cat /proc/$p/comm 2>/dev/null)" = "vaultd-$1" ] && { echo "$p"; return 0; }
	done
	return 1
}

# proc_ids PID UID GID: that process's real, effective, saved and file-system ids are all
# UID/GID, with no supplementary groups.
proc_ids() {
	awk -v u="$2" -v g="$3" '
		$1 == "Uid:" { ok += $2 == u && $3 == u && $4 == u && $5 == u }
		$1 == "Gid:" { ok += $2 == g && $3 == g && $4 == g && $5 == g }
		$1 == "Groups:" { ok += NF == 1 }
		END { exit ok == 3 ? 0 : 1 }' "/proc/$1/status"
}
# proc_ids_text PID: its Uid, Gid and Groups lines on one line, for a failure message.
proc_ids_text() { grep -E '^(Uid|Gid|Groups):' "/proc/$1/status" | tr '\n' ' '; }
# proc_fds PID: where each of its descriptors points, one a line.
proc_fds() {
	local f
	for f in "/proc/$1/fd/"*; do readlink "$f"; done
}

# vd_start_fault FAULT: vd_start with SV_FAULT=FAULT in vaultd's environment (the tests'
# fault injection); 0 once it answers health, else 1.
vd_start_fault() {
	SV_FAULT=$1 "$VD" -c "$VCONF" -f >>"$T/vaultd.log" 2>&1 &
	VD_PID=$!
	T_PIDS="$T_PIDS $VD_PID"
	local _
	for _ in $(seq 100); do
		[ "$(vd_health)" = 200 ] && return 0
		sleep 0.1
	done
	return 1
}

# vd_crash: kill -9 vaultd and both its children at once, as a power cut would, and wait
# until they are gone (within 5 s).
vd_crash() {
	local kids _
	kids="$(vd_child keyproc) $(vd_child netproc)"
	# shellcheck disable=SC2086 # two PIDs
	kill -KILL "$VD_PID" $kids
	wait "$VD_PID" 2>/dev/null
	for _ in $(seq 50); do
		# shellcheck disable=SC2086
		kill -0 $kids 2>/dev/null || break
		sleep 0.1
	done
}

# vd_kill_child CHILD: kill -9 vaultd's netproc or keyproc; 0 once the supervisor has
# started a new pair that answers health (within 6 s), else 1.
vd_kill_child() {
	local old new
	old=$(vd_child "$1") || return 1
	kill -9 "$old"
	for _ in $(seq 60); do
		sleep 0.1
		new=$(vd_child "$1") && [ "$new" != "$old" ] && [ "$(vd_health)" = 200 ] && return 0
	done
	return 1
}

vd_enroll() {
	local tok
	tok=$("$VC" -c "$VCONF" --json shadow add "$1" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
	"$SH" -q --state-dir "$T/sh-$1" enroll --vault "$VD_ENROLL" --token "$tok" --ca "$VD_CA"
}

vd_api() { # NAME METHOD PATH [BODY [CONTENT-TYPE]]: answer in $CODE, $T/body, $T/headers
	local d=$T/sh-$1
	local args=(-s -o "$T/body" -D "$T/headers" -w '%{http_code}' --cacert "$VD_CA" --cert "$d/identity/cert.pem"
		--key "$d/identity/key.pem" -X "$2")
	if [ $# -ge 4 ]; then
		printf '%s' "$4" >"$T/reqbody"
		args+=(-H "Content-Type: ${5:-application/json}" --data-binary @"$T/reqbody")
	fi
	CODE=$(curl "${args[@]}" "$VD_API$3")
}

vd_sign() { # NAME ACCOUNT URL NONCE PAYLOAD
	local body
	body=$("$PY" -c 'import json,sys; print(json.dumps({"url":sys.argv[1],"nonce":sys.argv[2],"payload":sys.argv[3]}))' \
		"$3" "$4" "$(printf '%s' "$5" | b64url)")
	vd_api "$1" POST "/v1/acme/accounts/$2/sign" "$body"
}

# json_get FILE PYEXPR: print d<PYEXPR> of the JSON in FILE.
json_get() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(d$2)" "$1"; }
# cert_time CERT start|end: the certificate's notBefore or notAfter, in seconds since the epoch.
cert_time() { date -d "$(openssl x509 -in "$1" -noout "-${2}date" | cut -d= -f2)" +%s; }

# expect_code N WHAT: the last vd_api/vd_sign answered N.
expect_code() {
	if [ "$CODE" = "$1" ]; then
		pass "$2 (HTTP $CODE)"
	else
		fail "$2: HTTP $CODE, wanted $1"
		head -c 400 "$T/body" | sed 's/^/    body: /'
		echo
	fi
}

# expect_problem TYPE WHAT: the last answer is a problem document of TYPE.
expect_problem() {
	if grep -q "problem:$1\"" "$T/body"; then
		pass "$2"
	else
		fail "$2: no problem type $1"
		head -c 400 "$T/body" | sed 's/^/    body: /'
		echo
	fi
}

# Sanitizer reports from vaultd's processes land in its log, not in a test's
# exit status: any report fails the test.
vd_sanitizer_check() {
	[ -f "$T/vaultd.log" ] || return 0
	if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/vaultd.log"; then
		fail "sanitizer report in vaultd's log"
		grep -A12 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$T/vaultd.log" | head -40
	else
		pass "no sanitizer report from vaultd"
	fi
}
