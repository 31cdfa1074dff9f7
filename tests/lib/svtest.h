/*
 * Test helpers shared by the cmocka suites.  Include after <cmocka.h>.
 */
#ifndef SV_SVTEST_H
#define SV_SVTEST_H

#include <string.h>

#include "sv_err.h"

/* Assert an SV call succeeded, printing its error detail if it did not. */
#define assert_ok(e)                                                                               \
	do {                                                                                       \
		int r_ = (e);                                                                      \
		if (r_ != 0)                                                                       \
			fail_msg("%s = %d: %s", #e, r_, sv_errmsg(r_));                            \
	} while (0)

/* Assert an SV call failed with code c, printing the detail if it did not. */
#define assert_sverr(e, c)                                                                         \
	do {                                                                                       \
		int r_ = (e);                                                                      \
		if (r_ != (c))                                                                     \
			fail_msg("%s = %d (%s), expected %d", #e, r_, sv_errmsg(r_), (c));         \
	} while (0)

/* Assert the error detail recorded for code c contains want. */
#define assert_msg_has(c, want)                                                                    \
	do {                                                                                       \
		const char *m_ = sv_errmsg(c);                                                     \
		if (strstr(m_, (want)) == NULL)                                                    \
			fail_msg("error detail \"%s\" lacks \"%s\"", m_, (want));                  \
	} while (0)

#endif
