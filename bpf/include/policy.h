/* Network policy for the pod-facing TC programs. */
#pragma once

#include "common.h"
#include "endpoint.h"
#include "parse.h"

enum policy_verdict {
	POLICY_ALLOW = 0,
	POLICY_DENY = 1,
};

/* ==================================== POLICY HOOK ====================================
 * The network policy issue fills this in. It is asked once per new connection, from the side
 * of the endpoint whose program saw it (dir: WEFT_DIR_EGRESS when the pod opens it,
 * WEFT_DIR_INGRESS when it is opened towards the pod), and never for the packets of a
 * connection conntrack already knows. POLICY_DENY drops the packet with DROP_POLICY and
 * creates no conntrack entry.
 *
 * Not asked today, and to be decided with policy: packets conntrack does not track (non-first
 * fragments, ICMP errors, IPv6 neighbour discovery), and TCP RSTs that match no connection.
 * ===================================================================================== */
static __always_inline enum policy_verdict
policy_new_connection(const struct endpoint_info *ep, enum weft_dir dir, const struct pkt *p)
{
	return POLICY_ALLOW;
}
