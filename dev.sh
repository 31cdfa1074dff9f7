#!/usr/bin/env bash
# shadowvault developer entry point (Debian 12).
#
#   ./dev.sh run     install dependencies, build, create a development vault
#                    under ./state on first run (SoftHSM2 token + SQLite), start
#                    vaultd in the foreground
#   ./dev.sh test    install dependencies, check the house style (every C file
#                    as .clang-format says, every shell script clean under the
#                    linter shellcheck), build the fuzz targets and replay their
#                    seeds, build, run the whole test suite twice: a normal
#                    -Werror build and an ASan+UBSan build
#   ./dev.sh deps    only install the Debian packages
#   ./dev.sh build [DIR [CMAKE ARGS...]]   only build (default DIR: build)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
	gcc make cmake pkg-config git ca-certificates curl openssl
	libssl-dev libp11-dev libengine-pkcs11-openssl libp11-kit-dev p11-kit p11-kit-modules
	softhsm2 opensc libsodium-dev libcurl4-openssl-dev libjansson-dev
	libevent-dev libsqlite3-dev sqlite3 libconfig-dev libcmocka-dev libseccomp-dev
	pebble python3 python3-jwcrypto python3-cryptography uacme clang-14 libclang-rt-14-dev clang-format-14
	shellcheck
)

deps() {
	local missing=() p sudo=""
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "dev.sh: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

build() {
	local dir=${1:-build}
	shift || true
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$(nproc)"
}

run() {
	deps
	build build
	if [ ! -e state/state.db ]; then
		./build/vault/vaultctl init
	fi
	echo "dev.sh: starting vaultd with the embedded defaults (state in ./state); Ctrl-C stops it."
	echo "        API (mutual TLS) https://127.0.0.1:8443, enrolment https://127.0.0.1:8444"
	echo "        in another terminal: ./build/vault/vaultctl status"
	exec ./build/vault/vaultd --foreground
}

suite() { # suite DIR CMAKE_ARGS...: build and run ctest, keeping its summary
	local dir=$1
	shift
	echo "== $dir: building ($*)"
	build "$dir" -DSV_WERROR=ON "$@"
	echo "== $dir: running the test suite"
	(cd "$dir" && ctest --output-on-failure -j2 2>&1 | tee ctest.log | tail -n 40)
	grep -q '100% tests passed' "$dir/ctest.log"
}

style() { # every tracked C file as .clang-format says (the house style)
	local files
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		mapfile -t files < <(git ls-files '*.c' '*.h')
	else # an unpacked tarball: every source outside the build directories
		mapfile -t files < <(find . -path './build*' -prune -o -name '*.[ch]' -print)
	fi
	[ ${#files[@]} -gt 0 ] || { echo "dev.sh: no C files found"; return 1; }
	echo "== style: clang-format-14 --dry-run --Werror on ${#files[@]} files"
	clang-format-14 --dry-run --Werror "${files[@]}" || return 1
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		mapfile -t files < <(git ls-files '*.sh' .ci/run)
	else
		mapfile -t files < <(find . -path './build*' -prune -o -name '*.sh' -print; echo .ci/run)
	fi
	echo "== style: shellcheck -x -S warning on ${#files[@]} scripts"
	shellcheck -x -S warning "${files[@]}"
}

# Every fuzz target builds (clang-14, libFuzzer, ASan+UBSan) and replays its seed corpus
# (fuzz/corpus/NAME/, -runs=0: the seeds only, no mutation) without a finding.  Fuzzing
# itself is by hand (fuzz/CMakeLists.txt); this keeps the targets and seeds working.
fuzz_seeds() {
	local d t n=0 rc=0
	echo "== build-fuzz: building the fuzz targets"
	mkdir -p build-fuzz
	build build-fuzz -DSV_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DSV_TESTS=OFF -DSV_WERROR=ON \
		>build-fuzz/build.log 2>&1 || { tail -n 20 build-fuzz/build.log; return 1; }
	for d in fuzz/corpus/fuzz_*/; do
		t=$(basename "$d")
		n=$((n + 1))
		LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp "build-fuzz/fuzz/$t" -runs=0 "$d" \
			>"build-fuzz/$t.log" 2>&1 || { echo "   $t: its seeds fail (build-fuzz/$t.log)"; rc=1; }
	done
	echo "== build-fuzz: $n targets replayed their seeds$([ $rc -eq 0 ] && echo ", no finding")"
	return $rc
}

test_all() {
	local rc=0
	deps
	style || rc=1
	fuzz_seeds || rc=1
	suite build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo || rc=1
	suite build-asan -DSV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || rc=1
	echo "== summary"
	grep -h -E 'tests passed|tests failed' build-ci/ctest.log build-asan/ctest.log |
		sed 's/^/   /'
	[ $rc -eq 0 ] && echo "dev.sh test: all passed" || echo "dev.sh test: FAILURES"
	return $rc
}

case "${1:-}" in
run) run ;;
test) test_all ;;
deps) deps ;;
build) shift; deps; build "$@" ;;
*)
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
