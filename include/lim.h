/* Every cap the programs enforce, in one place. */
#ifndef LIM_H
#define LIM_H

#define LIM_QUERY         4096 /* bytes of QUERY_STRING */
#define LIM_PARAMS        64   /* key=value pairs in a query */
#define LIM_COOKIE_HEADER 8192 /* bytes of the Cookie header */
#define LIM_METHOD        16   /* bytes of REQUEST_METHOD */
#define LIM_STATE         128 /* bytes of a state, in the query or the cookie */
#define LIM_STATE_MIN     43
#define LIM_CODE          256 /* bytes of an authorization code */
#define LIM_ERROR         128 /* bytes of an error= value */
#define LIM_TEAM          21  /* T or E and 2..20 more */

#define LIM_CONF_LINE   4096  /* bytes of one config file line */
#define LIM_CONF_FILE   65536 /* bytes of the config file */
#define LIM_CONF_VALUE  2048  /* bytes of one setting */
#define LIM_CLIENT_ID   64
#define LIM_COOKIE_NAME 64
#define LIM_APP_NAME    80 /* characters of SLACK_APP_NAME */

#define LIM_SLACK_BODY   (1024 * 1024) /* bytes of one Slack API answer */
#define LIM_JSON_DEPTH   64   /* nesting of Slack's JSON, answers and events */
#define LIM_SLACK_ID     64   /* bytes of an id Slack gives */
#define LIM_SLACK_TOKEN  1024 /* bytes of a token or refresh token */
#define LIM_SLACK_SCOPES 4096 /* bytes of a scope list */
#define LIM_PAGE         (64 * 1024) /* bytes of one HTML page */
#define LIM_PAGE_NAME    100         /* characters of a name shown on a page */
#define LIM_HEADERS      8192        /* bytes of all response headers */

#define LIM_EVENT_BODY    (1024 * 1024) /* bytes of an Events API request */
#define LIM_EVENT_SKEW    300  /* seconds a signed timestamp may be off */
#define LIM_CHALLENGE     128  /* bytes of url_verification's challenge */
#define LIM_EVENT_BUSY_MS 2000 /* busy timeout: Slack waits 3 s */

/* Bytes of a CGI request's unread body read after the answer (serve.c). */
#define LIM_DRAIN (2 * 1024 * 1024)

#define LIM_BUSY_MS     3000 /* SQLite busy timeout */
#define LIM_RETRY_AFTER "5"  /* seconds, sent with a 503 */

#define LIM_TTL_MAX         3600
#define LIM_TIMEOUT_MAX     120
#define LIM_CONCURRENCY_MAX 256 /* SLACK_OAUTH_CONCURRENCY */

#endif
