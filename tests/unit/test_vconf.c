/*
 * vault configuration: embedded defaults, relative paths, @include, and a
 * clear SV_ECONFIG error with file:line for every kind of mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sv_err.h"
#include "svtest.h"
#include "testtok.h"
#include "vconf.h"

static char dir[PATH_MAX];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/svconf.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int
teardown(void **state)
{
	testtok_rmrf(dir);
	return 0;
}

/* Write text as dir/name and load it; returns the SV code. */
static int
load(const char *name, const char *text, struct vconf *c)
{
	char path[PATH_MAX];

	assert_int_equal(testtok_write(dir, name, text, 0644, path), 0);
	return vconf_load(path, c);
}

static void
test_embedded(void **state)
{
	struct vconf c;
	char cwd[PATH_MAX], want[PATH_MAX + 16];

	assert_ok(vconf_load(NULL, &c));
	assert_true(c.embedded);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/state", cwd);
	assert_string_equal(c.state_dir, want);
	assert_non_null(strstr(c.db_path, "/state/state.db"));
	assert_non_null(strstr(c.pin_file, "/state/hsm/pin"));
	assert_non_null(c.hsm.softhsm2_conf);
	assert_string_equal(c.hsm.token, "shadowvault");
	assert_int_equal(c.ntls_names, 2);
	assert_string_equal(c.tls_names[0], "localhost");
	vconf_free(&c);
}

static void
test_relative_and_include(void **state)
{
	struct vconf c;
	char path[PATH_MAX], want[PATH_MAX + 32];

	assert_int_equal(testtok_write(dir, "hsm.inc",
			     "hsm = { module = \"/usr/lib/x.so\"; token = \"t1\"; pin_file = "
			     "\"secret/pin\"; };\n",
			     0644, path),
	    0);
	assert_ok(load("a.conf", "# comment\nstate_dir = \"var\";\n@include \"hsm.inc\"\n", &c));
	snprintf(want, sizeof(want), "%s/var", dir);
	assert_string_equal(c.state_dir, want);
	snprintf(want, sizeof(want), "%s/secret/pin", dir);
	assert_string_equal(c.pin_file, want);
	assert_string_equal(c.module, "/usr/lib/x.so");
	assert_string_equal(c.token, "t1");
	assert_null(c.hsm.softhsm2_conf);
	vconf_free(&c);
}

static void
test_errors(void **state)
{
	struct vconf c;

	assert_sverr(load("u.conf", "state_dir = \"x\";\nfoo = 1;\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "u.conf:2: foo: unknown setting"));
	assert_sverr(load("n.conf", "hsm = { token = \"x\"; };\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "\"state_dir\" is missing"));
	assert_sverr(load("t.conf", "state_dir = \"x\";\nhsm = { token = 3; };\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "t.conf:2: hsm.token: must be a string"));
	assert_sverr(
	    load("l.conf",
		"state_dir = \"x\";\nhsm = { token = \"0123456789012345678901234567890123\"; };\n",
		&c),
	    SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "1 to 32 bytes"));
	assert_sverr(load("s.conf", "state_dir = \"x\"\nhsm = {\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "s.conf:"));
	assert_sverr(load("e.conf", "state_dir = \"\";\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "must not be empty"));
	assert_sverr(vconf_load("/nonexistent/v.conf", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "/nonexistent/v.conf: No such file"));
}

/* The shipped example loads, and its limits are the defaults it claims to show. */
static void
test_example(void **state)
{
	struct vconf ex, def;

	assert_ok(vconf_load(SV_SOURCE_DIR "/etc/vaultd.conf.example", &ex));
	assert_ok(vconf_load(NULL, &def));
	assert_int_equal(ex.max_pending, def.max_pending);
	assert_int_equal(ex.max_connections, def.max_connections);
	assert_int_equal(ex.max_connections_per_address, def.max_connections_per_address);
	assert_int_equal(ex.enroll_per_minute, def.enroll_per_minute);
	assert_int_equal(ex.enroll_per_minute_per_address, def.enroll_per_minute_per_address);
	assert_int_equal(ex.tls_signs_per_second, def.tls_signs_per_second);
	assert_int_equal(ex.request_timeout, def.request_timeout);
	assert_int_equal(def.max_connections, 4096);
	assert_int_equal(def.max_connections_per_address, 256);
	assert_int_equal(def.enroll_per_minute, 60);
	assert_int_equal(def.enroll_per_minute_per_address, 20);
	assert_int_equal(def.tls_signs_per_second, 200);
	vconf_free(&ex);
	vconf_free(&def);
	/* Out of range: refused with the place. */
	assert_sverr(
	    load("l.conf", "state_dir = \"x\";\nlimits = {\n  max_connections = 0;\n};\n", &ex),
	    SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "l.conf:3"));
	assert_sverr(
	    load("l.conf", "state_dir = \"x\";\nlimits = { enroll_per_minute = -1; };\n", &ex),
	    SV_ECONFIG);
}

/* shadow_renew_days: 0 (the rule of common/renewal.h) unless set, 0 to 3650. */
static void
test_renew_days(void **state)
{
	struct vconf c;

	assert_ok(vconf_load(NULL, &c));
	assert_int_equal(c.shadow_renew_days, 0);
	vconf_free(&c);
	assert_ok(load("r.conf", "state_dir = \"x\";\nshadow_renew_days = 10;\n", &c));
	assert_int_equal(c.shadow_renew_days, 10);
	vconf_free(&c);
	assert_sverr(
	    load("r.conf", "state_dir = \"x\";\nshadow_renew_days = -1;\n", &c), SV_ECONFIG);
	assert_non_null(strstr(sv_errmsg(SV_ECONFIG), "r.conf:2"));
	assert_sverr(
	    load("r.conf", "state_dir = \"x\";\nshadow_renew_days = 3651;\n", &c), SV_ECONFIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_embedded),
		cmocka_unit_test(test_relative_and_include),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_renew_days),
	};

	return cmocka_run_group_tests_name("vconf", tests, setup, teardown);
}
