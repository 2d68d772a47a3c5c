// The console's only way to Steward: the public API on the gateway's
// origin, with the bearer token from the login form when there is one.

// The stream parser of Steward's TypeScript client (clients/typescript),
// which reads text/event-stream as EventSource does.
import { parseEventStream } from '../../clients/typescript/src/sse';

const tokenKey = 'steward.token';

export function token(): string {
  return sessionStorage.getItem(tokenKey) ?? '';
}

export function setToken(t: string) {
  if (t) sessionStorage.setItem(tokenKey, t);
  else sessionStorage.removeItem(tokenKey);
}

// unauthorized is dispatched on window when any call answers 401, so
// that the shell shows the login form whatever page made the call.
export const unauthorized = 'steward:unauthorized';

export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Record<string, unknown>) {
    super(String(problem.detail ?? problem.title ?? `HTTP ${status}`));
  }
}

function headers(extra: Record<string, string> = {}): Headers {
  const hd = new Headers(extra);
  const t = token();
  if (t) hd.set('Authorization', `Bearer ${t}`);
  return hd;
}

export interface Answer<T> {
  status: number;
  body: T;
  headers: Headers;
}

// call sends one request; any status but 2xx is thrown as an ApiError
// with the problem document.
export async function call<T>(method: string, path: string, body?: unknown, extra: Record<string, string> = {}, signal?: AbortSignal): Promise<Answer<T>> {
  const init: RequestInit = { method, headers: headers(extra), signal };
  if (body !== undefined) {
    (init.headers as Headers).set('Content-Type', 'application/json');
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let parsed: unknown = text;
  if ((resp.headers.get('Content-Type') ?? '').includes('json') && text) parsed = JSON.parse(text);
  if (resp.status === 401) window.dispatchEvent(new Event(unauthorized));
  if (!resp.ok) throw new ApiError(resp.status, typeof parsed === 'object' && parsed ? (parsed as Record<string, unknown>) : { detail: text || resp.statusText });
  return { status: resp.status, body: parsed as T, headers: resp.headers };
}

export const get = <T>(path: string, signal?: AbortSignal) => call<T>('GET', path, undefined, {}, signal).then((a) => a.body);

export function describe(err: unknown): string {
  if (err instanceof ApiError) return `${err.status}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}

export interface SSEEvent {
  id: string;
  event: string;
  data: unknown;
}

// watch follows a server-sent event stream with fetch rather than
// EventSource, which cannot send the Authorization header. It resumes
// from the last event id after a broken stream (Last-Event-ID), until
// signal aborts; onState tells the page whether it is live.
export async function watch(path: string, signal: AbortSignal, onEvent: (e: SSEEvent) => void, onState: (live: boolean, why?: string) => void = () => {}) {
  let last = '';
  let delay = 500;
  while (!signal.aborted) {
    try {
      const extra: Record<string, string> = { Accept: 'text/event-stream' };
      if (last) extra['Last-Event-ID'] = last;
      const resp = await fetch(path, { headers: headers(extra), signal });
      if (resp.status === 401) window.dispatchEvent(new Event(unauthorized));
      const fromNow = path.replace(/([?&])fromRevision=[^&]*&?/, '$1').replace(/[?&]$/, '');
      if (resp.status === 410 && (last || fromNow !== path)) {
        // The position asked for is older than the log still holds:
        // follow from now on (the pages read the current state again
        // on the first event).
        last = '';
        path = fromNow;
        onState(false, 'older events are compacted; following from now');
        continue;
      }
      if (!resp.ok || !resp.body) throw new Error(`watch answered ${resp.status}`);
      onState(true);
      delay = 500;
      for await (const ev of parseEventStream(resp.body)) {
        if (ev.data === undefined) continue; // no data: nothing to show
        if (ev.id) last = ev.id;
        onEvent({ id: ev.id ?? '', event: ev.event, data: parseData(ev.data) });
      }
      onState(false, 'stream ended');
    } catch (err) {
      if (signal.aborted) return;
      onState(false, describe(err));
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

// parseData is an event's data as JSON, or as the text it is when it is
// not JSON.
function parseData(text: string): unknown {
  try { return JSON.parse(text); } catch { return text; }
}

// every runs fn now and then every ms milliseconds until signal aborts.
export function every(ms: number, signal: AbortSignal, fn: () => void | Promise<void>) {
  let timer = 0;
  const tick = async () => {
    if (signal.aborted) return;
    try { await fn(); } finally { if (!signal.aborted) timer = window.setTimeout(tick, ms); }
  };
  signal.addEventListener('abort', () => clearTimeout(timer));
  void tick();
}

// follow runs a blocking query (index=, wait=) again and again until
// signal aborts: onAnswer gets the list at once and after every change.
// An error goes to onError, and the next try waits, longer each time.
export async function follow<T>(path: string, signal: AbortSignal, onAnswer: (body: T) => void, onError: (err: unknown) => void) {
  let index = '';
  let delay = 1000;
  const sep = path.includes('?') ? '&' : '?';
  while (!signal.aborted) {
    try {
      const a = await call<T>('GET', index ? `${path}${sep}index=${enc(index)}&wait=30s` : path, undefined, {}, signal);
      const next = a.headers.get('X-Steward-Index') ?? '';
      // An index that went backwards (a replica restarted from an older
      // snapshot) starts over, as Consul's clients do.
      index = index && next && Number(next) < Number(index) ? '' : next;
      delay = 1000;
      onAnswer(a.body);
    } catch (err) {
      if (signal.aborted) return;
      onError(err);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10000);
    }
  }
}

export const enc = encodeURIComponent;

// keyPath is the API path of a config key: each segment escaped, so that
// a key is read and written exactly as named.
export function keyPath(key: string): string {
  return '/v1/kv/' + key.replace(/^\//, '').split('/').map(enc).join('/');
}
