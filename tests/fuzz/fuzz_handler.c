/* Both request handlers, with the request's variables from the input:
 * lines "NAME=value" (REQUEST_METHOD, QUERY_STRING, HTTP_COOKIE and any
 * other). Settings that name files come from the fuzzer's own environment,
 * never from the input, so that it cannot point the database elsewhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "fuzz.h"
#include "handlers.h"
#include "serve.h"
#include "slack.h"

#define MAXVARS 16

struct vars {
	char *name[MAXVARS], *value[MAXVARS];
	int n;
};

static const char *
param(void *arg, const char *name)
{
	struct vars *v = arg;
	int i;

	if (strncmp(name, "SLACK_OAUTH_", 12) == 0)
		return NULL;
	for (i = 0; i < v->n; i++)
		if (strcmp(v->name[i], name) == 0)
			return v->value[i];
	return NULL;
}

static struct worker w; /* serve()'s part: one worker for every input */

/* Closes what the handlers opened, at exit (before fuzz_scratch's
 * directory goes). */
static void
cleanup(void)
{
	db_drop(&w.db);
	db_keyfile_free(&w.key);
	if (w.http != NULL)
		w.http_free(w.http);
	slack_cleanup();
}

static void
setup(void)
{
	static int done;

	if (done++)
		return;
	fuzz_scratch();
	if (slack_init() == -1)
		abort();
	atexit(cleanup);
	setenv("SLACK_CLIENT_ID", "111.222", 0);
	setenv("SLACK_CLIENT_SECRET", "fuzz-secret", 0);
	setenv("SLACK_SCOPES", "chat:write", 0);
	/* A closed port: no state the fuzzer makes verifies, but if one did,
	 * the call would fail fast. */
	setenv("SLACK_API_URL", "http://127.0.0.1:9/api/", 0);
	setenv("SLACK_HTTP_TIMEOUT", "1", 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vars v;
	struct ctx c;
	char *text = fuzz_str(data, size), *line, *save = NULL, *eq;
	int i, which;

	setup();
	memset(&v, 0, sizeof(v));
	for (line = strtok_r(text, "\n", &save); line != NULL && v.n < MAXVARS;
	     line = strtok_r(NULL, "\n", &save)) {
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		v.name[v.n] = line;
		v.value[v.n++] = eq + 1;
	}
	for (which = 0; which < 2; which++) {
		memset(&c, 0, sizeof(c));
		c.w = &w;
		c.param = param;
		c.pctx = &v;
		c.outcome = "ok";
		resp_init(&c.resp);
		(which ? handle_redirect : handle_install)(&c);
		/* Every answer has a status and no header holds CR or LF but
		 * at line ends. */
		if (c.resp.status < 200 || c.resp.status > 599)
			abort();
		for (i = 0; i + 1 < (int)c.resp.head.len; i++)
			if ((c.resp.head.p[i] == '\r') !=
			    (c.resp.head.p[i + 1] == '\n'))
				abort();
		resp_free(&c.resp);
	}
	free(text);
	return 0;
}
