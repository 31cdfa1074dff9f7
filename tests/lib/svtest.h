/*
 * Test helpers shared by the cmocka suites.  Include after <cmocka.h>.
 */
#ifndef SV_SVTEST_H
#define SV_SVTEST_H

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

#endif
