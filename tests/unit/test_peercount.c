/*
 * vault/peercount: open connections per client address.  Keys: IPv4 by
 * address, IPv6 by /64, IPv4-mapped IPv6 as IPv4, other families refused;
 * counting up and down, entries gone at zero, many addresses in a small
 * table; the text form used in the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "peercount.h"

static struct peer_key
v4(const char *a)
{
	struct sockaddr_in s;
	struct peer_key k;

	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(443);
	assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
	assert_int_equal(peercount_key((struct sockaddr *)&s, sizeof(s), &k), 0);
	return k;
}

static struct peer_key
v6(const char *a, uint16_t port)
{
	struct sockaddr_in6 s;
	struct peer_key k;

	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
	assert_int_equal(peercount_key((struct sockaddr *)&s, sizeof(s), &k), 0);
	return k;
}

static int
same(struct peer_key a, struct peer_key b)
{
	return memcmp(a.b, b.b, sizeof(a.b)) == 0;
}

static void
test_keys(void **state)
{
	struct sockaddr_un u;
	struct sockaddr_in s;
	struct peer_key k;
	char t[PEERCOUNT_TEXT_MAX];

	assert_true(same(v4("192.0.2.7"), v4("192.0.2.7")));
	assert_false(same(v4("192.0.2.7"), v4("192.0.2.8")));
	/* One /64: the same key, whatever the interface identifier and port. */
	assert_true(same(v6("2001:db8:1:2::1", 1), v6("2001:db8:1:2:ffff:ffff:ffff:ffff", 2)));
	assert_false(same(v6("2001:db8:1:2::1", 1), v6("2001:db8:1:3::1", 1)));
	/* An IPv4 client on a dual-stack socket is the same client. */
	assert_true(same(v6("::ffff:192.0.2.7", 9), v4("192.0.2.7")));
	assert_false(same(v6("::192.0.2.7", 9), v4("192.0.2.7")));

	peercount_fmt(&(struct peer_key){ 0 }, t, sizeof(t));
	assert_string_equal(t, "?");
	k = v4("192.0.2.7");
	peercount_fmt(&k, t, sizeof(t));
	assert_string_equal(t, "192.0.2.7");
	k = v6("2001:db8:1:2:aaaa::1", 1);
	peercount_fmt(&k, t, sizeof(t));
	assert_string_equal(t, "2001:db8:1:2::/64");

	memset(&u, 0, sizeof(u));
	u.sun_family = AF_UNIX;
	assert_int_equal(peercount_key((struct sockaddr *)&u, sizeof(u), &k), -1);
	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	assert_int_equal(peercount_key((struct sockaddr *)&s, 4, &k), -1); /* too short */
}

static void
test_counting(void **state)
{
	struct peercount *pc;
	struct peer_key a = v4("192.0.2.7"), b = v6("2001:db8::5", 1);
	int i;

	assert_int_equal(peercount_new(4, &pc), 0);
	assert_int_equal(peercount_get(pc, &a), 0);
	for (i = 1; i <= 3; i++)
		assert_int_equal(peercount_inc(pc, &a), (size_t)i);
	assert_int_equal(peercount_inc(pc, &b), 1);
	assert_int_equal(peercount_size(pc), 2);
	peercount_dec(pc, &a);
	assert_int_equal(peercount_get(pc, &a), 2);
	peercount_dec(pc, &b);
	assert_int_equal(peercount_get(pc, &b), 0);
	assert_int_equal(peercount_size(pc), 1); /* b's entry is gone */
	peercount_dec(pc, &b);			 /* not counted: no effect */
	assert_int_equal(peercount_size(pc), 1);
	peercount_dec(pc, &a);
	peercount_dec(pc, &a);
	assert_int_equal(peercount_size(pc), 0);
	peercount_free(pc);
	peercount_free(NULL);
}

/* Far more addresses than the table was sized for: still exact. */
static void
test_many(void **state)
{
	struct peercount *pc;
	struct sockaddr_in s;
	struct peer_key k;
	uint32_t i;

	assert_int_equal(peercount_new(1, &pc), 0);
	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	for (i = 0; i < 20000; i++) {
		s.sin_addr.s_addr = htonl(0x0a000000u + i);
		assert_int_equal(peercount_key((struct sockaddr *)&s, sizeof(s), &k), 0);
		assert_int_equal(peercount_inc(pc, &k), 1);
		if (i % 2 == 0)
			assert_int_equal(peercount_inc(pc, &k), 2);
	}
	assert_int_equal(peercount_size(pc), 20000);
	for (i = 0; i < 20000; i++) {
		s.sin_addr.s_addr = htonl(0x0a000000u + i);
		assert_int_equal(peercount_key((struct sockaddr *)&s, sizeof(s), &k), 0);
		assert_int_equal(peercount_get(pc, &k), i % 2 == 0 ? 2 : 1);
		peercount_dec(pc, &k);
	}
	assert_int_equal(peercount_size(pc), 10000);
	peercount_free(pc); /* frees the entries left */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_counting),
		cmocka_unit_test(test_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
