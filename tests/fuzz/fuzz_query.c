/* The query string parser, with every key known. */
#include <stdlib.h>

#include "fuzz.h"
#include "req.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req r;
	char *q = fuzz_str(data, size);

	req_parse(
	    &r, "GET", q, NULL, NULL, REQ_KEYS_INSTALL | REQ_KEYS_REDIRECT);
	req_free(&r);
	free(q);
	return 0;
}
