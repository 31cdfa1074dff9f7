/*
 * libFuzzer target: the vault configuration loader (libconfig + schema) on
 * arbitrary file content.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "vconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[] = "/tmp/fuzz_config.XXXXXX";
	static int fd = -1;
	struct vconf c;

	if (fd < 0 && (fd = mkstemp(path)) < 0)
		return 0;
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	if (vconf_load(path, &c) == 0)
		vconf_free(&c); /* it frees what it took itself on failure */
	return 0;
}
