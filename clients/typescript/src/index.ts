// The TypeScript client of Steward's HTTP API. Every operation of the one
// OpenAPI document (gateway/api/openapi.json) is reachable, typed, through
// the openapi-fetch client createSteward returns; kv and watch are helpers
// where the API's idioms matter: keys that contain '/', compare-and-set on
// a revision, problem details thrown as StewardError, and server-sent
// event streams that resume where they broke off.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";
import { parseEventStream, type ServerSentEvent } from "./sse.js";

export type { components, paths } from "./schema.js";
export { parseEventStream, type ServerSentEvent } from "./sse.js";

type Schemas = components["schemas"];
/** One version of a key. */
export type Entry = Schemas["Entry"];
/** A page of keys. */
export type ListResponse = Schemas["ConfigListResponse"];
/** A JSON value as stored under a key. */
export type JSONValue = Schemas["ConfigJSONValue"];

export interface StewardOptions {
  /** The gateway's (or one service's) base URL, e.g. http://127.0.0.1:8080. */
  endpoint: string;
  /** Sent as Authorization: Bearer <token> on every request when set. */
  token?: string;
  /** The fetch to call; globalThis.fetch by default. */
  fetch?: typeof globalThis.fetch;
}

/**
 * A non-2xx answer. Steward answers errors as RFC 9457 problem details
 * (application/problem+json); the standard members are copied here and the
 * whole document (with extension members such as modRevision on a 412 or
 * compactRevision on a 410) is in problem.
 */
export class StewardError extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail?: string;
  readonly instance?: string;
  readonly requestId?: string;
  readonly problem?: Record<string, unknown>;

  constructor(status: number, problem: Record<string, unknown> | undefined, fallback: string) {
    const str = (k: string) => (typeof problem?.[k] === "string" ? (problem[k] as string) : undefined);
    const title = str("title") ?? fallback;
    const detail = str("detail");
    super(`${status} ${title}${detail ? `: ${detail}` : ""}`);
    this.name = "StewardError";
    this.status = status;
    this.type = str("type") ?? "about:blank";
    this.title = title;
    this.detail = detail;
    this.instance = str("instance");
    this.requestId = str("requestId");
    this.problem = problem;
  }

  /** The error for response, whose body openapi-fetch already read as body. */
  static from(response: Response, body: unknown): StewardError {
    if (body && typeof body === "object" && !Array.isArray(body)) {
      return new StewardError(response.status, body as Record<string, unknown>, response.statusText);
    }
    const text = typeof body === "string" && body.trim() !== "" ? body.trim() : undefined;
    return new StewardError(response.status, text ? { detail: text } : undefined, response.statusText || "HTTP error");
  }
}

/** What an openapi-fetch call resolves to, reduced to what the helpers read. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The answer's data, or a StewardError when it is not a 2xx. */
async function unwrap<T>(call: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw StewardError.from(response, error);
  return data as T;
}

/**
 * The {key} path parameter: the key without its leading '/'. openapi-fetch
 * percent-encodes it whole (app%2Fdb%2Furl), which the server decodes once.
 */
function keyParam(key: string): string {
  if (!key.startsWith("/")) throw new TypeError(`steward: a key starts with '/': ${JSON.stringify(key)}`);
  return key.slice(1);
}

export interface PutOptions {
  /** Compare-and-set: write only if the key's modRevision is still this (else StewardError 412). */
  ifRevision?: number;
  /** Create only: StewardError 412 when the key exists. */
  create?: boolean;
  /** Attach the key to this lease (POST /v1/leases). */
  lease?: number;
  /** X-Steward-Fence, e.g. "scaler:41": refused (409) when an older token than one seen. */
  fence?: string;
  signal?: AbortSignal;
}

export interface DeleteOptions {
  /** Delete only if the key's modRevision is still this (else StewardError 412). */
  ifRevision?: number;
  fence?: string;
  signal?: AbortSignal;
}

export interface ListOptions {
  /** Keys starting with this; "/" (every key) by default. */
  prefix?: string;
  limit?: number;
  /** The next of the previous page. */
  after?: string;
  keysOnly?: boolean;
  signal?: AbortSignal;
}

/** Typed helpers for /v1/kv; keys are full keys such as /app/db/url. */
export interface KV {
  /** The entry under key; StewardError 404 when there is none. */
  get(key: string, opts?: { revision?: number; signal?: AbortSignal }): Promise<Entry>;
  /** Writes value under key and answers the entry written. */
  put(key: string, value: JSONValue, opts?: PutOptions): Promise<Entry>;
  /** Deletes key and answers the entry as it was; StewardError 404 when there is none. */
  delete(key: string, opts?: DeleteOptions): Promise<Entry>;
  /** One page of the keys under a prefix. */
  list(opts?: ListOptions): Promise<ListResponse>;
}

/** The paths whose GET answers a text/event-stream. */
export type WatchPath = {
  [P in keyof paths]: paths[P] extends { get: { responses: { 200: { content: { "text/event-stream": unknown } } } } }
    ? P
    : never;
}[keyof paths];

type StreamEvent<P extends WatchPath> = paths[P]["get"]["responses"][200]["content"]["text/event-stream"];

/**
 * An event of the stream at P as the watch helper yields it: the variants of
 * the document's event schema but error and shutdown, which the helper acts
 * on itself (they end the server's stream: it resumes). id is set on the
 * event that completes a revision.
 */
export type WatchEvent<P extends WatchPath> = Exclude<StreamEvent<P>, { event: "error" | "shutdown" }> & {
  id?: string;
};

type WatchParameters<P extends WatchPath> = paths[P]["get"]["parameters"];

/** The path and query parameters of the watch at P, as the document has them. */
export type WatchParams<P extends WatchPath> = Pick<WatchParameters<P>, Extract<keyof WatchParameters<P>, "path" | "query">>;

export interface WatchOptions<P extends WatchPath> {
  /** The path and query parameters, e.g. { query: { prefix: "/app/" } }. */
  params?: WatchParams<P>;
  /** Ends the iterator (without an error) when aborted. */
  signal?: AbortSignal;
  /** Resume after this event id (a revision) instead of starting at the current one. */
  lastEventId?: string;
  /** Milliseconds to wait before reconnecting until the server sends retry:; 1000 by default. */
  retry?: number;
  /** Told of each failure the helper recovers from by reconnecting. */
  onRetry?: (reason: unknown) => void;
}

export interface StewardHelpers {
  kv: KV;
  /**
   * The events of a watch endpoint as an async iterator, with EventSource's
   * semantics on fetch: after a disconnect, a network error, a 5xx, or an
   * error or shutdown event it reconnects after the retry delay with
   * Last-Event-ID, so every revision is yielded once, in order. Events of a
   * revision are held until the one that carries its id arrives (the server
   * sends a revision seen only in part again, whole, on resume). A 4xx
   * answer ends the iterator with a StewardError; the signal ends it.
   */
  watch<P extends WatchPath>(path: P, opts?: WatchOptions<P>): AsyncGenerator<WatchEvent<P>, void, undefined>;
}

export type Steward = Client<paths> & StewardHelpers;

/** A client of the Steward API at endpoint. */
export function createSteward(options: StewardOptions): Steward {
  const client = createClient<paths>({ baseUrl: options.endpoint.replace(/\/+$/, ""), fetch: options.fetch });
  if (options.token) {
    const auth: Middleware = {
      onRequest({ request }) {
        request.headers.set("Authorization", `Bearer ${options.token}`);
        return request;
      },
    };
    client.use(auth);
  }
  return Object.assign(client, { kv: kvHelpers(client), watch: watcher(client) });
}

function kvHelpers(client: Client<paths>): KV {
  const etag = (revision: number | undefined) => (revision === undefined ? undefined : `"${revision}"`);
  return {
    get: async (key, opts = {}) =>
      unwrap(
        client.GET("/v1/kv/{key}", {
          params: { path: { key: keyParam(key) }, query: { revision: opts.revision } },
          signal: opts.signal,
        }),
      ),
    put: async (key, value, opts = {}) =>
      unwrap(
        client.PUT("/v1/kv/{key}", {
          params: {
            path: { key: keyParam(key) },
            query: { lease: opts.lease },
            header: {
              "If-Match": etag(opts.ifRevision),
              "If-None-Match": opts.create ? "*" : undefined,
              "X-Steward-Fence": opts.fence,
            },
          },
          body: value,
          signal: opts.signal,
        }),
      ),
    delete: async (key, opts = {}) =>
      unwrap(
        client.DELETE("/v1/kv/{key}", {
          params: {
            path: { key: keyParam(key) },
            header: { "If-Match": etag(opts.ifRevision), "X-Steward-Fence": opts.fence },
          },
          signal: opts.signal,
        }),
      ),
    list: async (opts = {}) =>
      unwrap(
        client.GET("/v1/kv", {
          params: { query: { prefix: opts.prefix, limit: opts.limit, after: opts.after, keysOnly: opts.keysOnly } },
          signal: opts.signal,
        }),
      ),
  };
}

/** Resolves after ms, or at once when signal is aborted. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function watcher(client: Client<paths>): StewardHelpers["watch"] {
  // openapi-fetch's types cannot follow a path that is a type parameter;
  // this is its GET with the options the helper passes.
  const get = client.GET as unknown as (
    path: string,
    init: { params?: object; parseAs: "stream"; signal?: AbortSignal; headers?: Record<string, string> },
  ) => Promise<Answer<ReadableStream<Uint8Array> | null>>;

  return async function* watch<P extends WatchPath>(path: P, opts: WatchOptions<P> = {}) {
    const { signal, onRetry } = opts;
    let lastEventId = opts.lastEventId ?? "";
    let delay = opts.retry ?? 1000;
    while (!signal?.aborted) {
      let answer: Answer<ReadableStream<Uint8Array> | null>;
      try {
        answer = await get(path, {
          params: opts.params,
          parseAs: "stream",
          signal,
          headers: lastEventId !== "" ? { "Last-Event-ID": lastEventId } : {},
        });
      } catch (err) {
        if (signal?.aborted) return;
        onRetry?.(err);
        await sleep(delay, signal);
        continue;
      }
      const { response, data: body, error } = answer;
      if (!response.ok) {
        const err = StewardError.from(response, error);
        if (response.status < 500) throw err;
        onRetry?.(err);
        await sleep(delay, signal);
        continue;
      }
      const type = response.headers.get("Content-Type") ?? "";
      if (!type.startsWith("text/event-stream") || !body) {
        await body?.cancel();
        throw new StewardError(response.status, undefined, `not an event stream (Content-Type ${JSON.stringify(type)})`);
      }

      // Events since the last one with an id: a revision seen in part.
      let held: WatchEvent<P>[] = [];
      try {
        for await (const ev of parseEventStream(body)) {
          if (ev.retry !== undefined) delay = ev.retry;
          if (ev.event === "error" || ev.event === "shutdown") {
            onRetry?.(new Error(`steward: ${ev.event} event: ${ev.data}`));
            break;
          }
          if (ev.data !== undefined) {
            const event = { event: ev.event, data: JSON.parse(ev.data) } as WatchEvent<P>;
            if (ev.id !== undefined) event.id = ev.id;
            held.push(event);
          }
          if (ev.id !== undefined) {
            lastEventId = ev.id;
            const ready = held;
            held = [];
            yield* ready;
          }
        }
      } catch (err) {
        if (signal?.aborted) return;
        if (err instanceof SyntaxError) throw err;
        onRetry?.(err);
      } finally {
        await body.cancel().catch(() => {});
      }
      await sleep(delay, signal);
    }
  };
}
