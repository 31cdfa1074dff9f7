/*
 * libFuzzer target for vault/audit: arbitrary bytes become the content of an
 * audit log (and optionally of its head file), which audit_verify() must
 * judge without crashing; the writer's tail reader (audit_open) gets the same
 * file, and whenever the log verified, appending one record must leave it
 * verifiable.
 *
 * Input: byte 0 holds flags, the rest is the data.
 *   bit 0: verify with the fixed public key of FUZZ_SEED (else no key);
 *   bit 1: the data up to its first NUL byte is the head file, the rest the log;
 *   bit 2: also audit_open() the log and append a record.
 * Files live in a private directory under /dev/shm (or /tmp).
 *
 * Build (fuzz/CMakeLists.txt, with -DSV_FUZZ=ON), from the repository root:
 *   cmake -S . -B build-fuzz -DSV_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DSV_TESTS=OFF
 *   cmake --build build-fuzz -j
 *   LSAN_OPTIONS=suppressions=tests/lsan.supp ./build-fuzz/fuzz/fuzz_audit_verify \
 *     /tmp/corpus fuzz/corpus/fuzz_audit_verify -max_total_time=60
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "audit.h"

/* Seed of the fuzzer's checkpoint key (fuzz/corpus/fuzz_audit_verify is signed with it). */
#define FUZZ_SEED "shadowvault audit fuzz key seed!"

static char dir[64], logpath[128], headpath[160];
static uint8_t pub[crypto_sign_PUBLICKEYBYTES];

/* Remove the private directory and what the runs left in it (at exit; a crash keeps it). */
static void
fuzz_cleanup(void)
{
	struct dirent *e;
	char path[256];
	DIR *d = opendir(dir);

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static void
fuzz_init(void)
{
	uint8_t sk[crypto_sign_SECRETKEYBYTES];

	if (sodium_init() < 0)
		abort();
	crypto_sign_seed_keypair(pub, sk, (const uint8_t *)FUZZ_SEED);
	sodium_memzero(sk, sizeof(sk));
	snprintf(dir, sizeof(dir), "%s/fuzzaudit.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(fuzz_cleanup);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	snprintf(headpath, sizeof(headpath), "%s%s", logpath, AUDIT_HEAD_SUFFIX);
}

static void
put_file(const char *path, const uint8_t *data, size_t len)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
		abort();
}

/* The writer continues a verified log so that it still verifies. */
static void
append_one(int verified)
{
	struct audit_report rep;
	struct audit *a;
	json_t *f;

	if (audit_open(logpath, &a) != 0) {
		if (verified)
			abort(); /* a log that verifies must be appendable */
		return;
	}
	f = json_pack("{s:s,s:s}", "type", "sign", "decision", "allow");
	if (f == NULL || audit_add(a, f) != 0 || audit_commit(a) != 0)
		abort();
	json_decref(f);
	audit_close(a);
	if (verified && audit_verify(logpath, NULL, &rep) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_report rep;
	const uint8_t *nul;
	unsigned flags;
	int r;

	if (dir[0] == '\0')
		fuzz_init();
	if (size == 0)
		return 0;
	flags = data[0];
	data++;
	size--;
	unlink(headpath);
	if ((flags & 2) && (nul = memchr(data, '\0', size)) != NULL) {
		put_file(headpath, data, (size_t)(nul - data));
		size -= (size_t)(nul - data) + 1;
		data = nul + 1;
	}
	put_file(logpath, data, size);
	r = audit_verify(logpath, (flags & 1) ? pub : NULL, &rep);
	if (memchr(rep.reason, '\0', sizeof(rep.reason)) == NULL || (r == 0 && rep.bad_line != 0))
		abort();
	if (flags & 4)
		append_one(r == 0);
	return 0;
}
