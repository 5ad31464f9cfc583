// What the flow API reads: the observer's flow ring, as the agent's unix-socket API and
// `weft observe` see it. The observer (src/observe/observer.ts) implements it; the API
// (src/observe/flow-api.ts) is written against this alone, so it is tested without a kernel.
import type { Flow, FlowStreamItem } from '../contract/flow.js';
import type { FlowFilter } from './filter.js';

export interface FlowQuery {
  filter: FlowFilter;
  /** At most this many of the matching flows already in the ring, the newest ones, oldest first.
   *  Undefined: all of the matching ones. */
  last?: number;
}

export interface FlowSubscription {
  /** Stops delivering; idempotent. */
  close(): void;
}

export interface FlowSource {
  /** The matching flows in the ring now, oldest first. */
  query(q: FlowQuery): Flow[];
  /** query(q)'s flows first, then every new matching flow as it arrives, through `deliver`.
   *  `deliver` returns false to say the reader is full: the source stops delivering until
   *  `resume()` is called on the returned subscription, and what the ring overwrote meanwhile
   *  is reported once as { lost: { stage: 'follow', count } }. */
  follow(q: FlowQuery, deliver: (item: FlowStreamItem) => boolean): FlowSubscription & { resume(): void };
}
