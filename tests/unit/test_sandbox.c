/*
 * vault/sandbox.c: the network process's sandbox.  The seccomp filter lets an
 * event loop's system calls through and kills the process at anything else
 * (opening a file, making a socket, running a program).  As root,
 * sandbox_drop() chroots to an empty directory it makes and drops to an
 * unprivileged user for good; it refuses a root directory that is not empty,
 * that others can write to, or that is a symbolic link.  Each case runs in a
 * child process, which reports by its exit status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sandbox.h"
#include "sv_err.h"

/* Run fn in a child; its wait status. */
static int
in_child(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status = -1;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn(arg)); /* _exit: no atexit handlers (LeakSanitizer's) under the filter */
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void
assert_exited(int status, int code)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), code);
}

static void
assert_killed_by_sigsys(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* The filter, then what an event loop does: time, its pid, a pipe's ends. */
static int
allowed(void *arg)
{
	struct timespec ts;
	int p[2];
	char c = 'x';

	(void)arg;
	if (sandbox_seccomp() != 0)
		return 2;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0 || getpid() <= 0)
		return 3;
	if (pipe2(p, O_CLOEXEC) != 0 || write(p[1], &c, 1) != 1 || read(p[0], &c, 1) != 1)
		return 4;
	close(p[0]);
	close(p[1]);
	return 0;
}

/* The filter, then the forbidden call named by arg: the child must not reach the return. */
static int
forbidden(void *arg)
{
	const char *what = arg;
	char *const argv[] = { "true", NULL };

	if (sandbox_seccomp() != 0)
		return 2;
	if (strcmp(what, "open") == 0)
		(void)open("/dev/null", O_RDONLY | O_CLOEXEC);
	else if (strcmp(what, "socket") == 0)
		(void)socket(AF_INET, SOCK_STREAM, 0);
	else if (strcmp(what, "execve") == 0)
		(void)execve("/bin/true", argv, NULL);
	else if (strcmp(what, "setuid") == 0 && setuid(0) == 0)
		return 6;
	return 5;
}

static void
test_seccomp(void **state)
{
	(void)state;
	assert_exited(in_child(allowed, NULL), 0);
	assert_killed_by_sigsys(in_child(forbidden, "open"));
	assert_killed_by_sigsys(in_child(forbidden, "socket"));
	assert_killed_by_sigsys(in_child(forbidden, "execve"));
	assert_killed_by_sigsys(in_child(forbidden, "setuid"));
}

struct drop {
	const char *user;
	const char *root;
};

/* sandbox_drop(), then what the child can see and be: exit 0 if all as it should. */
static int
dropped(void *arg)
{
	const struct drop *d = arg;
	struct passwd *pw = getpwnam(d->user);
	struct dirent *e;
	DIR *dir;
	int n = 0;

	if (pw == NULL || sandbox_drop(d->user, d->root) != 0)
		return 2;
	if (getuid() != pw->pw_uid || geteuid() != pw->pw_uid || getgid() != pw->pw_gid ||
	    getegid() != pw->pw_gid || getgroups(0, NULL) != 0)
		return 3;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return 4;
	/* The root is the empty directory: no /etc, no way out. */
	if (access("/etc/passwd", F_OK) == 0 || access("/../../etc/passwd", F_OK) == 0)
		return 5;
	if ((dir = opendir("/")) == NULL)
		return 6;
	while ((e = readdir(dir)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(dir);
	return n == 0 ? 0 : 7;
}

/* sandbox_drop() must refuse: exit with the negated error code (never chrooted). */
static int
refused(void *arg)
{
	const struct drop *d = arg;
	int r = sandbox_drop(d->user, d->root);

	if (r == 0)
		return 99;
	fprintf(stderr, "(expected) %s\n", sv_errmsg(r));
	return -r;
}

static void
test_drop(void **state)
{
	char base[] = "/tmp/sv-sandbox.XXXXXX", root[64], other[64], file[80];
	struct drop d = { "nobody", root };
	struct stat st;

	(void)state;
	if (geteuid() != 0)
		skip(); /* only root drops privileges; CI runs as root */
	assert_non_null(mkdtemp(base));
	snprintf(root, sizeof(root), "%s/run/empty", base);
	/* Made with its parent, then used. */
	assert_exited(in_child(dropped, &d), 0);
	assert_int_equal(lstat(root, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0555);
	/* Used again as it is. */
	assert_exited(in_child(dropped, &d), 0);
	/* Not empty. */
	snprintf(file, sizeof(file), "%s/x", root);
	assert_int_equal(chmod(root, 0755), 0);
	assert_int_equal(close(open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), 0);
	assert_exited(in_child(refused, &d), -SV_ECONFIG);
	assert_int_equal(unlink(file), 0);
	/* Others may write to it. */
	assert_int_equal(chmod(root, 0777), 0);
	assert_exited(in_child(refused, &d), -SV_ECONFIG);
	/* A symbolic link to an empty directory. */
	snprintf(other, sizeof(other), "%s/run/other", base);
	assert_int_equal(rename(root, other), 0);
	assert_int_equal(chmod(other, 0555), 0);
	assert_int_equal(symlink(other, root), 0);
	assert_exited(in_child(refused, &d), -SV_EIO);
	/* An unknown user. */
	assert_int_equal(unlink(root), 0);
	assert_int_equal(rename(other, root), 0);
	d.user = "no-such-user-sv";
	assert_exited(in_child(refused, &d), -SV_ECONFIG);
	/* A relative root. */
	d.user = "nobody";
	d.root = "run/empty";
	assert_exited(in_child(refused, &d), -SV_EINVAL);
	assert_int_equal(rmdir(root), 0);
	snprintf(file, sizeof(file), "%s/run", base);
	assert_int_equal(rmdir(file), 0);
	assert_int_equal(rmdir(base), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seccomp),
		cmocka_unit_test(test_drop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
