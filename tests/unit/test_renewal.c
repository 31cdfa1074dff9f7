/*
 * common/renewal.h: from when a shadow's vault identity may be renewed.  The
 * last 30 days of a long certificate, the last third of a short one (so that
 * a certificate of 30 days or less is not due the moment it is issued), an
 * explicit window from vaultd.conf over either, a certificate whose
 * dates make no sense, and the same read from an X.509 certificate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/x509.h>

#include "renewal.h"

#define DAY 86400
#define T0  1700000000 /* any notBefore */

static void
test_rule(void **state)
{
	(void)state;
	/* 365 days: the last 30. */
	assert_int_equal(sv_renew_from(T0, T0 + 365 * DAY, 0), T0 + 335 * DAY);
	/* 90 days: a third is 30, the same. */
	assert_int_equal(sv_renew_from(T0, T0 + 90 * DAY, 0), T0 + 60 * DAY);
	/* 30, 12 and 1 day(s): the last third, never from the start. */
	assert_int_equal(sv_renew_from(T0, T0 + 30 * DAY, 0), T0 + 20 * DAY);
	assert_int_equal(sv_renew_from(T0, T0 + 12 * DAY, 0), T0 + 8 * DAY);
	assert_int_equal(sv_renew_from(T0, T0 + DAY, 0), T0 + DAY - DAY / 3);
	assert_true(sv_renew_from(T0, T0 + DAY, 0) > T0);
}

static void
test_configured(void **state)
{
	(void)state;
	/* shadow_renew_days = 10 on a 365-day certificate: its last 10 days. */
	assert_int_equal(sv_renew_from(T0, T0 + 365 * DAY, 10), T0 + 355 * DAY);
	/* A window longer than the lifetime: due at once (what the admin asked for). */
	assert_int_equal(sv_renew_from(T0, T0 + 20 * DAY, 30), T0 - 10 * DAY);
}

static void
test_odd_dates(void **state)
{
	(void)state;
	/* notAfter not after notBefore (or unreadable, 0): the 30 days, no division by a
	   negative lifetime. */
	assert_int_equal(sv_renew_from(T0, T0, 0), T0 - 30 * DAY);
	assert_int_equal(sv_renew_from(T0 + DAY, T0, 0), T0 - 30 * DAY);
	assert_int_equal(sv_renew_from(0, T0, 0), T0 - 30 * DAY);
}

/* From a certificate: its ASN.1 dates as seconds, in both time forms; 0 for an unreadable one. */
static void
test_cert(void **state)
{
	X509 *x = X509_new();
	ASN1_TIME *bad = ASN1_TIME_new();

	(void)state;
	assert_non_null(x);
	assert_non_null(bad);
	/* UTCTime (before 2050) and GeneralizedTime (from 2050). */
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), T0));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), T0 + 365 * DAY));
	assert_int_equal(sv_asn1_time(X509_get0_notBefore(x)), T0);
	assert_int_equal(sv_cert_renew_from(x, 0), T0 + 335 * DAY);
	assert_int_equal(sv_cert_renew_from(x, 10), T0 + 355 * DAY);
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), (time_t)2600000000));
	assert_int_equal(ASN1_STRING_type(X509_get0_notAfter(x)), V_ASN1_GENERALIZEDTIME);
	assert_int_equal(sv_asn1_time(X509_get0_notAfter(x)), (time_t)2600000000);
	assert_int_equal(ASN1_STRING_set(bad, "not a time", -1), 1);
	assert_int_equal(sv_asn1_time(bad), 0);
	ASN1_TIME_free(bad);
	X509_free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rule),
		cmocka_unit_test(test_configured),
		cmocka_unit_test(test_odd_dates),
		cmocka_unit_test(test_cert),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
