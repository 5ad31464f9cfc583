/* Reading JSON: a thin layer over jsmn (kept private to json.c). Values are addressed by
 * token index; every lookup is bounded by the token count. */
#ifndef WEFT_JSON_H
#define WEFT_JSON_H

#include <stddef.h>

enum json_type { JSON_NONE = 0, JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_PRIMITIVE };

struct json {
	const char *s;
	size_t len;
	void *tok; /* jsmntok_t[] */
	int n;
};

#define JSON_MAX_TOKENS 200000

/* Parses one JSON document that must be a single object. 0, or -1 with a reason in err. */
int json_parse(struct json *j, const char *s, size_t len, char *err, size_t errlen);
void json_free(struct json *j);

enum json_type json_type(const struct json *j, int t);
/* The value of key in object obj, or -1. */
int json_get(const struct json *j, int obj, const char *key);
/* Element i of array arr, or -1. */
int json_at(const struct json *j, int arr, int i);
/* Number of elements (array) or keys (object); 0 for scalars. */
int json_count(const struct json *j, int t);
/* The raw text of a value: its bytes from start to end (strings without their quotes). */
void json_span(const struct json *j, int t, const char **start, size_t *len);
/* The raw text of any value including a string's quotes: what to splice into other JSON. */
void json_raw(const struct json *j, int t, const char **start, size_t *len);
/* A string value, unescaped into out (NUL-terminated). -1 if not a string or too long. */
int json_str(const struct json *j, int t, char *out, size_t cap);
/* An integer value. -1 if not an integer number. */
int json_long(const struct json *j, int t, long *out);
/* Convenience: the string at key, or -1. */
int json_get_str(const struct json *j, int obj, const char *key, char *out, size_t cap);

#endif
