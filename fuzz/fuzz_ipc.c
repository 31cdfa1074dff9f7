/*
 * libFuzzer target: the IPC deframer between vaultd's processes, fed
 * arbitrary bytes as if from the other side (both directions), and every
 * frame's body through the decoder the receivers use (ipc_body for an
 * IPC_RESP_BODY, ipc_strs for an IPC_SIGN, ipc_json for the rest).
 */
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum ipc_side sides[] = { IPC_FROM_NET, IPC_FROM_KEY };
	struct ipc_msg m;
	json_t *j;
	size_t i;

	for (i = 0; i < 2; i++) {
		struct evbuffer *b = evbuffer_new();

		if (b == NULL)
			return 0;
		evbuffer_add(b, data, size);
		while (ipc_next(b, sides[i], &m) == 1) {
			const char *body;
			uint32_t status;
			size_t len;

			const char *strs[IPC_SIGN_NSTRS];

			if (m.type == IPC_RESP_BODY)
				(void)ipc_body(&m, &status, &body, &len);
			else if (m.type == IPC_SIGN)
				(void)ipc_strs(&m, strs, IPC_SIGN_NSTRS);
			else if (ipc_json(&m, &j) == 0)
				json_decref(j);
			ipc_msg_free(&m);
		}
		evbuffer_free(b);
	}
	return 0;
}
