/* A growable text buffer with a hard size cap: building request bodies and results. */
#ifndef WEFT_BUF_H
#define WEFT_BUF_H

#include <stddef.h>

#define BUF_MAX (4u << 20) /* nothing the plugin builds comes near 4 MiB */

struct buf {
	char *p; /* NUL-terminated while !failed */
	size_t len;
	size_t cap;
	int failed; /* out of memory or over BUF_MAX: every later append is ignored */
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_add(struct buf *b, const char *s, size_t n);
void buf_str(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal, quotes included. */
void buf_json_str(struct buf *b, const char *s);

#endif
