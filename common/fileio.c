/*
 * File helpers (see fileio.h).  Touches only the paths it is given and a
 * temporary sibling "path.tmp.XXXXXX" while writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "sv_err.h"

static int
read_fd(int fd, const char *path, uint8_t *buf, size_t want)
{
	size_t got = 0;
	ssize_t n;

	while (got < want) {
		n = read(fd, buf + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return sv_seterr(SV_EIO, "%s: read: %s", path, strerror(errno));
		if (n == 0)
			return sv_seterr(SV_EIO, "%s: file changed while reading", path);
		got += (size_t)n;
	}
	return 0;
}

/* Open a regular file for reading and return its size, checked against max. */
static int
open_capped(const char *path, size_t max, int *fdp, size_t *size, struct stat *st)
{
	int fd;

	*fdp = -1;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return sv_seterr(
		    errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return sv_seterr(SV_EIO, "%s: not a regular file", path);
	}
	if ((uintmax_t)st->st_size > max) {
		close(fd);
		return sv_seterr(SV_ETOOBIG, "%s: larger than %zu bytes", path, max);
	}
	*fdp = fd;
	*size = (size_t)st->st_size;
	return 0;
}

int
sv_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t size;
	int fd, r;

	*out = NULL;
	*len = 0;
	if ((r = open_capped(path, max, &fd, &size, &st)) != 0)
		return r;
	if ((buf = malloc(size + 1)) == NULL) {
		close(fd);
		return sv_seterr(SV_ENOMEM, "%s: out of memory", path);
	}
	if ((r = read_fd(fd, path, buf, size)) != 0) {
		free(buf);
		close(fd);
		return r;
	}
	close(fd);
	buf[size] = '\0';
	*out = buf;
	*len = size;
	return 0;
}

int
sv_read_secret_file(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	size_t size;
	char *buf;
	int fd, r;

	*out = NULL;
	*len = 0;
	if ((r = open_capped(path, max, &fd, &size, &st)) != 0)
		return r;
	/* Owner-only, and the owner is this user or root (else another user sets the secret). */
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		close(fd);
		return sv_seterr(SV_EPIN, "%s: readable by others (mode %03o); chmod go-rwx it",
		    path, (unsigned)(st.st_mode & 0777));
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		close(fd);
		return sv_seterr(SV_EPIN,
		    "%s: owned by uid %ld, not by this user (uid %ld) or root", path,
		    (long)st.st_uid, (long)geteuid());
	}
	if ((buf = sodium_malloc(size + 1)) == NULL) {
		close(fd);
		return sv_seterr(SV_ENOMEM, "%s: out of guarded memory", path);
	}
	r = read_fd(fd, path, (uint8_t *)buf, size);
	close(fd);
	if (r != 0) {
		sodium_free(buf);
		return r;
	}
	while (size > 0 && (buf[size - 1] == '\n' || buf[size - 1] == '\r'))
		size--;
	buf[size] = '\0';
	if (size == 0 || memchr(buf, '\0', size) != NULL) {
		sodium_free(buf);
		return sv_seterr(SV_EPIN, "%s: empty or holds a NUL byte", path);
	}
	*out = buf;
	*len = size;
	return 0;
}

int
sv_pathf(char *dst, size_t n, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(dst, n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= n) {
		dst[0] = '\0';
		return sv_seterr(SV_EINVAL, "path too long");
	}
	return 0;
}

int
sv_fsync_parent(const char *path)
{
	char tmp[PATH_MAX];
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return sv_seterr(SV_EINVAL, "%s: path too long", path);
	if ((fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return sv_seterr(SV_EIO, "%s: open directory: %s", path, strerror(errno));
	if (fsync(fd) != 0)
		r = sv_seterr(SV_EIO, "%s: fsync directory: %s", path, strerror(errno));
	close(fd);
	return r;
}

static int
write_all(int fd, const char *path, const uint8_t *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return sv_seterr(SV_EIO, "%s: write: %s", path, strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Set mode (the umask may have taken bits away), write everything, fsync. */
static int
fill(int fd, const char *path, const void *data, size_t len, mode_t mode)
{
	int r;

	if (fchmod(fd, mode) != 0)
		return sv_seterr(SV_EIO, "%s: chmod: %s", path, strerror(errno));
	if ((r = write_all(fd, path, data, len)) != 0)
		return r;
	if (fsync(fd) != 0)
		return sv_seterr(SV_EIO, "%s: fsync: %s", path, strerror(errno));
	return 0;
}

int
sv_write_file_new(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd, r;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)) < 0)
		return sv_seterr(SV_EIO, "%s: create: %s", path, strerror(errno));
	r = fill(fd, path, data, len, mode);
	if (close(fd) != 0 && r == 0)
		r = sv_seterr(SV_EIO, "%s: close: %s", path, strerror(errno));
	if (r != 0)
		unlink(path);
	return r;
}

int
sv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return sv_seterr(SV_EINVAL, "%s: path too long", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return sv_seterr(SV_EIO, "%s: create temp file: %s", path, strerror(errno));
	if ((r = fill(fd, tmp, data, len, mode)) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		r = sv_seterr(SV_EIO, "%s: close: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		r = sv_seterr(SV_EIO, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	return sv_fsync_parent(path);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int
sv_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t i, n;

	if ((n = strlen(path)) == 0 || n >= sizeof(tmp))
		return sv_seterr(SV_EINVAL, "directory path empty or too long");
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return sv_seterr(SV_EIO, "%s: mkdir: %s", tmp, strerror(errno));
		tmp[i] = path[i];
	}
	return 0;
}
