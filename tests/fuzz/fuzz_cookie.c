/* The Cookie header parser. */
#include <stdlib.h>

#include "fuzz.h"
#include "req.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct req r;
	char *h = fuzz_str(data, size);

	req_parse(&r, "GET", "", h, "slack-app-oauth-state", 0);
	req_free(&r);
	free(h);
	return 0;
}
