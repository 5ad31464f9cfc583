// Reads the service maps back from the kernel: what connects will actually do. The CLI and the
// tests trust this over anything the agent holds in memory.
import path from 'node:path';
import { RawMap } from './libbpf.js';
import { lbBackendKey, lbBackendValue, lbServiceKey, lbServiceValue } from './lb-codecs.js';
import { pinLayout } from './pins.js';
import type { L4Addr, ServiceKey } from '../state/services.js';

export interface KernelService {
  frontend: ServiceKey;
  serviceId: number;
  backends: L4Addr[];
}

export function readKernelServices(bpfRoot: string): KernelService[] {
  const pins = pinLayout(bpfRoot);
  const services = RawMap.openPinned(path.join(pins.maps, 'lb_services'));
  const backends = RawMap.openPinned(path.join(pins.maps, 'lb_backends'));
  try {
    const slots = new Map<string, L4Addr>();
    for (const [k, v] of backends.entries()) {
      const key = lbBackendKey.decode(k);
      slots.set(`${key.serviceId}/${key.slot}`, lbBackendValue.decode(v));
    }
    const out: KernelService[] = [];
    for (const [k, v] of services.entries()) {
      const val = lbServiceValue.decode(v);
      const list: L4Addr[] = [];
      for (let s = 1; s <= val.backendCount; s++) {
        const b = slots.get(`${val.serviceId}/${s}`);
        if (b) list.push(b);
      }
      out.push({ frontend: lbServiceKey.decode(k), serviceId: val.serviceId, backends: list });
    }
    return out.sort((a, b) => a.serviceId - b.serviceId);
  } finally {
    services.close();
    backends.close();
  }
}
