/*
 * sandbox: privilege drop and seccomp filter for netproc (see sandbox.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "sandbox.h"
#include "sv_err.h"

/*
 * Open path, an empty directory only root can write to, made (0555, with its
 * parent 0755) if missing.  The checks are on the opened directory, and the
 * chroot goes through that descriptor: nothing can swap the path in between.
 */
static int
open_empty(const char *path, int *out)
{
	char parent[PATH_MAX], *slash;
	struct dirent *e;
	struct stat st;
	size_t n = 0;
	DIR *d;
	int fd, fd2, r;

	if (snprintf(parent, sizeof(parent), "%s", path) >= (int)sizeof(parent) || path[0] != '/')
		return sv_seterr(SV_EINVAL, "chroot directory %s: not an absolute path", path);
	if ((slash = strrchr(parent, '/')) != parent) {
		*slash = '\0';
		if (mkdir(parent, 0755) != 0 && errno != EEXIST)
			return sv_seterr(SV_EIO, "making %s: %s", parent, strerror(errno));
	}
	if (mkdir(path, 0555) != 0 && errno != EEXIST)
		return sv_seterr(SV_EIO, "making %s: %s", path, strerror(errno));
	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return sv_seterr(SV_EIO, "opening %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 022) != 0) {
		close(fd);
		return sv_seterr(SV_ECONFIG,
		    "%s: the network process's root must be a directory only root can write to",
		    path);
	}
	if ((fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0 || (d = fdopendir(fd2)) == NULL) {
		r = sv_seterr(SV_EIO, "reading %s: %s", path, strerror(errno));
		if (fd2 >= 0)
			close(fd2);
		close(fd);
		return r;
	}
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	if (n > 0) {
		close(fd);
		return sv_seterr(SV_ECONFIG,
		    "%s: the network process's root must be empty; it holds %zu entries", path, n);
	}
	*out = fd;
	return 0;
}

int
sandbox_not_dumpable(const char *who)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		return sv_seterr(SV_EINTERNAL, "the %s stays dumpable: %s", who, strerror(errno));
	return 0;
}

int
sandbox_drop(const char *user, const char *root)
{
	struct passwd *pw;
	int fd, r;

	if (geteuid() != 0)
		return sandbox_not_dumpable(
		    "network process"); /* nothing to drop; the seccomp filter still applies */
	if ((pw = getpwnam(user)) == NULL)
		return sv_seterr(SV_ECONFIG, "netproc user \"%s\" does not exist", user);
	if ((r = open_empty(root, &fd)) != 0)
		return r;
	r = fchdir(fd) != 0 || chroot(".") != 0 || chdir("/") != 0 ? errno : 0;
	close(fd);
	if (r != 0)
		return sv_seterr(SV_EIO, "chroot %s: %s", root, strerror(r));
	if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
		return sv_seterr(SV_EIO, "cannot drop to user %s: %s", user, strerror(errno));
	if (setuid(0) == 0)
		return sv_seterr(SV_EINTERNAL, "privileges could be regained after dropping them");
	/* After the drop: a change of uid resets the flag to fs.suid_dumpable, maybe 1. */
	return sandbox_not_dumpable("network process");
}

/* System calls of an event loop serving TLS over sockets it already has. */
static const int allowed[] = {
	SCMP_SYS(read),
	SCMP_SYS(write),
	SCMP_SYS(readv),
	SCMP_SYS(writev),
	SCMP_SYS(recvfrom),
	SCMP_SYS(sendto),
	SCMP_SYS(recvmsg),
	SCMP_SYS(sendmsg),
	SCMP_SYS(close),
	SCMP_SYS(shutdown),
	SCMP_SYS(accept),
	SCMP_SYS(accept4),
	SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait),
	SCMP_SYS(epoll_ctl),
	SCMP_SYS(poll),
	SCMP_SYS(select),
	SCMP_SYS(fcntl),
	SCMP_SYS(ioctl),
	SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt),
	SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	SCMP_SYS(clock_gettime),
	SCMP_SYS(gettimeofday),
	SCMP_SYS(time),
	SCMP_SYS(nanosleep),
	SCMP_SYS(clock_nanosleep),
	SCMP_SYS(getrandom),
	SCMP_SYS(brk),
	SCMP_SYS(mmap),
	SCMP_SYS(munmap),
	SCMP_SYS(mremap),
	SCMP_SYS(mprotect),
	SCMP_SYS(madvise),
	SCMP_SYS(futex),
	SCMP_SYS(getpid),
	SCMP_SYS(gettid),
	SCMP_SYS(rt_sigaction),
	SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigreturn),
	SCMP_SYS(sigaltstack),
	SCMP_SYS(restart_syscall),
	SCMP_SYS(exit),
	SCMP_SYS(exit_group),
	SCMP_SYS(fstat),
	SCMP_SYS(newfstatat),
	SCMP_SYS(lseek),
	SCMP_SYS(pipe2),
	SCMP_SYS(eventfd2),
	SCMP_SYS(sched_yield),
	SCMP_SYS(getuid),
	SCMP_SYS(geteuid),
	SCMP_SYS(prctl),
	SCMP_SYS(sendmmsg),
	SCMP_SYS(tgkill),
	SCMP_SYS(rseq),
	SCMP_SYS(sched_getaffinity),
	SCMP_SYS(membarrier),
};

int
sandbox_seccomp(void)
{
	scmp_filter_ctx ctx;
	size_t i;
	int rc;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return sv_seterr(SV_EIO, "no_new_privs: %s", strerror(errno));
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL)
		return sv_seterr(SV_ENOMEM, "seccomp_init failed");
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0)) != 0) {
			seccomp_release(ctx);
			return sv_seterr(SV_EINTERNAL, "seccomp rule %zu: %s", i, strerror(-rc));
		}
	}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	return rc == 0 ? 0 : sv_seterr(SV_EINTERNAL, "seccomp_load: %s", strerror(-rc));
}
