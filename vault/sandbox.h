/*
 * sandbox: narrowing vaultd's network process after start-up, in the manner
 * of OpenSSH's sandbox-seccomp-filter.c: drop to an unprivileged user (when
 * started as root) inside an empty root directory, forbid new privileges,
 * then allow only the system calls an event loop doing TLS over already open
 * sockets needs.  Anything else kills the process.
 */
#ifndef SV_SANDBOX_H
#define SV_SANDBOX_H

/* Drop to user (when root) and chroot to an empty directory if one exists. */
int sandbox_drop(const char *user);

/* Install the seccomp filter.  After this no file can be opened. */
int sandbox_seccomp(void);

#endif
