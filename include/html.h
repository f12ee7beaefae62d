/* The pages. All HTML goes through html_page(), which escapes every value. */
#ifndef HTML_H
#define HTML_H

#include <stdarg.h>

#include "buf.h"

/* Appends s with & < > " ' escaped. 0 or -1. */
int html_escape(struct buf *, const char *s);

/* Writes a whole page: the fixed frame, title (escaped) as <title> and <h1>,
 * then tmpl, a fixed string in which each "%s" takes the next argument,
 * escaped (NULL as ""), and "%%" is a percent sign. Returns 0 or -1. */
int html_page(struct buf *, const char *title, const char *tmpl, ...);
int html_vpage(struct buf *, const char *title, const char *tmpl, va_list);

#endif
