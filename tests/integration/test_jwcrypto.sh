#!/usr/bin/env bash
# JWS made through hsm/ for every key type must verify with an independent
# JOSE implementation (python3-jwcrypto) from the exported JWK alone, and
# must stop verifying when one payload byte changes.
. "$(dirname "$0")/lib.sh"
G=$(sv_bin jwsgen) || exit 1
PY=/usr/bin/python3
"$G" >"$T/jws.jsonl" || { fail "jwsgen failed"; t_done; exit 1; }
[ "$(wc -l <"$T/jws.jsonl")" -eq 6 ] && pass "six key types signed" || fail "expected 6 lines"
"$PY" - "$T/jws.jsonl" <<'PYEOF' >"$T/py.out" 2>&1
import json, sys
from jwcrypto import jwk, jws
bad = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    key = jwk.JWK(**d["jwk"])
    tok = jws.JWS()
    tok.deserialize(json.dumps(d["jws"]))
    tok.verify(key)  # raises on failure
    hdr = json.loads(tok.objects["protected"])
    assert hdr["nonce"] == "n0nce" and hdr["url"].endswith("/new-order"), hdr
    print("verified", d["type"], hdr["alg"])
    # Tamper with the payload: must fail.
    j = dict(d["jws"]); j["payload"] = j["payload"][:-2] + ("AA" if j["payload"][-2:] != "AA" else "BB")
    t2 = jws.JWS(); t2.deserialize(json.dumps(j))
    try:
        t2.verify(key)
        print("tampered JWS verified:", d["type"]); bad += 1
    except Exception:
        print("tampered rejected", d["type"])
sys.exit(1 if bad else 0)
PYEOF
rc=$?
cat "$T/py.out"
[ $rc -eq 0 ] && pass "jwcrypto verified all and rejected tampering" || fail "jwcrypto check"
for t in ec-p256:ES256 ec-p384:ES384 rsa-2048:RS256 rsa-3072:RS256 rsa-4096:RS256 ed25519:EdDSA; do
	grep -q "verified ${t%%:*} ${t#*:}" "$T/py.out" && pass "jwcrypto: ${t%%:*} as ${t#*:}" || fail "jwcrypto: ${t%%:*}"
done
t_done
