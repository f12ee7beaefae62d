/* The three endpoints. Each answers one request in ctx (see serve.h). */
#ifndef HANDLERS_H
#define HANDLERS_H

#include "serve.h"

/* GET/HEAD /slack/install: issues a state, sets its cookie, and answers
 * with the "Add to Slack" page or a 302 to Slack. */
void handle_install(struct ctx *);

/* GET /slack/oauth_redirect: checks the state against its cookie,
 * consumes it, exchanges the code, stores the installation. */
void handle_redirect(struct ctx *);

/* POST /slack/events: verifies Slack's signature over the raw body, then
 * answers url_verification and deletes what app_uninstalled and
 * tokens_revoked revoke. */
void handle_events(struct ctx *);

#endif
