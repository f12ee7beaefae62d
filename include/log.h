/* One line per request on stderr, the web server's error log. Values are
 * escaped; callers never pass a secret. */
#ifndef LOG_H
#define LOG_H

/* Names the program in every line; prog must outlive the process. */
void log_init(const char *prog);

/* The request's line: outcome ("ok" or a failure reason), HTTP status,
 * team and enterprise ids when known (NULL otherwise), elapsed ms, and an
 * optional detail (NULL for none). */
void log_request(const char *outcome, int status, const char *team,
    const char *enterprise, double ms, const char *detail);

/* A warning outside the request line, such as "auth.test failed:
 * invalid_auth". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Why the program does not run, before it exits (a FastCGI process that
 * cannot start). */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
