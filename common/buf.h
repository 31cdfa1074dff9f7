/*
 * svbuf: a growable byte buffer with a hard size cap, wiped on free.
 *
 * Every byte that arrives from outside (network, files, CA answers, IPC) is
 * collected in an svbuf whose cap was chosen for that input, so a hostile peer
 * cannot make us allocate more than the cap.  The buffer keeps one spare NUL
 * after the data so text can be read with svbuf_str() without copying.
 */
#ifndef SV_BUF_H
#define SV_BUF_H

#include <stddef.h>
#include <stdint.h>

struct svbuf;

/* New empty buffer that may hold at most max bytes.  NULL on ENOMEM. */
struct svbuf *svbuf_new(size_t max);

/* Wipe and free; NULL is fine. */
void svbuf_free(struct svbuf *b);

/* Append len bytes.  SV_ETOOBIG (buffer unchanged) past the cap. */
int svbuf_put(struct svbuf *b, const void *data, size_t len);

/* Append a C string without its NUL. */
int svbuf_puts(struct svbuf *b, const char *s);

/* Data, length, cap.  svbuf_ptr is never NULL; it is valid until the next put. */
const uint8_t *svbuf_ptr(const struct svbuf *b);
size_t svbuf_len(const struct svbuf *b);
size_t svbuf_max(const struct svbuf *b);

/* The data as a NUL-terminated string (the data may hold NULs of its own). */
const char *svbuf_str(const struct svbuf *b);

/* Drop the first n bytes (n <= len). */
void svbuf_consume(struct svbuf *b, size_t n);

/* Wipe the content and set the length to 0 (the cap stays). */
void svbuf_reset(struct svbuf *b);

#endif
