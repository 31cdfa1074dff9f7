/*
 * vaultd: the supervisor.  Loads the configuration, binds the two listening
 * sockets, writes the pid file, and runs the key process and the network
 * process from a table, restarting both when either exits.  It holds no
 * secret and opens neither the token nor the database.
 *
 * Signals: SIGHUP is passed to the key process (reload policies); SIGTERM
 * and SIGINT drain: the network process stops accepting and finishes what
 * is in flight, then the key process writes its last audit checkpoint.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "fileio.h"
#include "log.h"
#include "restarts.h"
#include "sv_err.h"
#include "vaultd.h"

#define DRAIN_SECONDS 15 /* how long a draining child may take */

static volatile sig_atomic_t got_term, got_hup, got_chld;

static const char *const USAGE =
    "usage: vaultd [-c FILE] [-f] [-d]\n"
    "  -c, --config FILE  configuration (default: $SHADOWVAULT_CONFIG, then\n"
    "                     " SV_DEFAULT_CONFIG ", else embedded defaults: ./state)\n"
    "  -f, --foreground   stay in the foreground and log to stderr\n"
    "  -d, --debug        log debug messages\n"
    "  -h, --help, -V, --version\n"
    "See vaultd(8).\n";

struct child {
	const char *name;
	int (*run)(const struct vconf *, const struct vaultd_fds *);
	pid_t pid;
	int fd; /* its end of the socketpair, kept until it is forked */
};

static void
on_signal(int sig)
{
	if (sig == SIGTERM || sig == SIGINT)
		got_term = 1;
	else if (sig == SIGHUP)
		got_hup = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
}

/* Bind "host:port" and listen; returns the fd or a negative SV code. */
static int
bind_listen(const char *spec)
{
	char host[128], *colon;
	struct addrinfo hints, *ai = NULL;
	int fd, one = 1, rc;

	snprintf(host, sizeof(host), "%s", spec);
	if ((colon = strrchr(host, ':')) == NULL)
		return sv_seterr(SV_ECONFIG, "listen address \"%s\" must be host:port", spec);
	*colon = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai)) != 0)
		return sv_seterr(SV_ECONFIG, "listen address \"%s\": %s", spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/*
	 * TCP_NODELAY (inherited by accepted sockets): an answer is written as
	 * two TLS records (headers, body); with Nagle and delayed ACKs the second
	 * waited about 40 ms on every request (measured by bench/issuance.sh).
	 */
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
		rc = sv_seterr(SV_EIO, "listen on %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	return fd;
}

static void
spawn(struct child *c, const struct vconf *cfg, struct vaultd_fds *fds, const int mine[2],
    const int other[2])
{
	pid_t pid = fork();

	if (pid < 0) {
		sv_err("fork %s: %s", c->name, strerror(errno));
		c->pid = 0;
		return;
	}
	if (pid == 0) {
		char prog[64];
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGCHLD, SIG_DFL);
		snprintf(prog, sizeof(prog), "vaultd[%s]", c->name);
		sv_log_setprog(prog);
		/* "vaultd-keyproc" / "vaultd-netproc" in ps and /proc/PID/comm. */
		snprintf(prog, sizeof(prog), "vaultd-%s", c->name);
		prctl(PR_SET_NAME, prog, 0, 0, 0);
		/* Close the peer's ends, else this child would never see them close. */
		close(other[0]);
		close(other[1]);
		fds->ipc = mine[0];
		fds->tls = mine[1];
		/* exit(), not _exit(): sanitizer builds check the child for leaks at exit. */
		exit(c->run(cfg, fds));
	}
	c->pid = pid;
}

/*
 * Start both children joined by fresh socketpairs: the request channel, and
 * the channel for TLS handshake signatures (used when the TLS key is in the
 * token).
 */
static int
start_pair(struct child *kids, const struct vconf *cfg, struct vaultd_fds *fds)
{
	int sp[2], tp[2], i;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
		return sv_seterr(SV_EIO, "socketpair: %s", strerror(errno));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tp) != 0) {
		close(sp[0]);
		close(sp[1]);
		return sv_seterr(SV_EIO, "socketpair: %s", strerror(errno));
	}
	for (i = 0; i < 2; i++) {
		const int mine[2] = { sp[i], tp[i] }, other[2] = { sp[1 - i], tp[1 - i] };

		spawn(&kids[i], cfg, fds, mine, other);
		if (kids[i].pid == 0)
			break;
	}
	close(sp[0]);
	close(sp[1]);
	close(tp[0]);
	close(tp[1]);
	return kids[0].pid && kids[1].pid ? 0 : sv_seterr(SV_EIO, "cannot start children");
}

/*
 * A child that exits with one of these found a problem a restart cannot fix
 * (configuration, HSM, PIN, files): vaultd stops with the same status.
 */
static int
fatal_status(int st)
{
	return WIFEXITED(st) &&
	    (WEXITSTATUS(st) == SV_EXIT_USAGE || WEXITSTATUS(st) == SV_EXIT_CONFIG ||
		WEXITSTATUS(st) == SV_EXIT_HSM || WEXITSTATUS(st) == SV_EXIT_NOTFOUND);
}

static int fatal_exit; /* status of a child's unrecoverable failure, or 0 */

/* Reap exited children; returns how many of ours exited, logging why. */
static int
reap(struct child *kids)
{
	int st, i, n = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (i = 0; i < 2; i++) {
			if (kids[i].pid != pid)
				continue;
			kids[i].pid = 0;
			n++;
			if (fatal_status(st) && fatal_exit == 0)
				fatal_exit = WEXITSTATUS(st);
			if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
				sv_warn("%s exited with status %d", kids[i].name, WEXITSTATUS(st));
			else if (WIFSIGNALED(st))
				sv_warn("%s killed by signal %d", kids[i].name, WTERMSIG(st));
		}
	}
	return n;
}

/* Wait until child i is gone or the deadline passes (then SIGKILL it). */
static void
wait_gone(struct child *kids, int i, int seconds)
{
	time_t end = time(NULL) + seconds;

	while (kids[i].pid > 0 && time(NULL) < end) {
		struct timespec ts = { 0, 50 * 1000000L };

		nanosleep(&ts, NULL);
		reap(kids);
	}
	if (kids[i].pid > 0) {
		sv_warn("%s did not stop in %d s: killing it", kids[i].name, seconds);
		kill(kids[i].pid, SIGKILL);
		waitpid(kids[i].pid, NULL, 0);
		kids[i].pid = 0;
	}
}

/* Stop netproc first (drain), then keyproc (last checkpoint). */
static void
stop_pair(struct child *kids, int sig)
{
	if (kids[1].pid > 0)
		kill(kids[1].pid, sig);
	wait_gone(kids, 1, DRAIN_SECONDS);
	if (kids[0].pid > 0)
		kill(kids[0].pid, SIGTERM);
	wait_gone(kids, 0, DRAIN_SECONDS);
}

static int
supervise(struct child *kids, const struct vconf *cfg, struct vaultd_fds *fds)
{
	struct restarts failures = { 0 };
	sigset_t empty;

	sigemptyset(&empty);
	if (start_pair(kids, cfg, fds) != 0)
		return SV_EXIT_FAIL;
	sv_info("started: API on %s, enrolment on %s", cfg->listen, cfg->enroll_listen);
	for (;;) {
		sigsuspend(&empty);
		if (got_hup) {
			got_hup = 0;
			if (kids[0].pid > 0)
				kill(kids[0].pid, SIGHUP);
		}
		if (got_term) {
			sv_info("stopping: draining requests");
			stop_pair(kids, SIGTERM);
			return SV_EXIT_OK;
		}
		if (!got_chld)
			continue;
		got_chld = 0;
		if (reap(kids) == 0)
			continue;
		/* One child is gone: the pair shares one channel, restart both. */
		stop_pair(kids, SIGKILL);
		if (fatal_exit != 0) {
			sv_err("not restarting: the failure above needs fixing first");
			return fatal_exit;
		}
		if (!restarts_allow(&failures, sv_mono_now())) {
			sv_err("children failed %d times within %d s (%d restarts): giving up",
			    RESTART_MAX + 1, RESTART_WINDOW, RESTART_MAX);
			return SV_EXIT_FAIL;
		}
		sv_warn("restarting the key and network processes");
		if (start_pair(kids, cfg, fds) != 0)
			return SV_EXIT_FAIL;
	}
}

static void
setup_signals(void)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Handled only inside sigsuspend(): no race between test and wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, NULL);
}

static int
write_pid(const char *path)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	return sv_write_file_atomic(path, buf, strlen(buf), 0644);
}

static void
parse_args(int argc, char **argv, const char **config, int *fg, int *debug)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "c:fdhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*config = optarg;
			break;
		case 'f':
			*fg = 1;
			break;
		case 'd':
			*debug = 1;
			break;
		case 'h':
			fputs(USAGE, stdout);
			exit(SV_EXIT_OK);
		case 'V':
			printf("vaultd %s\n", SV_VERSION);
			exit(SV_EXIT_OK);
		default:
			fputs(USAGE, stderr);
			exit(SV_EXIT_USAGE);
		}
	}
	if (optind != argc) {
		fputs(USAGE, stderr);
		exit(SV_EXIT_USAGE);
	}
}

int
main(int argc, char **argv)
{
	struct child kids[2] = {
		{ "keyproc", keyproc_main, 0, -1 },
		{ "netproc", netproc_main, 0, -1 },
	};
	struct vaultd_fds fds = { -1, -1, -1, -1 };
	const char *config = NULL;
	struct vconf cfg;
	int fg = 0, debug = 0, r;

	parse_args(argc, argv, &config, &fg, &debug);
	sv_log_init("vaultd", !fg, debug ? LOG_DEBUG : LOG_INFO);
	if (sodium_init() < 0)
		return SV_EXIT_FAIL;
	if (config == NULL)
		config = vconf_default_path();
	if ((r = vconf_load(config, &cfg)) != 0) {
		fprintf(stderr, "vaultd: error: %s\n", sv_errmsg(r));
		return sv_exit_code(r);
	}
	if (access(cfg.db_path, F_OK) != 0) {
		fprintf(stderr, "vaultd: error: %s is not initialised: run vaultctl init\n",
		    cfg.state_dir);
		return SV_EXIT_CONFIG;
	}
	if ((fds.listen = bind_listen(cfg.listen)) < 0 ||
	    (fds.enroll = bind_listen(cfg.enroll_listen)) < 0) {
		r = fds.listen < 0 ? fds.listen : fds.enroll;
		fprintf(stderr, "vaultd: error: %s\n", sv_errmsg(r));
		return sv_exit_code(r);
	}
	if (!fg && daemon(0, 0) != 0) {
		fprintf(stderr, "vaultd: error: daemon: %s\n", strerror(errno));
		return SV_EXIT_FAIL;
	}
	if ((r = write_pid(cfg.pid_file)) != 0)
		sv_warn("pid file: %s", sv_errmsg(r));
	setup_signals();
	r = supervise(kids, &cfg, &fds);
	unlink(cfg.pid_file);
	vconf_free(&cfg);
	return r;
}
