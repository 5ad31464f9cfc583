#define _GNU_SOURCE /* setns */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

int netns_open(const char *path, struct cni_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT || err == ESRCH)
			cni_err_set(e, CNI_ERR_UNKNOWN_CONTAINER, "network namespace %s does not exist", path);
		else
			cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_NETNS %s cannot be opened: %s", path, strerror(err));
		return -1;
	}
	int type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET) {
		cni_err_set(e, CNI_ERR_INVALID_ENV, "CNI_NETNS %s is not a network namespace", path);
		close(fd);
		return -1;
	}
	struct stat pod, own;
	if (fstat(fd, &pod) == 0 && stat("/proc/self/ns/net", &own) == 0 && pod.st_dev == own.st_dev &&
	    pod.st_ino == own.st_ino) {
		cni_err_set(e, CNI_ERR_INVALID_ENV,
			    "CNI_NETNS %s is the plugin's own network namespace, not a container's", path);
		close(fd);
		return -1;
	}
	return fd;
}

int netns_enter(int ns_fd, int *saved, struct cni_err *e)
{
	*saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*saved < 0) {
		cni_err_set(e, CNI_ERR_IO, "opening the plugin's own network namespace: %s", strerror(errno));
		return -1;
	}
	if (setns(ns_fd, CLONE_NEWNET) < 0) {
		cni_err_set(e, WEFT_ERR_INTERFACE, "entering the container's network namespace: %s", strerror(errno));
		close(*saved);
		*saved = -1;
		return -1;
	}
	return 0;
}

void netns_leave(int saved, const char *cni_version)
{
	if (setns(saved, CLONE_NEWNET) < 0) {
		struct cni_err e;
		cni_err_set(&e, WEFT_ERR_INTERFACE, "cannot return to the node's network namespace: %s",
			    strerror(errno));
		cni_err_print(&e, cni_version);
		_exit(1);
	}
	close(saved);
}
