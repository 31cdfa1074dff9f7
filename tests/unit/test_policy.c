/*
 * policies/: loading (the shipped example, every load error with its
 * file:line, caps, the raw-text checks), DNS name normalisation, and
 * evaluation (every deny rule in order, wildcard semantics, case and
 * trailing dot, escaping of untrusted text, rates, bundles, many shadows).
 * Policies are embedded as strings; files are written to a mkstemp() file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "pol.h"
#include "sv_err.h"
#include "svtest.h"

#define F	"t.conf"
#define EXAMPLE SV_SOURCE_DIR "/policies/examples/shadows.conf"

/* Two shadows; line numbers matter to nothing here. */
static const char *EVAL_POLICY =
    "shadows = {\n"
    "  web1 = {\n"
    "    accounts = [ \"le-prod\", \"le-staging\" ];\n"
    "    names = [ \"master.test\", \"*.Master.TEST.\", \"www.other.test\",\n"
    "              \"*.wild.test\", \"master.test\" ];\n"
    "    bundles = [ \"master.test\", \"Other-Cert\" ];\n"
    "  };\n"
    "  web2 = {\n"
    "    accounts = [ \"le-prod\" ];\n"
    "    names = [ \"web2.test\", \"*.web2.test\" ];\n"
    "    operations = [ \"fetch\", \"challenge\", \"new-order\" ];\n"
    "    rate = { per_minute = 5; burst = 1; };\n"
    "  };\n"
    "};\n";

static struct pol *
load_ok(const char *text)
{
	struct pol *p = NULL;

	assert_ok(pol_load_string(text, F, &p));
	assert_non_null(p);
	return p;
}

/* Loading text must fail with code, no object, a detail starting with where. */
static void
load_fails(const char *text, int code, const char *where, const char *needle)
{
	struct pol *p = (struct pol *)&p; /* must be reset to NULL */
	const char *msg;
	int r;

	r = pol_load_string(text, F, &p);
	msg = sv_errmsg(r);
	if (r != code)
		fail_msg("load = %d (%s), expected %d; text:\n%s", r, msg, code, text);
	assert_null(p);
	if (where != NULL && strncmp(msg, where, strlen(where)) != 0)
		fail_msg("detail \"%s\" does not start with \"%s\"", msg, where);
	if (strstr(msg, needle) == NULL)
		fail_msg("detail \"%s\" does not contain \"%s\"", msg, needle);
}

/*
 * One shadow "web1" whose body starts on line 3 ("shadows = {" is line 1,
 * "web1 = {" line 2).  Returns buf.
 */
static const char *
shadow1(char *buf, size_t n, const char *body)
{
	int w = snprintf(buf, n, "shadows = {\n  web1 = {\n%s\n  };\n};\n", body);

	assert_true(w > 0 && (size_t)w < n);
	return buf;
}

#define BASE "    accounts = [ \"acct\" ];\n    names = [ \"master.test\" ];\n"

/* Load one shadow whose extra settings (after BASE) start on line 5. */
static void
shadow1_fails(const char *extra, int line, const char *needle)
{
	char buf[4096], body[2048], where[32];

	snprintf(body, sizeof(body), "%s%s", BASE, extra);
	snprintf(where, sizeof(where), F ":%d: ", line);
	load_fails(shadow1(buf, sizeof(buf), body), SV_ECONFIG, where, needle);
}

/* Evaluate and check the decision's allow flag and code. */
static void
expect(const struct pol *p, const char *shadow, const char *account, enum pol_op op,
    const char *name, int allow, const char *code)
{
	const char *names[1] = { name };
	struct pol_request req = { shadow, account, op, names, name ? 1 : 0 };
	struct pol_decision d;

	assert_ok(pol_eval(p, &req, &d));
	if (d.allow != allow || strcmp(d.code, code) != 0)
		fail_msg("%s/%s/%s/%s: allow=%d code=%s reason=\"%s\", expected allow=%d code=%s",
		    shadow, account, pol_op_name(op), name ? name : "-", d.allow, d.code, d.reason,
		    allow, code);
	if (allow)
		assert_int_equal(strcmp(d.code, "ok"), 0);
}

/* Evaluate and return the reason (static buffer) after checking the code. */
static const char *
reason(const struct pol *p, const struct pol_request *req, const char *code)
{
	static struct pol_decision d;

	assert_ok(pol_eval(p, req, &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, code);
	return d.reason;
}

static void
test_ops(void **state)
{
	enum pol_op op;
	unsigned i;

	for (i = 0; i < POL_OP_COUNT; i++) {
		assert_ok(pol_op_parse(pol_op_name((enum pol_op)i), &op));
		assert_int_equal(op, i);
		assert_int_equal(pol_op_admin_only(op), i >= POL_NEW_ACCOUNT);
	}
	assert_string_equal(pol_op_name(POL_NEW_ORDER), "new-order");
	assert_string_equal(pol_op_name(POL_AUTHZ_DEACTIVATE), "authz-deactivate");
	assert_string_equal(pol_op_name(POL_OP_COUNT), "unknown");
	assert_int_equal(pol_op_admin_only(POL_OP_COUNT), 1);
	assert_int_equal(pol_op_admin_only(POL_REVOKE), 0);
	assert_sverr(pol_op_parse("New-Order", &op), SV_EINVAL);
	assert_int_equal(op, POL_OP_COUNT);
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "\"New-Order\" is not an operation"));
	assert_sverr(pol_op_parse("", &op), SV_EINVAL);
	assert_sverr(pol_op_parse(NULL, &op), SV_EINVAL);
}

static void
norm_ok(const char *in, const char *want)
{
	char out[POL_NAME_BUF];

	assert_ok(pol_name_normalize(in, out, sizeof(out)));
	assert_string_equal(out, want);
}

static void
norm_bad(const char *in, const char *why)
{
	char out[POL_NAME_BUF] = "x";

	assert_sverr(pol_name_normalize(in, out, sizeof(out)), SV_EINVAL);
	assert_string_equal(out, "");
	if (strstr(sv_errmsg(SV_EINVAL), why) == NULL)
		fail_msg("normalize(%s): \"%s\" lacks \"%s\"", in, sv_errmsg(SV_EINVAL), why);
}

static void
test_normalize(void **state)
{
	char l63[64], l64[65], n253[300], n254[300], out[POL_NAME_BUF];

	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l64, 'b', 64);
	l64[64] = '\0';
	/* 63+1+63+1+63+1+61 = 253 */
	snprintf(n253, sizeof(n253), "%s.%s.%s.%.61s", l63, l63, l63, l63);
	assert_int_equal(strlen(n253), 253);
	snprintf(n254, sizeof(n254), "%s.%s.%s.%.62s", l63, l63, l63, l63);

	norm_ok("Master.Test.", "master.test");
	norm_ok("master.test", "master.test");
	norm_ok("xn--bcher-kva.example", "xn--bcher-kva.example");
	norm_ok("a-b.c0.test", "a-b.c0.test");
	norm_ok("123.example", "123.example");
	norm_ok("*.Example.COM.", "*.example.com");
	norm_ok(n253, n253);
	{
		char dotted[310];

		snprintf(dotted, sizeof(dotted), "%s.", n253);
		norm_ok(dotted, n253);
		snprintf(dotted, sizeof(dotted), "%s.", n254);
		norm_bad(dotted, "longer than 253 characters");
	}
	norm_bad(n254, "longer than 253 characters");
	snprintf(n254, sizeof(n254), "%s.test", l64);
	norm_bad(n254, "label 1 is longer than 63 characters");
	snprintf(n254, sizeof(n254), "%s.test", l63);
	norm_ok(n254, n254);
	norm_bad("", "empty name");
	norm_bad(".", "empty name");
	norm_bad("example.com..", "empty label");
	norm_bad(".example.com", "empty label");
	norm_bad("a..example.com", "empty label");
	norm_bad("com", "at least two labels");
	norm_bad("*.com", "at least two labels after \"*.\"");
	norm_bad("*", "'*' is allowed only as the whole first label");
	norm_bad("*.", "'*' is allowed only as the whole first label");
	norm_bad("a*.x.test", "'*' is allowed only as the whole first label");
	norm_bad("*x.test", "'*' is allowed only as the whole first label");
	norm_bad("*.*.x.test", "'*' is allowed only as the whole first label");
	norm_bad("x.*.test", "'*' is allowed only as the whole first label");
	norm_bad("-a.test", "label 1 starts or ends with '-'");
	norm_bad("a.b-.test", "label 2 starts or ends with '-'");
	norm_bad("*.a-.test", "label 2 starts or ends with '-'");
	norm_bad("a_b.test", "label 1 has a character other than a-z, 0-9 and '-'");
	norm_bad("a b.test", "character other than");
	norm_bad("a\n.test", "character other than");
	norm_bad("1.2.3.4", "all digits");
	norm_bad("example.123", "all digits");
	norm_bad("b\xc3\xbc"
		 "cher.test",
	    "use the A-label (xn--) form");
	/* The detail quotes the name escaped. */
	assert_non_null(strstr(sv_errmsg(SV_EINVAL), "name \"b\\xc3\\xbccher.test\""));
	assert_sverr(pol_name_normalize("a.test", out, POL_NAME_BUF - 1), SV_EINVAL);
	assert_sverr(pol_name_normalize(NULL, out, sizeof(out)), SV_EINVAL);
}

static void
test_example_file(void **state)
{
	struct pol *p = NULL;
	struct pol_decision d;
	unsigned pm, b;

	assert_ok(pol_load_file(EXAMPLE, &p));
	assert_int_equal(pol_count(p), 3);
	assert_true(pol_has_shadow(p, "web1"));
	assert_true(pol_has_shadow(p, "edge2"));
	assert_true(pol_has_shadow(p, "lab"));
	assert_false(pol_has_shadow(p, "Web1"));
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.master.test", 1, "ok");
	expect(p, "web1", "le-staging", POL_REVOKE, "master.test", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.master.test", 1, "ok");
	expect(p, "web1", "other", POL_NEW_ORDER, "master.test", 0, "account");
	expect(p, "edge2", "le-staging", POL_FINALIZE, "www.master.test", 1, "ok");
	expect(p, "edge2", "le-staging", POL_REVOKE, "www.master.test", 0, "operation");
	expect(p, "edge2", "le-prod", POL_NEW_ORDER, "www.master.test", 0, "account");
	expect(p, "edge2", "le-staging", POL_NEW_ORDER, "master.test", 0, "name");
	expect(p, "lab", "le-prod", POL_FETCH, NULL, 0, "operation");
	assert_ok(pol_eval_bundle(p, "lab", "lab.master.test", &d));
	assert_int_equal(d.allow, 1);
	assert_ok(pol_eval_bundle(p, "edge2", "master.test", &d));
	assert_int_equal(d.allow, 0);
	/* Account use alone (the account information endpoint). */
	assert_ok(pol_eval_account(p, "web1", "le-prod", &d));
	assert_int_equal(d.allow, 1);
	assert_ok(pol_eval_account(p, "edge2", "le-prod", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "account");
	assert_ok(pol_eval_account(p, "nobody", "le-prod", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "unknown-shadow");
	assert_sverr(pol_eval_account(p, NULL, "le-prod", &d), SV_EINVAL);
	assert_ok(pol_rate(p, "web1", &pm, &b));
	assert_int_equal(pm, 120);
	assert_int_equal(b, 30);
	assert_ok(pol_rate(p, "edge2", &pm, &b));
	assert_int_equal(pm, POL_RATE_PER_MINUTE);
	assert_int_equal(b, POL_RATE_BURST);
	pol_free(p);
}

static void
test_defaults(void **state)
{
	char buf[1024];
	struct pol *p;
	struct pol_decision d;
	unsigned pm = 0, b = 0, i;

	p = load_ok(shadow1(buf, sizeof(buf), BASE));
	assert_int_equal(pol_count(p), 1);
	/* Every grantable operation by default; admin-only ones never. */
	for (i = 0; i < POL_OP_COUNT; i++)
		expect(p, "web1", "acct", (enum pol_op)i, "master.test", i < POL_NEW_ACCOUNT,
		    i < POL_NEW_ACCOUNT ? "ok" : "admin-only");
	assert_ok(pol_rate(p, "web1", &pm, &b));
	assert_int_equal(pm, 120);
	assert_int_equal(b, 60);
	/* No bundles unless listed. */
	assert_ok(pol_eval_bundle(p, "web1", "master.test", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "bundle");
	pol_free(p);

	/* An empty accounts list is legal and grants nothing. */
	p = load_ok(shadow1(
	    buf, sizeof(buf), "accounts = [];\nnames = [ \"master.test\" ];\noperations = ();"));
	expect(p, "web1", "acct", POL_NEW_ORDER, "master.test", 0, "account");
	pol_free(p);
	/* An empty operations list grants no operation. */
	p = load_ok(shadow1(buf, sizeof(buf), BASE "operations = [];"));
	for (i = 0; i < POL_NEW_ACCOUNT; i++)
		expect(p, "web1", "acct", (enum pol_op)i, "master.test", 0, "operation");
	pol_free(p);
	/* No shadows at all: a valid policy that denies everything. */
	p = load_ok("shadows = {};\n");
	assert_int_equal(pol_count(p), 0);
	expect(p, "web1", "acct", POL_FETCH, NULL, 0, "unknown-shadow");
	assert_sverr(pol_rate(p, "web1", &pm, &b), SV_ENOTFOUND);
	pol_free(p);
	assert_int_equal(pol_count(NULL), 0);
	assert_false(pol_has_shadow(NULL, "web1"));
	pol_free(NULL);
}

static void
test_schema_errors(void **state)
{
	char buf[1024];

	load_fails("shadowz = {};\n", SV_ECONFIG, F ":1: ", "shadowz: unknown setting");
	load_fails("# nothing\n", SV_ECONFIG, F ": ", "required setting \"shadows\" is missing");
	load_fails("shadows = [ 1 ];\n", SV_ECONFIG, F ":1: ", "must be a group");
	load_fails("shadows = { web1 = 5; };\n", SV_ECONFIG, F ":1: ", "must be a group");
	shadow1_fails("    nmes = [ \"x.test\" ];", 5, "shadows.web1.nmes: unknown setting");
	shadow1_fails("    rate = { per_minut = 1; };", 5, "shadows.web1.rate.per_minut: unknown");
	shadow1_fails("    bundles = \"master.test\";", 5, "bundles: must be a list of strings");
	shadow1_fails("    operations = [ 1 ];", 5, "operations: element 1 must be a string");
	shadow1_fails("    rate = 5;", 5, "shadows.web1.rate: must be a group");
	shadow1_fails("    rate = { burst = \"5\"; };", 5, "rate.burst: must be an integer");
	shadow1_fails("    rate = { burst = 1.5; };", 5, "rate.burst: must be an integer");
	load_fails(shadow1(buf, sizeof(buf), "    names = [ \"master.test\" ];"), SV_ECONFIG,
	    F ":2: ", "shadows.web1: required setting \"accounts\" is missing");
	load_fails(shadow1(buf, sizeof(buf), "    accounts = [ \"a\" ];"), SV_ECONFIG,
	    F ":2: ", "required setting \"names\" is missing");
	load_fails(shadow1(buf, sizeof(buf), "    accounts = [ \"a\" ];\n    names = \"m.test\";"),
	    SV_ECONFIG, F ":4: ", "shadows.web1.names: must be a list of strings");
	load_fails(shadow1(buf, sizeof(buf), "    accounts = [ \"a\" ];\n    names = [ ];"),
	    SV_ECONFIG, F ":4: ", "names: must list at least one name pattern");
	/* libconfig's own errors keep the name and line too. */
	load_fails("shadows = {\n  web1 = {\n    names = [ \"a.test\" \n  };\n};\n", SV_ECONFIG,
	    F ":4: ", "syntax error");
	load_fails("shadows = {\n  web1 = { accounts = []; names = [\"a.test\"]; };\n"
		   "  web1 = { accounts = []; names = [\"b.test\"]; };\n};\n",
	    SV_ECONFIG, F ":3: ",
	    "duplicate setting name (a setting here repeats the name of an earlier one in its "
	    "group)");
}

static void
test_name_errors(void **state)
{
	static const struct {
		const char *pattern, *why;
	} bad[] = {
		{ "a*.master.test", "'*' is allowed only as the whole first label" },
		{ "*", "'*' is allowed only as the whole first label" },
		{ "*.*.master.test", "'*' is allowed only as the whole first label" },
		{ "*.com", "at least two labels after" },
		{ "com", "at least two labels" },
		{ "", "empty name" },
		{ "master..test", "empty label" },
		{ "-master.test", "starts or ends with '-'" },
		{ "master_x.test", "character other than" },
		{ "10.0.0.1", "all digits" },
		{ "\xc3\xa9t\xc3\xa9.test", "use the A-label (xn--) form" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
		    "label 1 is longer than 63 characters" },
	};
	char body[512], buf[1024];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* The offending element is on line 6: the error names its line. */
		snprintf(body, sizeof(body),
		    "    accounts = [ \"a\" ];\n    bundles = [ \"b\" ];\n"
		    "    names = [ \"ok.test\",\n      \"%s\" ];",
		    bad[i].pattern);
		load_fails(shadow1(buf, sizeof(buf), body), SV_ECONFIG, F ":6: ", bad[i].why);
	}
	/* The name is quoted, and non-ASCII bytes escaped, never raw. */
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "shadows.web1.names: \"aaaa"));
	load_fails(
	    shadow1(buf, sizeof(buf), "accounts = [];\nnames = [ \"\xc3\xa9t\xc3\xa9.test\" ];"),
	    SV_ECONFIG,
	    F ":4: ", "names: \"\\xc3\\xa9t\\xc3\\xa9.test\": not ASCII: use the A-label");
	assert_null(strchr(sv_errmsg(SV_ECONFIG), 0xc3));
}

static void
test_op_errors(void **state)
{
	static const char *admin[] = { "new-account", "key-change", "account-update",
		"authz-deactivate" };
	char extra[256], why[128];
	size_t i;

	for (i = 0; i < sizeof(admin) / sizeof(admin[0]); i++) {
		snprintf(
		    extra, sizeof(extra), "    operations = [ \"fetch\",\n \"%s\" ];", admin[i]);
		snprintf(why, sizeof(why),
		    "operations: \"%s\" is admin-only: a policy can never grant it", admin[i]);
		shadow1_fails(extra, 6, why);
	}
	shadow1_fails("    operations = [ \"fetch\", \"frobnicate\" ];", 5,
	    "\"frobnicate\" is not an operation");
	shadow1_fails(
	    "    operations = [ \"New-Order\" ];", 5, "\"New-Order\" is not an operation");
}

static void
test_identifier_errors(void **state)
{
	char buf[1024], name[80];

	load_fails("shadows = {\n  we*b = { accounts = []; names = [\"a.test\"]; };\n};\n",
	    SV_ECONFIG, F ":2: ", "shadow name \"we*b\": character 3 is not allowed");
	memset(name, 'w', 65);
	name[65] = '\0';
	snprintf(buf, sizeof(buf),
	    "shadows = {\n  %s = { accounts = []; names = [\"a.test\"]; };\n};\n", name);
	load_fails(buf, SV_ECONFIG, F ":2: ", "shadow name is longer than 64 characters");
	shadow1_fails("    bundles = [ \"ok\", \"bad name\" ];", 5,
	    "bundle name \"bad name\": character 4 is not allowed");
	load_fails(shadow1(buf, sizeof(buf), "accounts = [\n\"-acct\" ];\nnames = [\"a.test\"];"),
	    SV_ECONFIG, F ":4: ", "account name \"-acct\": character 1 is not allowed");
	load_fails(shadow1(buf, sizeof(buf), "accounts = [\"a/b\"];\nnames = [\"a.test\"];"),
	    SV_ECONFIG, F ":3: ", "shadows.web1.accounts: account name \"a/b\"");
}

/* Text of n shadows "s0000".., each with its own name, built in reverse order. */
static char *
many_shadows(size_t n)
{
	size_t cap = 128 + n * 96, used, i;
	char *t = malloc(cap);

	assert_non_null(t);
	used = (size_t)snprintf(t, cap, "shadows = {\n");
	for (i = n; i-- > 0;)
		used += (size_t)snprintf(t + used, cap - used,
		    "  s%04zu = { accounts = [\"a\"]; names = [\"h%zu.test\"]; };\n", i, i);
	snprintf(t + used, cap - used, "};\n");
	return t;
}

/* A shadow whose list key holds n entries "<pre><i><post>" (on line 5). */
static char *
long_list(const char *key, const char *pre, const char *post, size_t n)
{
	size_t cap = 256 + n * 40, used, i;
	char *t = malloc(cap);

	assert_non_null(t);
	used = (size_t)snprintf(t, cap,
	    "shadows = {\n  web1 = {\n    %s = [\"a\"];\n"
	    "    %s = [\"a.test\"];\n    %s = [\n",
	    strcmp(key, "accounts") == 0 ? "bundles" : "accounts",
	    strcmp(key, "names") == 0 ? "bundles" : "names", key);
	for (i = 0; i < n; i++)
		used += (size_t)snprintf(
		    t + used, cap - used, "%s\"%s%zu%s\"", i ? ", " : "", pre, i, post);
	snprintf(t + used, cap - used, " ];\n  };\n};\n");
	return t;
}

static void
test_caps(void **state)
{
	struct pol *p;
	char *t;

	t = many_shadows(POL_MAX_SHADOWS);
	p = load_ok(t);
	assert_int_equal(pol_count(p), POL_MAX_SHADOWS);
	pol_free(p);
	free(t);
	t = many_shadows(POL_MAX_SHADOWS + 1);
	load_fails(t, SV_ECONFIG, F ":1: ", "has 1001 shadows; at most 1000 are allowed");
	free(t);

	t = long_list("names", "n", ".test", POL_MAX_PATTERNS);
	pol_free(load_ok(t));
	free(t);
	t = long_list("names", "n", ".test", POL_MAX_PATTERNS + 1);
	load_fails(t, SV_ECONFIG, F ":5: ", "has 257 entries; at most 256 are allowed");
	free(t);
	t = long_list("accounts", "acct", "", POL_MAX_ACCOUNTS);
	pol_free(load_ok(t));
	free(t);
	t = long_list("accounts", "acct", "", POL_MAX_ACCOUNTS + 1);
	load_fails(t, SV_ECONFIG, F ":5: ", "accounts: has 65 entries; at most 64 are allowed");
	free(t);
	t = long_list("bundles", "cert", "", POL_MAX_BUNDLES);
	pol_free(load_ok(t));
	free(t);
	t = long_list("bundles", "cert", "", POL_MAX_BUNDLES + 1);
	load_fails(t, SV_ECONFIG, F ":5: ", "bundles: has 257 entries; at most 256 are allowed");
	free(t);
}

static void
test_rate_values(void **state)
{
	char buf[1024];
	struct pol *p;
	unsigned pm, b;

	p = load_ok(shadow1(buf, sizeof(buf), BASE "rate = { per_minute = 100000L; burst = 1; };"));
	assert_ok(pol_rate(p, "web1", &pm, &b));
	assert_int_equal(pm, POL_RATE_MAX);
	assert_int_equal(b, 1);
	pol_free(p);
	p = load_ok(shadow1(buf, sizeof(buf), BASE "rate = { burst = 0x10; };"));
	assert_ok(pol_rate(p, "web1", &pm, &b));
	assert_int_equal(pm, POL_RATE_PER_MINUTE);
	assert_int_equal(b, 16);
	pol_free(p);
	shadow1_fails("    rate = { per_minute = 0; };", 5, "rate.per_minute: 0 is out of range");
	shadow1_fails("    rate = { burst = 100001; };", 5, "rate.burst: 100001 is out of range");
	shadow1_fails("    rate = { burst = -1; };", 5, "-1 is out of range (1 to 100000)");
	shadow1_fails("    rate = { burst = 5000000000L; };", 5, "5000000000 is out of range");
	shadow1_fails("    rate = { burst = 0x186a1; };", 5, "100001 is out of range");
	/* libconfig 1.5 would read these as 1: the raw-text check refuses them. */
	shadow1_fails("    rate = { burst = 4294967297; };", 5, "integer out of range");
	shadow1_fails("    rate = { burst = -4294967295; };", 5, "integer out of range");
	shadow1_fails("    rate = { burst = 0x100000001; };", 5, "integer out of range");
}

/* The raw-text checks must not trip over digits in strings, comments, names. */
static void
test_text_checks(void **state)
{
	struct pol *p;

	p = load_ok("# 99999999999 and @include \"x\"\n"
		    "// 99999999999\n"
		    "/* 99999999999\n 99999999999 */\n"
		    "shadows = {\n"
		    "  w99999999999 = { accounts = [\"a99999999999\"];\n"
		    "    names = [ \"h99999999999.test\" ]; # 99999999999\n"
		    "    rate = { per_minute = 99999L; burst = 99999; }; };\n"
		    "};\n");
	pol_free(p);
	/* (the float is accepted by the scan but refused by the schema) */
	p = NULL;
	assert_sverr(
	    pol_load_string("shadows = {\n  w = { accounts = [\"a\"];\n names = [ \"h.test\" "
			    "];\n rate = { per_minute = 1.5e99999999999; }; };\n};\n",
		F, &p),
	    SV_ECONFIG);
	load_fails("shadows = {};\n\t @include \"/etc/hostname\"\n", SV_ECONFIG,
	    F ":2: ", "@include is not allowed");
	load_fails("@include \"/dev/zero\"\nshadows = {};\n", SV_ECONFIG,
	    F ":1: ", "@include is not allowed");
}

static char *
temp_file(const void *data, size_t len)
{
	char *path = strdup("/tmp/test_policy.XXXXXX");
	int fd;

	assert_non_null(path);
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void
test_files(void **state)
{
	static const char nul[] = "shadows = {};\n\0# hidden\n";
	struct pol *p = (struct pol *)&p;
	char *big, *path, want[64];
	size_t n = POL_FILE_MAX + 1;

	/* A valid policy padded with blanks to exactly the cap loads... */
	big = malloc(n + 1);
	assert_non_null(big);
	memset(big, ' ', n);
	memcpy(big, "shadows = {};", 13);
	big[POL_FILE_MAX] = '\0';
	path = temp_file(big, POL_FILE_MAX);
	assert_ok(pol_load_file(path, &p));
	pol_free(p);
	unlink(path);
	free(path);
	pol_free(load_ok(big));
	/* ...one byte more is refused, as a file (before reading) and as a string. */
	big[n - 1] = ' ';
	big[n] = '\0';
	path = temp_file(big, n);
	p = (struct pol *)&p;
	assert_sverr(pol_load_file(path, &p), SV_ETOOBIG);
	assert_null(p);
	assert_non_null(strstr(sv_errmsg(SV_ETOOBIG), path));
	unlink(path);
	free(path);
	snprintf(want, sizeof(want), "policy larger than %d bytes", POL_FILE_MAX);
	load_fails(big, SV_ETOOBIG, F ": ", want);
	free(big);

	path = temp_file(nul, sizeof(nul) - 1);
	p = (struct pol *)&p;
	assert_sverr(pol_load_file(path, &p), SV_ECONFIG);
	assert_null(p);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "contains a NUL byte"));
	unlink(path);
	free(path);

	/* Errors in a file name the path and the line. */
	path = temp_file("shadows = {\n  web1 = { bogus = 1; };\n};\n", 40);
	assert_sverr(pol_load_file(path, &p), SV_ECONFIG);
	snprintf(want, sizeof(want), "%s:2: shadows.web1.bogus: unknown setting", path);
	assert_string_equal(sv_errmsg(SV_ECONFIG), want);
	unlink(path);
	assert_sverr(pol_load_file(path, &p), SV_ENOTFOUND);
	free(path);
	assert_sverr(pol_load_file(NULL, &p), SV_EINVAL);
	assert_sverr(pol_load_string(NULL, F, &p), SV_EINVAL);
	assert_sverr(pol_load_string("shadows = {};", NULL, NULL), SV_EINVAL);
	/* A NULL name still gives a usable message. */
	assert_sverr(pol_load_string("x = 1;", NULL, &p), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "(policy):1: x: unknown setting"));
}

/* One bad shadow after a good one: no object at all. */
static void
test_all_or_nothing(void **state)
{
	load_fails("shadows = {\n"
		   "  good = { accounts = [\"a\"]; names = [\"a.test\"]; };\n"
		   "  bad = { accounts = [\"a\"]; names = [\"a.test\"];\n"
		   "          operations = [\"key-change\"]; };\n"
		   "};\n",
	    SV_ECONFIG, F ":4: ", "admin-only");
}

static void
test_eval_rules(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);
	const char *two[2] = { "master.test", "evil.test" };
	struct pol_request req = { "web1", "le-prod", POL_NEW_ORDER, two, 2 };

	/* Each rule, and that the earlier one wins. */
	expect(p, "web9", "le-prod", POL_NEW_ORDER, "master.test", 0, "unknown-shadow");
	expect(p, "WEB1", "le-prod", POL_NEW_ORDER, "master.test", 0, "unknown-shadow");
	expect(p, "web9", "nope", POL_KEY_CHANGE, "evil.test", 0, "unknown-shadow");
	expect(p, "web1", "nope", POL_NEW_ORDER, "master.test", 0, "account");
	expect(p, "web1", "LE-PROD", POL_NEW_ORDER, "master.test", 0, "account");
	expect(p, "web2", "le-staging", POL_NEW_ORDER, "web2.test", 0, "account");
	expect(p, "web1", "nope", POL_KEY_CHANGE, "master.test", 0, "account");
	expect(p, "web1", "le-prod", POL_NEW_ACCOUNT, NULL, 0, "admin-only");
	expect(p, "web1", "le-prod", POL_KEY_CHANGE, NULL, 0, "admin-only");
	expect(p, "web1", "le-prod", POL_ACCOUNT_UPDATE, NULL, 0, "admin-only");
	expect(p, "web1", "le-prod", POL_AUTHZ_DEACTIVATE, "master.test", 0, "admin-only");
	expect(p, "web2", "le-prod", POL_FINALIZE, "web2.test", 0, "operation");
	expect(p, "web2", "le-prod", POL_REVOKE, "bad..name", 0, "operation");
	expect(p, "web2", "le-prod", POL_NEW_ORDER, "web2.test", 1, "ok");
	/* new-order, finalize and revoke need names; challenge and fetch do not. */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, NULL, 0, "no-names");
	expect(p, "web1", "le-prod", POL_FINALIZE, NULL, 0, "no-names");
	expect(p, "web1", "le-prod", POL_REVOKE, NULL, 0, "no-names");
	expect(p, "web1", "le-staging", POL_CHALLENGE, NULL, 1, "ok");
	expect(p, "web1", "le-staging", POL_FETCH, NULL, 1, "ok");
	/* Names that are given are checked whatever the operation. */
	expect(p, "web1", "le-prod", POL_FETCH, "evil.test", 0, "name");
	expect(p, "web1", "le-prod", POL_FINALIZE, "bad..name", 0, "bad-name");
	expect(p, "web1", "le-prod", POL_FINALIZE, "evil.test", 0, "name");
	expect(p, "web1", "le-prod", POL_REVOKE, "www.other.test", 1, "ok");
	/* One bad name among good ones denies the request. */
	assert_string_equal(
	    reason(p, &req, "name"), "name \"evil.test\" is not in the policy of shadow web1");
	two[1] = "bad_name.test";
	assert_string_equal(reason(p, &req, "bad-name"),
	    "name \"bad_name.test\" is not a valid DNS name: label 1 has a character other than "
	    "a-z, 0-9 and '-'");
	two[1] = "www.other.test";
	{
		struct pol_decision d;

		assert_ok(pol_eval(p, &req, &d));
		assert_int_equal(d.allow, 1);
		assert_string_equal(d.code, "ok");
		assert_string_equal(d.reason, "new-order allowed by the policy of shadow web1");
	}
	req.nnames = 0;
	assert_string_equal(
	    reason(p, &req, "no-names"), "operation new-order names no DNS identifier");
	req.op = POL_KEY_CHANGE;
	assert_string_equal(reason(p, &req, "admin-only"),
	    "operation key-change is admin-only: an administrator does it with vaultctl");
	req.shadow = "web2";
	req.op = POL_REVOKE;
	assert_string_equal(
	    reason(p, &req, "operation"), "operation revoke is not granted to shadow web2");
	req.account = "le-staging";
	assert_string_equal(
	    reason(p, &req, "account"), "account \"le-staging\" is not allowed for shadow web2");
	req.shadow = "web3";
	assert_string_equal(reason(p, &req, "unknown-shadow"), "shadow \"web3\" has no policy");
	pol_free(p);
}

static void
test_eval_wildcards(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);

	/* "*.master.test" (written "*.Master.TEST." in the file): one label exactly. */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.master.test", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "xn--bcher-kva.master.test", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.b.master.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "amaster.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.master.test.evil", 0, "name");
	/* The apex is not matched by the wildcard: web1 lists it, web2's apex is denied... */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "master.test", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "wild.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "x.wild.test", 1, "ok");
	/* A wildcard identifier needs the identical wildcard pattern. */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.master.test", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.MASTER.test.", 1, "ok");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.a.master.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.other.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*.test", 0, "bad-name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "*", 0, "bad-name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a*.master.test", 0, "bad-name");
	/* An exact pattern covers no sub-names and no wildcard. */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.www.other.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "other.test", 0, "name");
	pol_free(p);
}

static void
test_eval_case_and_dot(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);

	expect(p, "web1", "le-prod", POL_FINALIZE, "MASTER.Test", 1, "ok");
	expect(p, "web1", "le-prod", POL_FINALIZE, "master.test.", 1, "ok");
	expect(p, "web1", "le-prod", POL_FINALIZE, "A.Master.Test.", 1, "ok");
	expect(p, "web1", "le-prod", POL_FINALIZE, "WWW.OTHER.TEST", 1, "ok");
	expect(p, "web1", "le-prod", POL_FINALIZE, "master.test..", 0, "bad-name");
	expect(p, "web1", "le-prod", POL_FINALIZE, ".master.test", 0, "bad-name");
	expect(p, "web1", "le-prod", POL_FINALIZE, "", 0, "bad-name");
	/* Another shadow's names are denied, both ways. */
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "web2.test", 0, "name");
	expect(p, "web1", "le-prod", POL_NEW_ORDER, "a.web2.test", 0, "name");
	expect(p, "web2", "le-prod", POL_NEW_ORDER, "master.test", 0, "name");
	expect(p, "web2", "le-prod", POL_NEW_ORDER, "a.master.test", 0, "name");
	expect(p, "web2", "le-prod", POL_NEW_ORDER, "A.WEB2.TEST.", 1, "ok");
	pol_free(p);
}

/* Untrusted text in reasons is escaped: no control, quote or non-ASCII bytes. */
static void
test_eval_escaping(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);
	const char *names[1] = { "\xc3\xa9vil\".test\n" };
	struct pol_request req = { "we\nb\"1", "le-prod", POL_NEW_ORDER, names, 1 };
	struct pol_decision d;
	char longname[600];
	const char *r;
	size_t i;

	assert_string_equal(
	    reason(p, &req, "unknown-shadow"), "shadow \"we\\x0ab\\x221\" has no policy");
	req.shadow = "web1";
	req.account = "acct\x1b[31m";
	assert_string_equal(
	    reason(p, &req, "account"), "account \"acct\\x1b[31m\" is not allowed for shadow web1");
	req.account = "le-prod";
	r = reason(p, &req, "bad-name");
	assert_non_null(strstr(r, "name \"\\xc3\\xa9vil\\x22.test\\x0a\" is not a valid DNS name"));
	assert_non_null(strstr(r, "A-label"));
	/* A very long bad name is truncated, never overflows the reason. */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	names[0] = longname;
	r = reason(p, &req, "bad-name");
	assert_true(strlen(r) < sizeof(d.reason));
	assert_non_null(strstr(r, "..."));
	for (i = 0; r[i] != '\0'; i++)
		assert_true(r[i] >= 0x20 && r[i] < 0x7f);
	pol_free(p);
}

static void
test_eval_internal(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);
	const char *nullname[1] = { NULL };
	struct pol_request req = { "web1", "le-prod", POL_NEW_ORDER, NULL, 1 };
	struct pol_decision d;

	/* Malformed calls fail closed: an error and a deny. */
	d.allow = 1;
	assert_sverr(pol_eval(p, &req, &d), SV_EINVAL);
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "internal");
	req.names = nullname;
	d.allow = 1;
	assert_sverr(pol_eval(p, &req, &d), SV_EINVAL);
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "internal");
	req.nnames = 0;
	req.op = POL_OP_COUNT;
	assert_sverr(pol_eval(p, &req, &d), SV_EINVAL);
	assert_int_equal(d.allow, 0);
	req.op = POL_FETCH;
	assert_ok(pol_eval(p, &req, &d));
	assert_int_equal(d.allow, 1);
	req.account = NULL;
	assert_sverr(pol_eval(p, &req, &d), SV_EINVAL);
	assert_int_equal(d.allow, 0);
	req.account = "le-prod";
	req.shadow = NULL;
	assert_sverr(pol_eval(p, &req, &d), SV_EINVAL);
	assert_sverr(pol_eval(NULL, &req, &d), SV_EINVAL);
	assert_sverr(pol_eval(p, NULL, &d), SV_EINVAL);
	assert_sverr(pol_eval(p, &req, NULL), SV_EINVAL);
	assert_sverr(pol_eval_bundle(p, "web1", NULL, &d), SV_EINVAL);
	assert_int_equal(d.allow, 0);
	assert_sverr(pol_eval_bundle(p, "web1", "master.test", NULL), SV_EINVAL);
	pol_free(p);
}

static void
test_bundles(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);
	struct pol_decision d;

	assert_ok(pol_eval_bundle(p, "web1", "master.test", &d));
	assert_int_equal(d.allow, 1);
	assert_string_equal(d.code, "ok");
	assert_ok(pol_eval_bundle(p, "web1", "Other-Cert", &d));
	assert_int_equal(d.allow, 1);
	/* Bundle names are vault object names: exact, case-sensitive. */
	assert_ok(pol_eval_bundle(p, "web1", "other-cert", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "bundle");
	assert_string_equal(d.reason, "shadow web1 may not fetch the key bundle of other-cert");
	assert_ok(pol_eval_bundle(p, "web2", "master.test", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "bundle");
	assert_ok(pol_eval_bundle(p, "web1", "../master.test", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "bad-name");
	assert_ok(pol_eval_bundle(p, "web1", "x\n", &d));
	assert_string_equal(d.code, "bad-name");
	assert_string_equal(d.reason, "bundle name \"x\\x0a\" is not valid");
	assert_ok(pol_eval_bundle(p, "nobody\"", "master.test", &d));
	assert_int_equal(d.allow, 0);
	assert_string_equal(d.code, "unknown-shadow");
	assert_string_equal(d.reason, "shadow \"nobody\\x22\" has no policy");
	pol_free(p);
}

static void
test_rates(void **state)
{
	struct pol *p = load_ok(EVAL_POLICY);
	unsigned pm = 1, b = 1;

	assert_ok(pol_rate(p, "web1", &pm, &b));
	assert_int_equal(pm, POL_RATE_PER_MINUTE);
	assert_int_equal(b, POL_RATE_BURST);
	assert_ok(pol_rate(p, "web2", &pm, &b));
	assert_int_equal(pm, 5);
	assert_int_equal(b, 1);
	assert_sverr(pol_rate(p, "web3\n", &pm, &b), SV_ENOTFOUND);
	assert_int_equal(pm, 0);
	assert_int_equal(b, 0);
	assert_string_equal(sv_errmsg(SV_ENOTFOUND), "shadow \"web3\\x0a\" has no policy");
	pol_free(p);
}

/* Lookups in a full-size policy (shadows written in reverse order). */
static void
test_many_shadows(void **state)
{
	char *t = many_shadows(POL_MAX_SHADOWS), sh[16], name[32], other[32];
	struct pol *p = load_ok(t);
	size_t i;

	for (i = 0; i < POL_MAX_SHADOWS; i++) {
		snprintf(sh, sizeof(sh), "s%04zu", i);
		snprintf(name, sizeof(name), "h%zu.test", i);
		snprintf(other, sizeof(other), "h%zu.test", (i + 1) % POL_MAX_SHADOWS);
		assert_true(pol_has_shadow(p, sh));
		expect(p, sh, "a", POL_NEW_ORDER, name, 1, "ok");
		expect(p, sh, "a", POL_NEW_ORDER, other, 0, "name");
	}
	assert_false(pol_has_shadow(p, "s1000"));
	assert_false(pol_has_shadow(p, "s"));
	pol_free(p);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ops),
		cmocka_unit_test(test_normalize),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_schema_errors),
		cmocka_unit_test(test_name_errors),
		cmocka_unit_test(test_op_errors),
		cmocka_unit_test(test_identifier_errors),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_rate_values),
		cmocka_unit_test(test_text_checks),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_all_or_nothing),
		cmocka_unit_test(test_eval_rules),
		cmocka_unit_test(test_eval_wildcards),
		cmocka_unit_test(test_eval_case_and_dot),
		cmocka_unit_test(test_eval_escaping),
		cmocka_unit_test(test_eval_internal),
		cmocka_unit_test(test_bundles),
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_many_shadows),
	};

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
