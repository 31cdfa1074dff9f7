/*
 * Files: capped reads, secret reads into guarded memory, and atomic writes
 * (temp file in the same directory, fsync, rename, fsync of the directory),
 * so a crash never leaves a half-written file behind.
 */
#ifndef SV_FILEIO_H
#define SV_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Read a whole regular file of at most max bytes.  *out is malloc'd with a
 * spare NUL after *len bytes: caller frees.  Errors name the path.
 */
int sv_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/*
 * Read a secret (a PIN) of at most max bytes into sodium_malloc() memory,
 * NUL-terminated, without a trailing newline.  Refuses files that others
 * (not owner or group) may read.  Caller frees with sodium_free().
 */
int sv_read_secret_file(const char *path, size_t max, char **out, size_t *len);

/* Write data atomically to path with mode (temp file, fsync, rename, dir fsync). */
int sv_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/*
 * Create path (it must not exist), write data, fsync it.  No rename: for a
 * file inside a new directory that is itself published by one rename(2)
 * after an fsync of that directory (sv_fsync_parent of the file).
 */
int sv_write_file_new(const char *path, const void *data, size_t len, mode_t mode);

/* Create a directory and its parents with mode (existing ones are left alone). */
int sv_mkdir_p(const char *path, mode_t mode);

/* snprintf into a path buffer; SV_EINVAL "path too long" instead of truncating. */
int sv_pathf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* fsync the directory that holds path. */
int sv_fsync_parent(const char *path);

#endif
