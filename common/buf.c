/*
 * Capped byte buffer (see buf.h).  Memory is wiped before it is released or
 * reallocated, because buffers routinely carry signatures, tokens and JSON
 * that may contain secrets.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "sv_err.h"

struct svbuf {
	uint8_t *d;
	size_t len;
	size_t alloc; /* bytes allocated, including the spare NUL */
	size_t max;
};

struct svbuf *
svbuf_new(size_t max)
{
	struct svbuf *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	b->alloc = 64;
	if ((b->d = calloc(1, b->alloc)) == NULL) {
		free(b);
		return NULL;
	}
	b->max = max;
	return b;
}

void
svbuf_free(struct svbuf *b)
{
	if (b == NULL)
		return;
	sodium_memzero(b->d, b->alloc);
	free(b->d);
	free(b);
}

static int
grow(struct svbuf *b, size_t need)
{
	size_t n;
	uint8_t *nd;

	if (need + 1 <= b->alloc)
		return 0;
	n = b->alloc;
	while (n < need + 1)
		n = n > SIZE_MAX / 2 ? need + 1 : n * 2;
	if (n > b->max + 1)
		n = b->max + 1;
	/* Allocate fresh and wipe the old block: realloc could leave a copy. */
	if ((nd = calloc(1, n)) == NULL)
		return sv_seterr(SV_ENOMEM, "buffer: cannot grow to %zu bytes", n);
	memcpy(nd, b->d, b->len);
	sodium_memzero(b->d, b->alloc);
	free(b->d);
	b->d = nd;
	b->alloc = n;
	return 0;
}

int
svbuf_put(struct svbuf *b, const void *data, size_t len)
{
	int r;

	if (len > b->max || b->len > b->max - len)
		return sv_seterr(SV_ETOOBIG, "input larger than %zu bytes", b->max);
	if ((r = grow(b, b->len + len)) != 0)
		return r;
	if (len > 0)
		memcpy(b->d + b->len, data, len);
	b->len += len;
	b->d[b->len] = '\0';
	return 0;
}

int
svbuf_puts(struct svbuf *b, const char *s)
{
	return svbuf_put(b, s, strlen(s));
}

const uint8_t *
svbuf_ptr(const struct svbuf *b)
{
	return b->d;
}

size_t
svbuf_len(const struct svbuf *b)
{
	return b->len;
}

size_t
svbuf_max(const struct svbuf *b)
{
	return b->max;
}

const char *
svbuf_str(const struct svbuf *b)
{
	return (const char *)b->d;
}

void
svbuf_consume(struct svbuf *b, size_t n)
{
	if (n > b->len)
		n = b->len;
	memmove(b->d, b->d + n, b->len - n);
	sodium_memzero(b->d + b->len - n, n);
	b->len -= n;
	b->d[b->len] = '\0';
}

void
svbuf_reset(struct svbuf *b)
{
	sodium_memzero(b->d, b->alloc);
	b->len = 0;
}
