/*
 * ipc: frame rules and (de)framing over libevent buffers (see ipc.h).
 * No I/O of its own: callers move the buffers.
 */
#include <stdlib.h>
#include <string.h>

#include "ipc.h"
#include "sv_err.h"

struct ipc_rule {
	uint32_t type;
	uint32_t max;
	enum ipc_side from;
	const char *name;
};

static const struct ipc_rule rules[] = {
	{ IPC_SIGN, 160 * 1024, IPC_FROM_NET, "sign" },
	{ IPC_ACCOUNT, 1024, IPC_FROM_NET, "account" },
	{ IPC_ENROLL, 96 * 1024, IPC_FROM_NET, "enroll" },
	{ IPC_RENEW, 160 * 1024, IPC_FROM_NET, "renew" },
	{ IPC_WHOAMI, 1024, IPC_FROM_NET, "identity" },
	{ IPC_BUNDLE, 1024, IPC_FROM_NET, "bundle" },
	{ IPC_METRICS, 64, IPC_FROM_NET, "metrics" },
	{ IPC_HEALTH, 64, IPC_FROM_NET, "health" },
	{ IPC_TLS_SIGN, 256, IPC_FROM_NET, "tls-sign" },
	{ IPC_RESP, 256 * 1024, IPC_FROM_KEY, "response" },
	{ IPC_PEERS, 4 * 1024 * 1024, IPC_FROM_KEY, "peers" },
	{ IPC_TLS_SIG, 512, IPC_FROM_KEY, "tls-signature" },
	{ IPC_RESP_BODY, 256 * 1024, IPC_FROM_KEY, "response-body" },
};

static const struct ipc_rule *
rule(uint32_t type)
{
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (rules[i].type == type)
			return &rules[i];
	return NULL;
}

uint32_t
ipc_max(uint32_t type)
{
	const struct ipc_rule *r = rule(type);

	return r ? r->max : 0;
}

int
ipc_next(struct evbuffer *in, enum ipc_side from, struct ipc_msg *m)
{
	uint32_t hdr[3];
	const struct ipc_rule *r;

	memset(m, 0, sizeof(*m));
	if (evbuffer_get_length(in) < IPC_HDR_LEN)
		return 0;
	evbuffer_copyout(in, hdr, IPC_HDR_LEN);
	/* Judge the header before waiting for (or allocating) the body. */
	if ((r = rule(hdr[0])) == NULL)
		return sv_seterr(SV_EPROTO, "ipc: unknown message type %u", hdr[0]);
	if (r->from != from)
		return sv_seterr(SV_EPROTO, "ipc: %s message from the wrong side", r->name);
	if (hdr[2] > r->max)
		return sv_seterr(
		    SV_EPROTO, "ipc: %s message of %u bytes (at most %u)", r->name, hdr[2], r->max);
	if (evbuffer_get_length(in) < IPC_HDR_LEN + (size_t)hdr[2])
		return 0;
	if ((m->body = malloc((size_t)hdr[2] + 1)) == NULL)
		return SV_ENOMEM;
	evbuffer_drain(in, IPC_HDR_LEN);
	evbuffer_remove(in, m->body, hdr[2]);
	m->body[hdr[2]] = '\0';
	m->type = hdr[0];
	m->id = hdr[1];
	m->len = hdr[2];
	return 1;
}

/* Frame prefix[0..plen) + body serialised compact as one message of type. */
/* Frame prefix (plen bytes) then data (dlen bytes) as one message of type. */
static int
put_raw(struct evbuffer *out, uint32_t type, uint32_t id, const void *prefix, size_t plen,
    const char *data, size_t dlen)
{
	uint32_t hdr[3];
	size_t len = plen + dlen;

	if (len > ipc_max(type))
		return sv_seterr(SV_ETOOBIG, "ipc: message of %zu bytes over its cap", len);
	hdr[0] = type;
	hdr[1] = id;
	hdr[2] = (uint32_t)len;
	if (evbuffer_add(out, hdr, IPC_HDR_LEN) != 0 ||
	    (plen > 0 && evbuffer_add(out, prefix, plen) != 0) ||
	    evbuffer_add(out, data, dlen) != 0)
		return sv_seterr(SV_ENOMEM, "ipc: cannot queue a message");
	return 0;
}

int
ipc_put_json(struct evbuffer *out, uint32_t type, uint32_t id, const json_t *body)
{
	char *s;
	int r;

	if ((s = json_dumps(body, JSON_COMPACT)) == NULL)
		return sv_seterr(SV_ENOMEM, "ipc: cannot serialise a message");
	r = put_raw(out, type, id, NULL, 0, s, strlen(s));
	free(s);
	return r;
}

int
ipc_put_body(struct evbuffer *out, uint32_t id, uint32_t status, const char *body, size_t len)
{
	return put_raw(out, IPC_RESP_BODY, id, &status, sizeof(status), body, len);
}

int
ipc_put_strs(struct evbuffer *out, uint32_t type, uint32_t id, const char *const *strs, size_t n)
{
	uint32_t hdr[3], l;
	size_t i, len = 0;

	for (i = 0; i < n; i++) {
		if (strlen(strs[i]) > ipc_max(type))
			return sv_seterr(SV_ETOOBIG, "ipc: string of %zu bytes", strlen(strs[i]));
		len += sizeof(l) + strlen(strs[i]) + 1;
	}
	if (len > ipc_max(type))
		return sv_seterr(SV_ETOOBIG, "ipc: message of %zu bytes over its cap", len);
	hdr[0] = type;
	hdr[1] = id;
	hdr[2] = (uint32_t)len;
	if (evbuffer_add(out, hdr, IPC_HDR_LEN) != 0)
		return sv_seterr(SV_ENOMEM, "ipc: cannot queue a message");
	for (i = 0; i < n; i++) {
		l = (uint32_t)strlen(strs[i]);
		if (evbuffer_add(out, &l, sizeof(l)) != 0 || evbuffer_add(out, strs[i], l + 1) != 0)
			return sv_seterr(SV_ENOMEM, "ipc: cannot queue a message");
	}
	return 0;
}

int
ipc_strs(const struct ipc_msg *m, const char **strs, size_t n)
{
	const char *b = (const char *)m->body;
	size_t i, pos = 0;
	uint32_t l;

	for (i = 0; i < n; i++) {
		if (m->len - pos < sizeof(l) + 1)
			return sv_seterr(SV_EPROTO, "ipc: string %zu of %zu missing", i + 1, n);
		memcpy(&l, b + pos, sizeof(l));
		pos += sizeof(l);
		if (l > m->len - pos - 1 || b[pos + l] != '\0' || memchr(b + pos, '\0', l) != NULL)
			return sv_seterr(
			    SV_EPROTO, "ipc: string %zu of %zu is malformed", i + 1, n);
		strs[i] = b + pos;
		pos += (size_t)l + 1;
	}
	if (pos != m->len)
		return sv_seterr(SV_EPROTO, "ipc: %zu bytes after the strings", m->len - pos);
	return 0;
}

int
ipc_body(const struct ipc_msg *m, uint32_t *status, const char **body, size_t *len)
{
	if (m->type != IPC_RESP_BODY || m->len < sizeof(*status))
		return sv_seterr(SV_EPROTO, "ipc: response body message without a status");
	memcpy(status, m->body, sizeof(*status));
	if (*status < 200 || *status > 299)
		return sv_seterr(SV_EPROTO, "ipc: response body message with status %u", *status);
	*body = (const char *)m->body + sizeof(*status);
	*len = m->len - sizeof(*status);
	return 0;
}

int
ipc_json(const struct ipc_msg *m, json_t **out)
{
	json_error_t e;

	*out = json_loadb((const char *)m->body, m->len, JSON_REJECT_DUPLICATES, &e);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return sv_seterr(SV_EPROTO, "ipc: message body is not a JSON object");
	}
	return 0;
}

void
ipc_msg_free(struct ipc_msg *m)
{
	free(m->body);
	m->body = NULL;
}
