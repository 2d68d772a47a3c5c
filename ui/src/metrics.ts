// Request and error rates from the gateway's Prometheus text: two
// scrapes, the counters' difference over the time between them.

export interface Counts {
  at: number;
  // requests and errors (5xx) by service, summed over routes and codes
  requests: Map<string, number>;
  errors: Map<string, number>;
}

const line = /^steward_gateway_requests_total\{([^}]*)\}\s+(\S+)/;

export function parseCounts(text: string, at: number): Counts {
  const c: Counts = { at, requests: new Map(), errors: new Map() };
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    const svc = labels.service ?? '';
    const v = Number(m[2]);
    c.requests.set(svc, (c.requests.get(svc) ?? 0) + v);
    if ((labels.code ?? '').startsWith('5')) c.errors.set(svc, (c.errors.get(svc) ?? 0) + v);
  }
  return c;
}

export interface Rate {
  service: string;
  rps: number;
  errorRatio: number;
}

export function rates(prev: Counts, next: Counts): Rate[] {
  const secs = (next.at - prev.at) / 1000;
  if (secs <= 0) return [];
  const out: Rate[] = [];
  for (const [svc, n] of next.requests) {
    const dr = Math.max(0, n - (prev.requests.get(svc) ?? 0));
    const de = Math.max(0, (next.errors.get(svc) ?? 0) - (prev.errors.get(svc) ?? 0));
    out.push({ service: svc, rps: dr / secs, errorRatio: dr ? de / dr : 0 });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service));
}
