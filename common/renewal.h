/*
 * renewal: from when a shadow's vault identity (its client certificate from
 * the shadow CA) may be renewed.  The vault enforces it (kp_renew) and tells
 * the shadow the result when it issues a certificate; the shadow applies it
 * itself to a certificate it has no such answer for.
 */
#ifndef SV_RENEWAL_H
#define SV_RENEWAL_H

#include <time.h>

#include <openssl/asn1.h>
#include <openssl/x509.h>

#define SV_RENEW_DAYS 30 /* the window, unless a third of the lifetime is shorter */

/*
 * The time from which a certificate valid from not_before to not_after may
 * be renewed: its last `days` days when days > 0 (vaultd's
 * shadow_renew_days), otherwise its last SV_RENEW_DAYS days or its last
 * third, whichever is shorter: a 365-day certificate in its last 30 days, a
 * 12-day one in its last 4.  Without the third, a certificate of 30 days or
 * less would be due as soon as it was issued, and renewed at every run.
 */
static inline time_t
sv_renew_from(time_t not_before, time_t not_after, int days)
{
	time_t w = (time_t)SV_RENEW_DAYS * 86400;

	if (days > 0)
		w = (time_t)days * 86400;
	else if (not_after > not_before && (not_after - not_before) / 3 < w)
		w = (not_after - not_before) / 3;
	return not_after - w;
}

/* A certificate's notBefore or notAfter in seconds since the epoch; 0 if invalid. */
static inline time_t
sv_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

/* sv_renew_from() for certificate x. */
static inline time_t
sv_cert_renew_from(const X509 *x, int days)
{
	return sv_renew_from(
	    sv_asn1_time(X509_get0_notBefore(x)), sv_asn1_time(X509_get0_notAfter(x)), days);
}

#endif
