/*
 * vault/ipc: the string frames of IPC_SIGN.  Strings framed by one process
 * come out whole in the other; every malformed body - cut short, a length
 * past the end, a missing or an inner NUL, bytes left over, too few strings -
 * is a protocol error; and the type's cap holds.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "ipc.h"
#include "sv_err.h"

/* Frame raw bytes as an IPC_SIGN from netproc and read it back. */
static void
frame(const void *body, size_t len, struct ipc_msg *m)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t hdr[3] = { IPC_SIGN, 7, (uint32_t)len };

	assert_non_null(b);
	evbuffer_add(b, hdr, sizeof(hdr));
	evbuffer_add(b, body, len);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, m), 1);
	evbuffer_free(b);
}

static void
test_round_trip(void **state)
{
	const char *in[IPC_SIGN_NSTRS] = { "0a1b", "le", "https://ca.test/new-order", "n0nce", "" };
	const char *out[IPC_SIGN_NSTRS + 1];
	struct evbuffer *b = evbuffer_new();
	struct ipc_msg m;
	size_t i;

	assert_int_equal(ipc_put_strs(b, IPC_SIGN, 42, in, IPC_SIGN_NSTRS), 0);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 1);
	assert_int_equal(m.type, IPC_SIGN);
	assert_int_equal(m.id, 42);
	assert_int_equal(ipc_strs(&m, out, IPC_SIGN_NSTRS), 0);
	for (i = 0; i < IPC_SIGN_NSTRS; i++)
		assert_string_equal(out[i], in[i]);
	ipc_msg_free(&m);
	/* One string fewer than the frame holds, or one more, is refused. */
	assert_int_equal(ipc_put_strs(b, IPC_SIGN, 43, in, IPC_SIGN_NSTRS), 0);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 1);
	assert_int_equal(ipc_strs(&m, out, IPC_SIGN_NSTRS - 1), SV_EPROTO);
	assert_int_equal(ipc_strs(&m, out, IPC_SIGN_NSTRS + 1), SV_EPROTO);
	ipc_msg_free(&m);
	evbuffer_free(b);
}

static void
test_malformed(void **state)
{
	/* Two strings "ab" and "c", then each way of breaking them. */
	static const uint8_t good[] = { 2, 0, 0, 0, 'a', 'b', 0, 1, 0, 0, 0, 'c', 0 };
	uint8_t bad[sizeof(good) + 1];
	const char *out[2];
	struct ipc_msg m;

	frame(good, sizeof(good), &m);
	assert_int_equal(ipc_strs(&m, out, 2), 0);
	assert_string_equal(out[0], "ab");
	assert_string_equal(out[1], "c");
	ipc_msg_free(&m);
	/* Cut short, anywhere. */
	for (size_t cut = 0; cut < sizeof(good); cut++) {
		frame(good, cut, &m);
		assert_int_equal(ipc_strs(&m, out, 2), SV_EPROTO);
		ipc_msg_free(&m);
	}
	/* A length past the end, the largest length, no NUL after a string, a NUL inside. */
	static const size_t at[] = { 0, 0, 6, 5 };
	static const uint8_t to[] = { 9, 0xff, 'x', 0 };
	for (size_t k = 0; k < 4; k++) {
		memcpy(bad, good, sizeof(good));
		bad[at[k]] = to[k];
		if (k == 1)
			memset(bad, 0xff, 4);
		frame(bad, sizeof(good), &m);
		assert_int_equal(ipc_strs(&m, out, 2), SV_EPROTO);
		ipc_msg_free(&m);
	}
	/* A byte left over. */
	memcpy(bad, good, sizeof(good));
	bad[sizeof(good)] = 0;
	frame(bad, sizeof(good) + 1, &m);
	assert_int_equal(ipc_strs(&m, out, 2), SV_EPROTO);
	ipc_msg_free(&m);
}

static void
test_cap(void **state)
{
	size_t n = ipc_max(IPC_SIGN);
	char *big = malloc(n + 1);
	const char *in[1] = { big };
	struct evbuffer *b = evbuffer_new();

	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\0';
	assert_int_equal(ipc_put_strs(b, IPC_SIGN, 1, in, 1), SV_ETOOBIG);
	assert_int_equal(evbuffer_get_length(b), 0);
	big[n - 5] = '\0'; /* 4 + (n - 5) + 1: exactly the cap */
	assert_int_equal(ipc_put_strs(b, IPC_SIGN, 1, in, 1), 0);
	assert_int_equal(evbuffer_get_length(b), IPC_HDR_LEN + n);
	evbuffer_free(b);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
