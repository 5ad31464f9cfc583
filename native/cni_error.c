#include "cni_error.h"

#include <stdarg.h>
#include <stdio.h>

#include "buf.h"

void cni_err_set(struct cni_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->details[0] = '\0';
}

void cni_err_details(struct cni_err *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->details, sizeof(e->details), fmt, ap);
	va_end(ap);
}

void cni_err_print(const struct cni_err *e, const char *cni_version)
{
	struct buf b;
	buf_init(&b);
	buf_str(&b, "{\"cniVersion\":");
	buf_json_str(&b, cni_version && *cni_version ? cni_version : "1.1.0");
	buf_printf(&b, ",\"code\":%d,\"msg\":", e->code);
	buf_json_str(&b, e->msg);
	if (e->details[0]) {
		buf_str(&b, ",\"details\":");
		buf_json_str(&b, e->details);
	}
	buf_str(&b, "}\n");
	if (!b.failed)
		fwrite(b.p, 1, b.len, stdout);
	fflush(stdout);
	buf_free(&b);
}
