/* CNI error results: the spec's well-known codes and Weft's own (the agent answers with
 * 100-109, the plugin uses 110-119 for what it finds itself). */
#ifndef WEFT_CNI_ERROR_H
#define WEFT_CNI_ERROR_H

enum {
	CNI_ERR_INCOMPATIBLE_VERSION = 1,
	CNI_ERR_UNKNOWN_CONTAINER = 3, /* the netns is gone: nothing left to clean up */
	CNI_ERR_INVALID_ENV = 4,
	CNI_ERR_IO = 5,
	CNI_ERR_DECODE = 6,
	CNI_ERR_INVALID_CONFIG = 7,
	CNI_ERR_TRY_AGAIN = 11,
	CNI_ERR_NOT_AVAILABLE = 50,
	WEFT_ERR_INTERFACE = 110,      /* a kernel operation on an interface, address or route failed */
	WEFT_ERR_CHECK = 111,          /* CHECK found the pod's network not as set up */
	WEFT_ERR_AGENT_PROTOCOL = 112, /* the agent answered something the plugin cannot use */
};

struct cni_err {
	int code; /* 0: no error */
	char msg[512];
	char details[1024];
};

void cni_err_set(struct cni_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cni_err_details(struct cni_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error result on stdout. */
void cni_err_print(const struct cni_err *e, const char *cni_version);

#endif
