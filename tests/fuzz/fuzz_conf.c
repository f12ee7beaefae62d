/* The config file parser, and the validators on every value it yields. */
#include <stdlib.h>

#include "conf.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *vals[CONF__MAX], err[512];
	int k;

	if (conf_parse_file("fuzz.conf", (const char *)data, size, vals, err,
		sizeof(err)) == 0)
		for (k = 0; k < CONF__MAX; k++) {
			if (vals[k] != NULL) {
				conf_valid_scopes(vals[k]);
				conf_valid_page_url(vals[k]);
				conf_valid_slack_url(vals[k]);
				conf_valid_cookie_name(vals[k]);
			}
			free(vals[k]);
		}
	return 0;
}
