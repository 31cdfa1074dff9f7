/*
 * libFuzzer target for the policy loader: arbitrary bytes (as a
 * NUL-terminated string) go to pol_load_string(); a policy that loads is
 * then evaluated with a few fixed requests and with names taken from the
 * input, and the input also goes to pol_name_normalize().  Catches crashes,
 * leaks on error paths and reads past buffers (build with ASan).
 *
 * Build (not part of CMake), from the repository root:
 *   clang-14 -fsanitize=fuzzer,address -I common -I policies fuzz/fuzz_policy.c
 *     policies/[all .c files] common/[all .c files] $(pkg-config --cflags --libs
 *     libconfig jansson openssl libsodium) -o /tmp/fuzz_policy
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);

/*
 * libconfig 1.5's scanner leaks the string it is building on some syntax
 * errors (allocated in strbuf_append or libconfig_yylex), e.g.
 * `a = [ "x" ]k "y" ];`; reproduced with config_read_string() and
 * config_destroy() alone.  Not ours and a few bytes per refused reload, so
 * LeakSanitizer ignores exactly those two allocation sites.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:strbuf_append\nleak:libconfig_yylex\n";
}

static void
eval_some(const struct pol *p, const char *text)
{
	static const char *const shadows[] = { "web1", "a", "web2", "" };
	const char *names[3] = { "master.test", "*.master.test", text };
	struct pol_request req = { NULL, "le-prod", POL_NEW_ORDER, names, 3 };
	struct pol_decision d;
	unsigned pm, burst;
	size_t i;
	int op;

	for (i = 0; i < sizeof(shadows) / sizeof(shadows[0]); i++) {
		req.shadow = shadows[i];
		for (op = 0; op < POL_OP_COUNT; op++) {
			req.op = (enum pol_op)op;
			if (pol_eval(p, &req, &d) != 0 || (d.allow && pol_op_admin_only(req.op)))
				abort(); /* only malformed calls may fail; admin ops never pass */
		}
		if (pol_eval_bundle(p, shadows[i], text, &d) != 0)
			abort();
		(void)pol_rate(p, shadows[i], &pm, &burst);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, norm[POL_NAME_BUF];
	struct pol *p = NULL;

	if (size > POL_FILE_MAX)
		return 0;
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)pol_name_normalize(text, norm, sizeof(norm));
	if (pol_load_string(text, "fuzz.conf", &p) == 0) {
		if (p == NULL)
			abort(); /* success must yield an object */
		eval_some(p, text);
		pol_free(p);
	} else if (p != NULL) {
		abort(); /* failure must yield none */
	}
	free(text);
	return 0;
}
