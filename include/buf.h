/* A growable byte buffer with a hard cap. Always NUL-terminated. */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>

struct buf {
	char *p;    /* the bytes, NUL-terminated; NULL until the first add */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* cap on len; an add past it fails */
};

/* Sets up an empty buffer that will refuse to grow past max bytes. */
void buf_init(struct buf *, size_t max);

/* Appends n bytes. Returns 0, or -1 (buffer unchanged) past max or out of
 * memory. */
int buf_add(struct buf *, const void *, size_t n);
int buf_puts(struct buf *, const char *);
int buf_putc(struct buf *, char);

/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *);

/* Frees the memory; buf_wipe zeroes it first (for secrets). */
void buf_free(struct buf *);
void buf_wipe(struct buf *);

/* Returns the contents (never NULL: "" when empty). */
const char *buf_str(const struct buf *);

#endif
