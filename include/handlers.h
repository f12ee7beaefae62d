/* The two endpoints. Each answers one request in ctx (see serve.h). */
#ifndef HANDLERS_H
#define HANDLERS_H

#include "serve.h"

/* GET/HEAD /slack/install: issues a state, sets its cookie, and answers
 * with the "Add to Slack" page or a 302 to Slack. */
void handle_install(struct ctx *);

/* GET /slack/oauth_redirect: checks the state against its cookie,
 * consumes it, exchanges the code, stores the installation. */
void handle_redirect(struct ctx *);

#endif
