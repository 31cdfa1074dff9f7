/*
 * solve: making ACME challenges answerable.
 *   http-01 standalone: a small HTTP server (libevent, its own thread) on
 *     --http-address:--http-port that answers only
 *     GET /.well-known/acme-challenge/TOKEN with the key authorization;
 *   http-01 webroot: the key authorization written to
 *     WEBROOT/.well-known/acme-challenge/TOKEN (removed afterwards);
 *   dns-01: the administrator's hook command, run with SHADOW_ACTION=present
 *     (and =cleanup afterwards), SHADOW_DOMAIN, SHADOW_TXT_NAME, SHADOW_TXT_VALUE.
 * Tokens were checked by the ACME library (base64url, capped) before they
 * reach a URL or a file name here.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "acme.h"
#include "fileio.h"
#include "log.h"
#include "shadow.h"
#include "sv_err.h"

#define SOLVE_MAX 100 /* challenges at once (one per identifier) */

extern char **environ;

struct answer {
	char name[256];
	char token[ACME_TOKEN_MAX + 1];
	char keyauth[ACME_TOKEN_MAX + 64];
	char path[PATH_MAX]; /* webroot file, if any */
};

struct solver {
	const struct issue_opts *o;
	pthread_mutex_t mu;
	struct answer a[SOLVE_MAX];
	size_t n;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thr;
	int running;
};

int
shadow_run_hook(const char *cmd, const char *const *env)
{
	char **envp;
	size_t ne = 0, nx = 0, i;
	pid_t pid;
	int st, rc;
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };

	while (environ[ne] != NULL)
		ne++;
	while (env[nx] != NULL)
		nx++;
	if ((envp = calloc(ne + nx + 1, sizeof(char *))) == NULL)
		return SV_ENOMEM;
	for (i = 0; i < nx; i++)
		envp[i] = (char *)env[i];
	for (i = 0; i < ne; i++)
		envp[nx + i] = environ[i]; /* ours first: getenv finds them first */
	rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, envp);
	free(envp);
	if (rc != 0)
		return sv_seterr(SV_EIO, "hook: cannot run /bin/sh: %s", strerror(rc));
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return sv_seterr(SV_EIO, "hook: wait: %s", strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return sv_seterr(SV_EIO, "hook \"%.80s\" failed (%s %d)", cmd,
	    WIFEXITED(st) ? "exit status" : "signal",
	    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct solver *sv = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	const char *prefix = "/.well-known/acme-challenge/";
	struct evbuffer *b;
	size_t i;

	if (path == NULL || strncmp(path, prefix, strlen(prefix)) != 0) {
		evhttp_send_error(req, 404, NULL);
		return;
	}
	pthread_mutex_lock(&sv->mu);
	for (i = 0; i < sv->n; i++)
		if (strcmp(sv->a[i].token, path + strlen(prefix)) == 0)
			break;
	if (i == sv->n || (b = evbuffer_new()) == NULL) {
		pthread_mutex_unlock(&sv->mu);
		evhttp_send_error(req, 404, NULL);
		return;
	}
	evbuffer_add(b, sv->a[i].keyauth, strlen(sv->a[i].keyauth));
	pthread_mutex_unlock(&sv->mu);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void *
serve(void *arg)
{
	struct solver *sv = arg;

	event_base_dispatch(sv->base);
	return NULL;
}

static int
responder_start(struct solver *sv)
{
	const char *addr = sv->o->http_address ? sv->o->http_address : "0.0.0.0";
	int port = sv->o->http_port ? sv->o->http_port : 80;

	evthread_use_pthreads();
	if ((sv->base = event_base_new()) == NULL || (sv->http = evhttp_new(sv->base)) == NULL)
		return SV_ENOMEM;
	evhttp_set_allowed_methods(sv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(sv->http, 8192);
	evhttp_set_max_body_size(sv->http, 0);
	evhttp_set_timeout(sv->http, 10);
	evhttp_set_gencb(sv->http, on_request, sv);
	if (evhttp_bind_socket(sv->http, addr, (ev_uint16_t)port) != 0)
		return sv_seterr(SV_EIO,
		    "http-01: cannot listen on %s:%d (%s): is a web server there? "
		    "use --webroot, or run as a user that may bind the port",
		    addr, port, strerror(errno));
	if (pthread_create(&sv->thr, NULL, serve, sv) != 0)
		return sv_seterr(SV_EIO, "http-01: cannot start the responder thread");
	sv->running = 1;
	return 0;
}

int
solver_open(const struct issue_opts *o, struct solver **out)
{
	struct solver *sv;
	int r = 0;

	*out = NULL;
	if ((sv = calloc(1, sizeof(*sv))) == NULL)
		return SV_ENOMEM;
	sv->o = o;
	pthread_mutex_init(&sv->mu, NULL);
	if (strcmp(o->challenge, "http-01") == 0 && o->webroot == NULL)
		r = responder_start(sv);
	else if (strcmp(o->challenge, "dns-01") == 0 && o->dns_hook == NULL)
		r = sv_seterr(SV_EINVAL, "dns-01 needs --dns-hook CMD to publish the TXT record");
	if (r != 0) {
		solver_close(sv);
		return r;
	}
	*out = sv;
	return 0;
}

/* The DNS hook with ACTION for answer a. */
static int
dns_hook(struct solver *sv, const struct answer *a, const char *action)
{
	char e1[64], e2[300], e3[320], e4[128], *txt = NULL;
	const char *dom = strncmp(a->name, "*.", 2) == 0 ? a->name + 2 : a->name;
	const char *env[5];
	int r;

	if ((r = acme_dns01_txt(a->keyauth, &txt)) != 0)
		return r;
	snprintf(e1, sizeof(e1), "SHADOW_ACTION=%s", action);
	snprintf(e2, sizeof(e2), "SHADOW_DOMAIN=%s", dom);
	snprintf(e3, sizeof(e3), "SHADOW_TXT_NAME=_acme-challenge.%s", dom);
	snprintf(e4, sizeof(e4), "SHADOW_TXT_VALUE=%s", txt);
	free(txt);
	env[0] = e1;
	env[1] = e2;
	env[2] = e3;
	env[3] = e4;
	env[4] = NULL;
	return shadow_run_hook(sv->o->dns_hook, env);
}

int
solver_present(struct solver *sv, const char *name, const char *token, const char *keyauth)
{
	struct answer *a;
	char dir[PATH_MAX];
	int r = 0;

	if (sv->n == SOLVE_MAX)
		return sv_seterr(SV_ETOOBIG, "too many challenges at once");
	pthread_mutex_lock(&sv->mu);
	a = &sv->a[sv->n];
	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->token, sizeof(a->token), "%s", token);
	snprintf(a->keyauth, sizeof(a->keyauth), "%s", keyauth);
	sv->n++;
	pthread_mutex_unlock(&sv->mu);
	if (strcmp(sv->o->challenge, "dns-01") == 0)
		return dns_hook(sv, a, "present");
	if (sv->o->webroot != NULL) {
		snprintf(dir, sizeof(dir), "%s/.well-known/acme-challenge", sv->o->webroot);
		if (snprintf(a->path, sizeof(a->path), "%s/%s", dir, token) >= (int)sizeof(a->path))
			return sv_seterr(SV_EINVAL, "webroot path too long");
		if ((r = sv_mkdir_p(dir, 0755)) == 0)
			r = sv_write_file_atomic(a->path, keyauth, strlen(keyauth), 0644);
		if (r != 0)
			a->path[0] = '\0';
	}
	return r;
}

void
solver_close(struct solver *sv)
{
	size_t i;

	if (sv == NULL)
		return;
	if (sv->running) {
		event_base_loopbreak(sv->base);
		pthread_join(sv->thr, NULL);
	}
	if (sv->http)
		evhttp_free(sv->http);
	if (sv->base)
		event_base_free(sv->base);
	for (i = 0; i < sv->n; i++) {
		if (sv->a[i].path[0])
			unlink(sv->a[i].path);
		if (strcmp(sv->o->challenge, "dns-01") == 0 &&
		    dns_hook(sv, &sv->a[i], "cleanup") != 0)
			sv_warn("dns-01 cleanup for %s: %s", sv->a[i].name, sv_errmsg(SV_EIO));
	}
	pthread_mutex_destroy(&sv->mu);
	free(sv);
}
