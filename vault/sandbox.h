/*
 * sandbox: narrowing vaultd's network process after start-up, in the manner
 * of OpenSSH's sandbox-seccomp-filter.c: drop to an unprivileged user (when
 * started as root) inside an empty root directory, forbid new privileges,
 * then allow only the system calls an event loop doing TLS over already open
 * sockets needs.  Anything else kills the process.
 */
#ifndef SV_SANDBOX_H
#define SV_SANDBOX_H

/* The network process's root directory when vaultd starts as root. */
#define SANDBOX_ROOT "/run/shadowvault/empty"

/*
 * When root: chroot to root, an empty directory only root can write to (made,
 * 0555, with its parent, if missing; SV_ECONFIG if it is not empty or others
 * can write to it), then drop to user for good.  Either way, then, not
 * dumpable (no core, no ptrace by the same user).
 */
int sandbox_drop(const char *user, const char *root);

/*
 * Not dumpable (no core file, no ptrace by the same user's other processes),
 * checked; who names the process in the error.  Call it after any change of
 * uid, which resets the flag to fs.suid_dumpable.
 */
int sandbox_not_dumpable(const char *who);

/* Install the seccomp filter.  After this no file can be opened. */
int sandbox_seccomp(void);

#endif
