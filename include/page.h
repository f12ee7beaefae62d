/* Answers both endpoints give: a page with a status, and the common
 * failures. Each sets the status, the outcome and the log detail. */
#ifndef PAGE_H
#define PAGE_H

#include "serve.h"

/* Replaces the body with a page (see html_page) and sets status. */
void page(struct ctx *, int status, const char *title, const char *tmpl, ...);

/* 500 "not configured"; detail names the key or file, never a value. */
void page_not_configured(struct ctx *, const char *detail);

/* 405 with Allow: allow. */
void page_method(struct ctx *, const char *allow);

/* 500 for an internal failure, or 503 with Retry-After when busy. */
void page_unavailable(struct ctx *, int busy, const char *detail);

/* Copies s into the ctx's detail (truncating). */
void ctx_detail(struct ctx *, const char *s);

#endif
