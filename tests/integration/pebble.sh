#!/usr/bin/env bash
#
# Pebble (Let's Encrypt's test CA) on loopback for the integration tests.
#
#   pebble.sh start DIR [--authz-reuse N] [--nonce-reject N] [--alternate-roots N]
#   pebble.sh stop DIR
#
# Runnable, or sourceable (then call pebble_start / pebble_stop; start also
# exports the variables of DIR/env into the calling shell).  start makes a
# throw-away TLS CA and a 127.0.0.1/localhost server certificate for Pebble's
# own HTTPS listener, writes Pebble's JSON config, starts pebble-challtestsrv
# as a mock DNS server that answers every A query with 127.0.0.1, starts
# pebble, waits (bounded) until every port accepts connections, fetches the
# root that signs issued certificates into DIR/root.pem, records the PIDs in
# DIR/*.pid and writes the sourceable DIR/env.  stop ends exactly the
# recorded PIDs (TERM, then KILL after a bounded wait), never by name.
# Everything listens on 127.0.0.1 only.  See README.md next to this file.
#
# Ports are free loopback ports chosen at start; fix any of them with
# PEBBLE_PORT, PEBBLE_MGMT_PORT, PEBBLE_HTTP01_PORT, PEBBLE_TLSALPN01_PORT,
# CHALLTEST_DNS_PORT, CHALLTEST_MGMT_PORT.  PEBBLE_START_WAIT (seconds,
# default 15) bounds the wait for the listeners, PEBBLE_STOP_WAIT (default
# 10) the wait for TERM before KILL.

# Names of the processes we start (each has DIR/NAME.pid and DIR/NAME.log).
PEBBLE_SH_PROCS="challtestsrv pebble"

pebble_sh_err() {
	echo "pebble.sh: $*" >&2
}

# Is TCP port $1 on 127.0.0.1 accepting connections?
pebble_sh_port_open() {
	timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Print one loopback port that nothing listens on (TCP or UDP) and that is
# not in the space-separated list $1.
pebble_sh_free_port() {
	local taken="$1" used port i
	used=" $(ss -Htanu 2>/dev/null | awk '{ n = split($5, a, ":"); printf "%s ", a[n] }') "
	for ((i = 0; i < 200; i++)); do
		port=$((20000 + RANDOM % 40000))
		case "$used $taken " in
		*" $port "*) continue ;;
		esac
		echo "$port"
		return 0
	done
	pebble_sh_err "no free loopback port found"
	return 1
}

# Is PID $1 alive and still the program we started ($2)?  (Guards against
# a recycled PID: we only ever signal our own processes.)
pebble_sh_is() {
	[[ "$1" =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

# Is the PID in file $1 alive and still the program we started ($2)?
pebble_sh_pid_alive() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	pebble_sh_is "$pid" "$2"
}

# Throw-away CA and server certificate for pebble's HTTPS listeners.
# shellcheck disable=SC2015 # "a && b && c || fail" is meant: fail if any fails
pebble_sh_certs() {
	local dir="$1" ext="$1/tls-server.ext"
	printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$ext"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
		-subj "/CN=shadowvault throw-away pebble TLS CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
		-keyout "$dir/tls-ca.key" -out "$dir/tls-ca.pem" 2>>"$dir/openssl.log" &&
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=localhost" -keyout "$dir/tls-server.key" -out "$dir/tls-server.csr" \
			2>>"$dir/openssl.log" &&
		openssl x509 -req -in "$dir/tls-server.csr" -CA "$dir/tls-ca.pem" -CAkey "$dir/tls-ca.key" \
			-set_serial "0x$(openssl rand -hex 8)" -days 7 -extfile "$ext" \
			-out "$dir/tls-server.pem" 2>>"$dir/openssl.log" || {
		pebble_sh_err "openssl failed making the TLS certificates:"
		tail -n 5 "$dir/openssl.log" >&2
		return 1
	}
}

pebble_sh_config() {
	local dir="$1"
	cat >"$dir/pebble.json" <<EOF
{
  "pebble": {
    "listenAddress": "127.0.0.1:$P_PORT",
    "managementListenAddress": "127.0.0.1:$P_MGMT",
    "certificate": "$dir/tls-server.pem",
    "privateKey": "$dir/tls-server.key",
    "httpPort": $P_HTTP01,
    "tlsPort": $P_TLSALPN01,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false
  }
}
EOF
}

# Choose the six ports: from the environment, else free ones.
pebble_sh_ports() {
	local taken="" v
	for v in P_PORT:PEBBLE_PORT P_MGMT:PEBBLE_MGMT_PORT P_HTTP01:PEBBLE_HTTP01_PORT \
		P_TLSALPN01:PEBBLE_TLSALPN01_PORT C_DNS:CHALLTEST_DNS_PORT C_MGMT:CHALLTEST_MGMT_PORT; do
		local var=${v%%:*} env=${v#*:} port
		port=${!env:-}
		if [[ -z "$port" ]]; then
			port=$(pebble_sh_free_port "$taken") || return 1
		elif ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
			pebble_sh_err "$env=$port is not a port number"
			return 1
		fi
		printf -v "$var" '%s' "$port"
		taken="$taken $port"
	done
}

# Start program $2 (pid file DIR/$1.pid, log DIR/$1.log) in its own session,
# detached from the caller's stdio so ctest does not wait for it.
pebble_sh_spawn() {
	local dir="$1" name="$2"
	shift 2
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/$name.pid" "$@" \
		</dev/null >"$dir/$name.log" 2>&1 &
}

# Wait until every port in $3.. accepts connections and the process whose
# pid file is DIR/$2.pid is alive; on failure show the log tail.
pebble_sh_wait() {
	local dir="$1" name="$2" deadline port ok
	shift 2
	deadline=$((SECONDS + ${PEBBLE_START_WAIT:-15}))
	while ((SECONDS < deadline)); do
		ok=1
		if [[ -s "$dir/$name.pid" ]] && ! pebble_sh_pid_alive "$dir/$name.pid" "$name"; then
			pebble_sh_err "$name exited during start-up; end of $dir/$name.log:"
			tail -n 15 "$dir/$name.log" >&2
			return 1
		fi
		for port in "$@"; do
			pebble_sh_port_open "$port" || ok=0
		done
		((ok)) && return 0
		sleep 0.1
	done
	pebble_sh_err "$name: ports $* not accepting connections after ${PEBBLE_START_WAIT:-15} s;" \
		"end of $dir/$name.log:"
	tail -n 15 "$dir/$name.log" >&2
	return 1
}

pebble_sh_write_env() {
	local dir="$1"
	cat >"$dir/env.tmp" <<EOF
PEBBLE_DIR=$dir
PEBBLE_URL=https://127.0.0.1:$P_PORT/dir
PEBBLE_CA=$dir/tls-ca.pem
PEBBLE_ROOT=$dir/root.pem
PEBBLE_HTTP01_PORT=$P_HTTP01
PEBBLE_TLSALPN01_PORT=$P_TLSALPN01
PEBBLE_MGMT=https://127.0.0.1:$P_MGMT
PEBBLE_AUTHZREUSE=$O_REUSE
PEBBLE_NONCEREJECT=$O_REJECT
PEBBLE_ALTERNATE_ROOTS=$O_ALT
CHALLTEST_DNS=127.0.0.1:$C_DNS
CHALLTEST_MGMT=http://127.0.0.1:$C_MGMT
EOF
	mv "$dir/env.tmp" "$dir/env"
}

pebble_sh_options() {
	O_REUSE=100 O_REJECT=5 O_ALT=0
	while (($# > 0)); do
		case "$1" in
		--authz-reuse | --nonce-reject | --alternate-roots)
			if (($# < 2)) || ! [[ "$2" =~ ^[0-9]+$ ]] || { [[ "$1" != --alternate-roots ]] && (($2 > 100)); }; then
				pebble_sh_err "$1 needs a number (a percentage for reuse/reject)"
				return 1
			fi
			case "$1" in
			--authz-reuse) O_REUSE=$2 ;;
			--nonce-reject) O_REJECT=$2 ;;
			*) O_ALT=$2 ;;
			esac
			shift 2
			;;
		*)
			pebble_sh_err "unknown option: $1"
			return 1
			;;
		esac
	done
}

# Make DIR, refuse if it has live processes; prints the absolute path.
pebble_sh_dir() {
	local dir="$1" name
	if [[ -z "$dir" ]]; then
		pebble_sh_err "usage: pebble.sh start DIR [--authz-reuse N] [--nonce-reject N] [--alternate-roots N]"
		return 1
	fi
	mkdir -p "$dir" && dir=$(cd "$dir" && pwd -P) || return 1
	# env is parsed as plain KEY=VALUE lines: keep paths free of quoting.
	if ! [[ "$dir" =~ ^[A-Za-z0-9_./+-]+$ ]]; then
		pebble_sh_err "DIR '$dir' has characters that would need quoting"
		return 1
	fi
	for name in $PEBBLE_SH_PROCS; do
		if pebble_sh_pid_alive "$dir/$name.pid" "$name"; then
			pebble_sh_err "$dir already runs $name (pid $(cat "$dir/$name.pid")); run 'pebble.sh stop $dir' first"
			return 1
		fi
		rm -f "$dir/$name.pid"
	done
	echo "$dir"
}

# One start attempt with freshly chosen ports.
pebble_sh_start_once() {
	local dir="$1"
	pebble_sh_ports && pebble_sh_certs "$dir" && pebble_sh_config "$dir" || return 1
	pebble_sh_spawn "$dir" challtestsrv pebble-challtestsrv -dns01 "127.0.0.1:$C_DNS" -http01 "" \
		-https01 "" -tlsalpn01 "" -management "127.0.0.1:$C_MGMT" -defaultIPv4 127.0.0.1 -defaultIPv6 ""
	pebble_sh_wait "$dir" challtestsrv "$C_MGMT" || { pebble_stop "$dir"; return 1; }
	PEBBLE_VA_NOSLEEP=1 PEBBLE_AUTHZREUSE=$O_REUSE PEBBLE_WFE_NONCEREJECT=$O_REJECT \
		PEBBLE_ALTERNATE_ROOTS=$O_ALT pebble_sh_spawn "$dir" pebble \
		pebble -config "$dir/pebble.json" -dnsserver "127.0.0.1:$C_DNS" -strict=false
	pebble_sh_wait "$dir" pebble "$P_PORT" "$P_MGMT" || { pebble_stop "$dir"; return 1; }
	if ! curl -sS --fail --max-time 10 --cacert "$dir/tls-ca.pem" -o "$dir/root.pem" \
		"https://127.0.0.1:$P_MGMT/roots/0"; then
		pebble_sh_err "cannot fetch the issuing root from https://127.0.0.1:$P_MGMT/roots/0"
		pebble_stop "$dir"
		return 1
	fi
}

pebble_start() {
	local dir attempt tool
	dir=$(pebble_sh_dir "${1:-}") || return 1
	shift
	pebble_sh_options "$@" || return 1
	for tool in pebble pebble-challtestsrv openssl curl ss setsid; do
		command -v "$tool" >/dev/null || { pebble_sh_err "$tool not found in PATH"; return 1; }
	done
	rm -f "$dir/env" "$dir/root.pem"
	# A free port can be taken between choosing and binding: with chosen
	# (not fixed) ports, try again with new ones.
	for attempt in 1 2 3; do
		pebble_sh_start_once "$dir" && break
		if [[ -n "${PEBBLE_PORT:-}${PEBBLE_MGMT_PORT:-}${PEBBLE_HTTP01_PORT:-}${PEBBLE_TLSALPN01_PORT:-}${CHALLTEST_DNS_PORT:-}${CHALLTEST_MGMT_PORT:-}" ]] ||
			((attempt == 3)); then
			return 1
		fi
		pebble_sh_err "start attempt $attempt failed; trying other ports"
	done
	pebble_sh_write_env "$dir"
	set -a
	# shellcheck disable=SC1091 # written just above
	. "$dir/env"
	set +a
	echo "pebble.sh: pebble at $PEBBLE_URL (http-01 port $P_HTTP01, log $dir/pebble.log)"
}

# TERM every recorded PID that is still ours, wait (bounded) for all of
# them together (each takes about 2 s to shut down), then KILL survivors.
pebble_stop() {
	local dir="${1:-}" name pid pids="" i alive
	if [[ -z "$dir" || ! -d "$dir" ]]; then
		pebble_sh_err "usage: pebble.sh stop DIR (an existing directory)"
		return 1
	fi
	for name in $PEBBLE_SH_PROCS; do
		if pebble_sh_pid_alive "$dir/$name.pid" "$name"; then
			pid=$(cat "$dir/$name.pid")
			kill -TERM "$pid" 2>/dev/null && pids="$pids $pid:$name"
		fi
	done
	for ((i = 0; i < ${PEBBLE_STOP_WAIT:-10} * 10; i++)); do
		alive=""
		for pid in $pids; do
			pebble_sh_is "${pid%%:*}" "${pid#*:}" && alive="$alive $pid"
		done
		pids=$alive
		[[ -z "$pids" ]] && break
		sleep 0.1
	done
	for pid in $pids; do
		pebble_sh_err "${pid#*:} (pid ${pid%%:*}) ignored TERM; sending KILL"
		kill -KILL "${pid%%:*}" 2>/dev/null
	done
	for name in $PEBBLE_SH_PROCS; do
		rm -f "$dir/$name.pid"
	done
	rm -f "$dir/env"
}

pebble_sh_main() {
	local cmd="${1:-}"
	shift || true
	case "$cmd" in
	start) pebble_start "$@" ;;
	stop) pebble_stop "$@" ;;
	*)
		pebble_sh_err "usage: pebble.sh start DIR [--authz-reuse N] [--nonce-reject N] [--alternate-roots N]"
		pebble_sh_err "       pebble.sh stop DIR"
		return 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -u
	pebble_sh_main "$@"
	exit $?
fi
