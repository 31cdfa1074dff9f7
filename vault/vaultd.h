/*
 * vaultd's processes.  The supervisor (vaultd.c) binds the listening
 * sockets, then runs two children from a table, joined by a socketpair:
 *
 *   keyproc  owns the PKCS#11 session, the state database, the audit log
 *            and the policies; checks and signs; serves the admin socket.
 *   netproc  terminates TLS and HTTP, authenticates shadows by client
 *            certificate and turns requests into small typed IPC messages.
 *            No PIN, no PKCS#11, no database; unprivileged and sandboxed.
 *
 * If either child exits, the supervisor stops the other and starts both
 * again (a bounded number of times per minute); see SECURITY.md.
 */
#ifndef SV_VAULTD_H
#define SV_VAULTD_H

#include "vconf.h"

/*
 * Exit status of a child that saw its peer break the IPC protocol.  Not one
 * of the statuses that stop vaultd (2 to 5: usage, configuration, HSM, not
 * found): the supervisor starts a new pair, as SECURITY.md says.
 */
#define VAULTD_EXIT_PEER 9

struct vaultd_fds {
	int ipc;    /* this child's end of the socketpair */
	int tls;    /* TLS handshake signatures, when the TLS key is in the token */
	int listen; /* mTLS API listener (netproc only) */
	int enroll; /* enrolment listener (netproc only) */
};

/* Run the key process; returns its exit status. */
int keyproc_main(const struct vconf *cfg, const struct vaultd_fds *fds);

/* Run the network process; returns its exit status. */
int netproc_main(const struct vconf *cfg, const struct vaultd_fds *fds);

#endif
