#define JSMN_STATIC
#define JSMN_STRICT
#include <jsmn.h>

#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK(j) ((jsmntok_t *)(j)->tok)

/* The index just past t's subtree. */
static int skip(const struct json *j, int t)
{
	const jsmntok_t *tok = TOK(j);
	int pending = 1;
	while (pending > 0 && t < j->n) {
		pending += tok[t].size;
		pending--;
		t++;
	}
	return t;
}

/* jsmn's strict mode still takes "tru" or "1.2.3" for a primitive: check them fully. */
/* Advances *i over a run of decimal digits; returns how many there were. */
static size_t skip_digits(const char *s, size_t n, size_t *i)
{
	size_t start = *i;
	while (*i < n && s[*i] >= '0' && s[*i] <= '9')
		(*i)++;
	return *i - start;
}

static int valid_primitive(const char *s, size_t n)
{
	if ((n == 4 && !memcmp(s, "true", 4)) || (n == 5 && !memcmp(s, "false", 5)) ||
	    (n == 4 && !memcmp(s, "null", 4)))
		return 1;
	size_t i = 0;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n)
		return 0;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		return 0;
	}
	if (i < n && s[i] == '.') {
		i++;
		if (!skip_digits(s, n, &i))
			return 0;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!skip_digits(s, n, &i))
			return 0;
	}
	return i == n;
}

int json_parse(struct json *j, const char *s, size_t len, char *err, size_t errlen)
{
	memset(j, 0, sizeof(*j));
	j->s = s;
	j->len = len;
	if (memchr(s, '\0', len)) {
		snprintf(err, errlen, "a NUL byte in the JSON text");
		return -1;
	}
	jsmn_parser p;
	jsmn_init(&p);
	int n = jsmn_parse(&p, s, len, NULL, 0);
	if (n == JSMN_ERROR_PART) {
		snprintf(err, errlen, "the JSON text ends early");
		return -1;
	}
	if (n < 0) {
		snprintf(err, errlen, "invalid JSON at byte %u", p.pos);
		return -1;
	}
	if (n == 0) {
		snprintf(err, errlen, "empty input, expected a JSON object");
		return -1;
	}
	if (n > JSON_MAX_TOKENS) {
		snprintf(err, errlen, "JSON text has %d values, more than the %d allowed", n, JSON_MAX_TOKENS);
		return -1;
	}
	jsmntok_t *tok = calloc((size_t)n, sizeof(*tok));
	if (!tok) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	jsmn_init(&p);
	int got = jsmn_parse(&p, s, len, tok, (unsigned)n);
	j->tok = tok;
	j->n = got;
	if (got != n) {
		snprintf(err, errlen, "invalid JSON");
		json_free(j);
		return -1;
	}
	if (tok[0].type != JSMN_OBJECT) {
		snprintf(err, errlen, "expected a JSON object");
		json_free(j);
		return -1;
	}
	if (skip(j, 0) != n) {
		snprintf(err, errlen, "more than one JSON value (byte %d)", tok[skip(j, 0)].start);
		json_free(j);
		return -1;
	}
	/* Whatever follows the object may only be whitespace (jsmn stops at the object's end). */
	for (size_t i = (size_t)tok[0].end; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
			snprintf(err, errlen, "unexpected text after the JSON object (byte %zu)", i);
			json_free(j);
			return -1;
		}
	}
	for (int i = 0; i < n; i++) {
		const jsmntok_t *t = &tok[i];
		if (t->type == JSMN_PRIMITIVE && !valid_primitive(s + t->start, (size_t)(t->end - t->start))) {
			snprintf(err, errlen, "invalid JSON value '%.*s' at byte %d",
				 t->end - t->start > 40 ? 40 : t->end - t->start, s + t->start, t->start);
			json_free(j);
			return -1;
		}
	}
	return 0;
}

void json_free(struct json *j)
{
	free(j->tok);
	j->tok = NULL;
	j->n = 0;
}

enum json_type json_type(const struct json *j, int t)
{
	if (t < 0 || t >= j->n)
		return JSON_NONE;
	switch (TOK(j)[t].type) {
	case JSMN_OBJECT: return JSON_OBJECT;
	case JSMN_ARRAY: return JSON_ARRAY;
	case JSMN_STRING: return JSON_STRING;
	case JSMN_PRIMITIVE: return JSON_PRIMITIVE;
	default: return JSON_NONE;
	}
}

int json_count(const struct json *j, int t)
{
	enum json_type ty = json_type(j, t);
	return ty == JSON_OBJECT || ty == JSON_ARRAY ? TOK(j)[t].size : 0;
}

/* Compares a string token's raw bytes with key (keys Weft reads have no escapes). */
static int key_is(const struct json *j, int t, const char *key)
{
	const jsmntok_t *k = &TOK(j)[t];
	size_t n = strlen(key);
	return k->type == JSMN_STRING && (size_t)(k->end - k->start) == n && !memcmp(j->s + k->start, key, n);
}

int json_get(const struct json *j, int obj, const char *key)
{
	if (json_type(j, obj) != JSON_OBJECT)
		return -1;
	int keys = TOK(j)[obj].size;
	int t = obj + 1;
	for (int i = 0; i < keys && t < j->n; i++) {
		if (key_is(j, t, key))
			return t + 1 < j->n ? t + 1 : -1;
		t = skip(j, t + 1); /* past the value */
	}
	return -1;
}

int json_at(const struct json *j, int arr, int i)
{
	if (json_type(j, arr) != JSON_ARRAY || i < 0 || i >= TOK(j)[arr].size)
		return -1;
	int t = arr + 1;
	for (int k = 0; k < i && t < j->n; k++)
		t = skip(j, t);
	return t < j->n ? t : -1;
}

void json_span(const struct json *j, int t, const char **start, size_t *len)
{
	*start = j->s + TOK(j)[t].start;
	*len = (size_t)(TOK(j)[t].end - TOK(j)[t].start);
}

void json_raw(const struct json *j, int t, const char **start, size_t *len)
{
	json_span(j, t, start, len);
	if (TOK(j)[t].type == JSMN_STRING) {
		*start -= 1;
		*len += 2;
	}
}

static int hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

int json_str(const struct json *j, int t, char *out, size_t cap)
{
	if (json_type(j, t) != JSON_STRING || cap == 0)
		return -1;
	const char *s;
	size_t n;
	json_span(j, t, &s, &n);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char utf8[4];
		size_t w = 0;
		if (s[i] != '\\') {
			utf8[w++] = s[i];
		} else {
			if (++i >= n)
				return -1;
			switch (s[i]) {
			case '"':
			case '\\':
			case '/': utf8[w++] = s[i]; break;
			case 'b': utf8[w++] = '\b'; break;
			case 'f': utf8[w++] = '\f'; break;
			case 'n': utf8[w++] = '\n'; break;
			case 'r': utf8[w++] = '\r'; break;
			case 't': utf8[w++] = '\t'; break;
			case 'u': {
				unsigned cp;
				if (i + 4 >= n || hex4(s + i + 1, &cp) < 0)
					return -1;
				i += 4; /* at the last hex digit */
				if (cp >= 0xd800 && cp <= 0xdbff && i + 6 < n && s[i + 1] == '\\' && s[i + 2] == 'u') {
					unsigned lo;
					if (hex4(s + i + 3, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						i += 6;
					}
				}
				if (cp == 0)
					return -1; /* no NUL inside C strings */
				if (cp < 0x80) {
					utf8[w++] = (char)cp;
				} else if (cp < 0x800) {
					utf8[w++] = (char)(0xc0 | (cp >> 6));
					utf8[w++] = (char)(0x80 | (cp & 0x3f));
				} else if (cp < 0x10000) {
					utf8[w++] = (char)(0xe0 | (cp >> 12));
					utf8[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
					utf8[w++] = (char)(0x80 | (cp & 0x3f));
				} else {
					utf8[w++] = (char)(0xf0 | (cp >> 18));
					utf8[w++] = (char)(0x80 | ((cp >> 12) & 0x3f));
					utf8[w++] = (char)(0x80 | ((cp >> 6) & 0x3f));
					utf8[w++] = (char)(0x80 | (cp & 0x3f));
				}
				break;
			}
			default: return -1;
			}
		}
		if (o + w >= cap)
			return -1;
		memcpy(out + o, utf8, w);
		o += w;
	}
	out[o] = '\0';
	return 0;
}

int json_long(const struct json *j, int t, long *out)
{
	if (json_type(j, t) != JSON_PRIMITIVE)
		return -1;
	const char *s;
	size_t n;
	json_span(j, t, &s, &n);
	char tmp[24];
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *end;
	errno = 0;
	long v = strtol(tmp, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int json_get_str(const struct json *j, int obj, const char *key, char *out, size_t cap)
{
	return json_str(j, json_get(j, obj, key), out, cap);
}
