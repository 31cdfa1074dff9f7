/*
 * vault/ipc: the string frames of IPC_SIGN.  Strings framed by one process
 * come out whole in the other; every malformed body - cut short, a length
 * past the end, a missing or an inner NUL, bytes left over, too few strings -
 * is a protocol error; and the type's cap holds.  And the frame rules of
 * ipc_next(): a header of unknown type, from the side that may not send that
 * type, or longer than the type allows is a protocol error as soon as the
 * header is in; a frame within its limits waits for its body; an
 * IPC_RESP_BODY carries only a 2xx status.  And the caps of the bundle
 * exchange: the largest IPC_BUNDLE request and the answer carrying the
 * largest sealed bundle fit their types.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <event2/buffer.h>

#include "b64.h"
#include "bundle.h"
#include "ipc.h"
#include "names.h"
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
	const char *in[IPC_SIGN_NSTRS] = { "0a1b",
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "le",
		"https://ca.test/new-order", "n0nce", "" };
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

/* Every known type and the side that may send it (ipc.c's rules). */
static const struct {
	uint32_t type;
	enum ipc_side from;
} known[] = {
	{ IPC_SIGN, IPC_FROM_NET },
	{ IPC_ACCOUNT, IPC_FROM_NET },
	{ IPC_ENROLL, IPC_FROM_NET },
	{ IPC_METRICS, IPC_FROM_NET },
	{ IPC_HEALTH, IPC_FROM_NET },
	{ IPC_TLS_SIGN, IPC_FROM_NET },
	{ IPC_RENEW, IPC_FROM_NET },
	{ IPC_WHOAMI, IPC_FROM_NET },
	{ IPC_BUNDLE, IPC_FROM_NET },
	{ IPC_RESP, IPC_FROM_KEY },
	{ IPC_PEERS, IPC_FROM_KEY },
	{ IPC_TLS_SIG, IPC_FROM_KEY },
	{ IPC_RESP_BODY, IPC_FROM_KEY },
};
#define NKNOWN (sizeof(known) / sizeof(known[0]))

static enum ipc_side
other(enum ipc_side from)
{
	return from == IPC_FROM_NET ? IPC_FROM_KEY : IPC_FROM_NET;
}

/*
 * ipc_next() on a buffer holding a header {type, 9, len} and then body bytes
 * of it ('x's).  A violation must be told by the header alone: no body is
 * allocated, and detail (when not NULL) must name which rule it broke.
 */
static int
next_hdr(uint32_t type, uint32_t len, size_t body, enum ipc_side from, const char *detail)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t hdr[3] = { type, 9, len };
	struct ipc_msg m;
	char *x = calloc(1, body + 1);
	int r;

	assert_non_null(b);
	assert_non_null(x);
	memset(x, 'x', body);
	evbuffer_add(b, hdr, sizeof(hdr));
	evbuffer_add(b, x, body);
	sv_clearerr();
	r = ipc_next(b, from, &m);
	if (r == 1) {
		assert_int_equal(m.type, type);
		assert_int_equal(m.id, 9);
		assert_int_equal(m.len, len);
		assert_int_equal(evbuffer_get_length(b), body - len);
		ipc_msg_free(&m);
	} else {
		assert_null(m.body);
		/* Nothing taken: the frame is still whole in the buffer. */
		assert_int_equal(evbuffer_get_length(b), IPC_HDR_LEN + body);
	}
	if (r == SV_EPROTO && detail != NULL && strstr(sv_errmsg(r), detail) == NULL)
		fail_msg("type %u, %u bytes: \"%s\" lacks \"%s\"", type, len, sv_errmsg(r), detail);
	evbuffer_free(b);
	free(x);
	return r;
}

/* A type no rule names is refused from either side, even an empty one. */
static void
test_unknown_type(void **state)
{
	static const uint32_t unknown[] = { 0, 10, 63, 68, 128, 0xffffffffu };

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_int_equal(ipc_max(unknown[i]), 0);
		assert_int_equal(
		    next_hdr(unknown[i], 0, 0, IPC_FROM_NET, "unknown message type"), SV_EPROTO);
		assert_int_equal(
		    next_hdr(unknown[i], 0, 0, IPC_FROM_KEY, "unknown message type"), SV_EPROTO);
	}
}

/*
 * Each type only from its own side: netproc's requests are refused when read
 * as from the key process, and the key process's answers (IPC_RESP and the
 * rest) when read as from netproc - the same whole frame is taken from the
 * right side.
 */
static void
test_wrong_side(void **state)
{
	for (size_t i = 0; i < NKNOWN; i++) {
		assert_int_equal(next_hdr(known[i].type, 2, 2, known[i].from, NULL), 1);
		assert_int_equal(
		    next_hdr(known[i].type, 2, 2, other(known[i].from), "from the wrong side"),
		    SV_EPROTO);
		/* Judged by the header: a wrong-side header without its body too. */
		assert_int_equal(
		    next_hdr(known[i].type, 2, 0, other(known[i].from), "from the wrong side"),
		    SV_EPROTO);
	}
}

/*
 * A header claiming more than its type's cap is refused at once, before any of
 * the body has come (so a peer cannot make the reader wait for, or allocate,
 * gigabytes); a header at exactly the cap, or under it, waits for the body.
 */
static void
test_oversized_header(void **state)
{
	for (size_t i = 0; i < NKNOWN; i++) {
		uint32_t max = ipc_max(known[i].type);

		assert_true(max > 0);
		assert_int_equal(
		    next_hdr(known[i].type, max + 1, 0, known[i].from, "at most"), SV_EPROTO);
		assert_int_equal(
		    next_hdr(known[i].type, 0xffffffffu, 0, known[i].from, "at most"), SV_EPROTO);
		assert_int_equal(next_hdr(known[i].type, max, 0, known[i].from, NULL), 0);
	}
	/* The small caps are the ones netproc relies on for its fixed requests. */
	assert_int_equal(next_hdr(IPC_HEALTH, 65, 65, IPC_FROM_NET, "at most"), SV_EPROTO);
	assert_int_equal(next_hdr(IPC_HEALTH, 64, 64, IPC_FROM_NET, NULL), 1);
}

/*
 * A frame within its limits that is not all in yet is "need more" (0), not an
 * error: less than a header, a header alone, a header and part of its body.
 * Once the rest arrives the whole frame comes out, and only that frame.
 */
static void
test_partial(void **state)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t hdr[3] = { IPC_ACCOUNT, 5, 4 };
	struct ipc_msg m;

	assert_non_null(b);
	assert_int_equal(next_hdr(IPC_ACCOUNT, 4, 0, IPC_FROM_NET, NULL), 0);
	assert_int_equal(next_hdr(IPC_ACCOUNT, 4, 3, IPC_FROM_NET, NULL), 0);
	assert_int_equal(next_hdr(IPC_RESP, 1000, 999, IPC_FROM_KEY, NULL), 0);
	assert_int_equal(next_hdr(IPC_RESP, 1000, 1000, IPC_FROM_KEY, NULL), 1);
	/* Byte by byte: nothing until the last byte of the body, then the frame. */
	evbuffer_add(b, hdr, IPC_HDR_LEN - 1);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 0);
	evbuffer_add(b, (const char *)hdr + IPC_HDR_LEN - 1, 1);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 0);
	evbuffer_add(b, "{}{", 3);
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 0);
	assert_int_equal(evbuffer_get_length(b), IPC_HDR_LEN + 3);
	evbuffer_add(b, "}[", 2); /* the last body byte, and one of the next frame */
	assert_int_equal(ipc_next(b, IPC_FROM_NET, &m), 1);
	assert_int_equal(m.id, 5);
	assert_int_equal(m.len, 4);
	assert_string_equal((const char *)m.body, "{}{}");
	assert_int_equal(evbuffer_get_length(b), 1);
	ipc_msg_free(&m);
	evbuffer_free(b);
}

/* Frame an IPC_RESP_BODY of status and "{}" and read it back as netproc does. */
static int
resp_body(uint32_t status, uint32_t *got)
{
	struct evbuffer *b = evbuffer_new();
	struct ipc_msg m;
	const char *body = NULL;
	size_t len = 0;
	int r;

	assert_non_null(b);
	assert_int_equal(ipc_put_body(b, 3, status, "{}", 2), 0);
	assert_int_equal(ipc_next(b, IPC_FROM_KEY, &m), 1);
	r = ipc_body(&m, got, &body, &len);
	if (r == 0) {
		assert_int_equal(len, 2);
		assert_memory_equal(body, "{}", 2);
	}
	ipc_msg_free(&m);
	evbuffer_free(b);
	return r;
}

/*
 * IPC_RESP_BODY is for successful answers only: a status outside 200-299 is a
 * protocol error (netproc must not pass a 1xx, 3xx or error status through
 * with a body it did not build), as is a body too short for the status or a
 * message of another type.
 */
static void
test_resp_body_status(void **state)
{
	static const uint32_t ok[] = { 200, 201, 204, 299 };
	static const uint32_t bad[] = { 0, 100, 199, 300, 400, 429, 500, 0xffffffffu };
	uint32_t status, hdr[3] = { IPC_RESP_BODY, 3, 3 };
	struct evbuffer *b = evbuffer_new();
	struct ipc_msg m;
	const char *body;
	size_t len;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(resp_body(ok[i], &status), 0);
		assert_int_equal(status, ok[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(resp_body(bad[i], &status), SV_EPROTO);
	/* Three bytes: no room for the status. */
	evbuffer_add(b, hdr, sizeof(hdr));
	evbuffer_add(b, "\310\0\0", 3);
	assert_int_equal(ipc_next(b, IPC_FROM_KEY, &m), 1);
	assert_int_equal(ipc_body(&m, &status, &body, &len), SV_EPROTO);
	ipc_msg_free(&m);
	/* An IPC_RESP whose body happens to start with a 2xx status is not one. */
	hdr[0] = IPC_RESP;
	hdr[2] = 6;
	status = 200;
	evbuffer_add(b, hdr, sizeof(hdr));
	evbuffer_add(b, &status, sizeof(status));
	evbuffer_add(b, "{}", 2);
	assert_int_equal(ipc_next(b, IPC_FROM_KEY, &m), 1);
	assert_int_equal(ipc_body(&m, &status, &body, &len), SV_EPROTO);
	ipc_msg_free(&m);
	evbuffer_free(b);
}

/*
 * GET /v1/bundles/{name}: netproc's request {serial, name} for the longest
 * serial it reads and the longest name, every character one JSON escapes,
 * fits IPC_BUNDLE; one past the cap does not.  The key process's answer
 * carrying the largest sealed bundle (BUNDLE_SEALED_MAX, base64url) with the
 * largest numbers fits IPC_RESP_BODY, so no bundle it can seal is lost to
 * the frame's cap.
 */
static void
test_bundle_caps(void **state)
{
	char serial[80], name[SV_NAME_MAX + 1], *pad, *b64, *text;
	struct evbuffer *b = evbuffer_new();
	uint8_t *sealed = calloc(1, BUNDLE_SEALED_MAX);
	json_t *j;

	assert_non_null(b);
	assert_non_null(sealed);
	memset(serial, 'f', sizeof(serial) - 1);
	serial[sizeof(serial) - 1] = '\0';
	memset(name, '"', SV_NAME_MAX);
	name[SV_NAME_MAX] = '\0';
	j = json_pack("{s:s, s:s}", "serial", serial, "name", name);
	assert_int_equal(ipc_put_json(b, IPC_BUNDLE, 1, j), 0);
	json_decref(j);
	/* A request with a member padded past the cap is refused by the sender. */
	pad = calloc(1, ipc_max(IPC_BUNDLE) + 1);
	assert_non_null(pad);
	memset(pad, 'a', ipc_max(IPC_BUNDLE));
	j = json_pack("{s:s, s:s}", "serial", serial, "name", pad);
	assert_int_equal(ipc_put_json(b, IPC_BUNDLE, 2, j), SV_ETOOBIG);
	json_decref(j);
	free(pad);
	/* The answer with the largest sealed bundle. */
	assert_int_equal(b64u_encode(sealed, BUNDLE_SEALED_MAX, &b64), 0);
	j = json_pack("{s:s, s:I, s:s, s:I, s:s}", "name", name, "sequence", (json_int_t)INT64_MAX,
	    "id", "0123456789abcdef0123456789abcdef", "expires_at", (json_int_t)INT64_MAX, "sealed",
	    b64);
	assert_non_null(text = json_dumps(j, JSON_COMPACT));
	assert_true(strlen(text) + sizeof(uint32_t) <= ipc_max(IPC_RESP_BODY));
	assert_int_equal(ipc_put_body(b, 3, 200, text, strlen(text)), 0);
	free(text);
	json_decref(j);
	free(b64);
	free(sealed);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_unknown_type),
		cmocka_unit_test(test_wrong_side),
		cmocka_unit_test(test_oversized_header),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_resp_body_status),
		cmocka_unit_test(test_bundle_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
