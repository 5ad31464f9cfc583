// Flows built by hand for the observer's pure tests (filters, formats, the flow API).
import type { Flow, FlowEndpoint } from '../../src/contract/flow.js';

/** source → destination, a TCP SYN seen entering the destination pod; `over` changes fields. */
export function synFlow(source: FlowEndpoint, destination: FlowEndpoint, over: Partial<Flow> = {}): Flow {
  return {
    time: '2024-12-04T12:00:01.123456789Z',
    verdict: 'FORWARDED',
    type: 'trace',
    source,
    destination,
    l4: { protocol: 'TCP', tcp_flags: ['SYN'] },
    is_reply: false,
    observation_point: 'to-pod',
    summary: 'TCP Flags: SYN',
    ...over,
  };
}
