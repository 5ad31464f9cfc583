/* Entering a pod's network namespace and coming back. */
#ifndef WEFT_NETNS_H
#define WEFT_NETNS_H

#include "cni_error.h"

/* Opens CNI_NETNS and checks that it is a network namespace other than the plugin's own.
 * Holding the fd keeps the namespace alive. A missing namespace is CNI code 3. */
int netns_open(const char *path, struct cni_err *e);
/* Switches this (single-threaded) process into ns_fd; *saved gets a handle on the current one. */
int netns_enter(int ns_fd, int *saved, struct cni_err *e);
/* Back to saved (closing it). Failing here leaves the process in the pod's namespace, where
 * nothing more may be done: it exits with an error result. */
void netns_leave(int saved, const char *cni_version);

#endif
