/*
 * evbase: the event base every shadowvault event loop uses.
 *
 * epoll with libevent's change list: the adds and deletes an iteration makes
 * to an fd are folded into at most one epoll_ctl at the next dispatch.  A
 * connection that enables writing, writes its whole answer at once and
 * disables writing again then costs no epoll_ctl at all.  libevent warns that
 * the change list misbehaves on dup()ed fds; shadowvault never dup()s one it
 * watches.
 */
#ifndef SV_EVBASE_H
#define SV_EVBASE_H

#include <event2/event.h>

static inline struct event_base *
sv_event_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

#endif
