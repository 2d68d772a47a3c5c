import assert from "node:assert/strict";
import { test } from "node:test";
import { StewardError, type JSONValue, type WatchEvent } from "../src/index.js";
import { connect, unique } from "./steward.js";

/**
 * A fetch to the real server whose answer to the calls named in cuts
 * breaks off like a dropped connection: after that many complete events
 * (blocks with a data: line) and as many bytes of the next as have come
 * (at most extra), the real request is aborted and the body errors as
 * undici's does when the socket closes. It records each call's
 * Last-Event-ID header.
 */
function cuttingFetch(cuts: Map<number, { events: number; extra: number }>) {
  const lastEventIds: (string | null)[] = [];
  const wrapped = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const req = new Request(input, init);
    lastEventIds.push(req.headers.get("Last-Event-ID"));
    const cut = cuts.get(lastEventIds.length);
    const abort = new AbortController();
    const res = await fetch(req, { signal: AbortSignal.any([req.signal, abort.signal]) });
    if (!cut || !res.body) return res;
    const upstream = res.body.getReader();
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let text = ""; // what came, not yet passed on
    let events = 0;
    let cutting = false;
    // pull runs when the reader waits for more, never ahead of it.
    const body = new ReadableStream<Uint8Array>(
      {
      async pull(controller) {
        for (;;) {
          const end = text.indexOf("\n\n");
          if (end >= 0 && events < cut.events) {
            const block = text.slice(0, end + 2);
            text = text.slice(end + 2);
            if (/^data:/m.test(block)) events++;
            controller.enqueue(encoder.encode(block));
            continue;
          }
          if (cutting) {
            // Only now: an error drops what the reader has not read yet.
            abort.abort();
            controller.error(new TypeError("terminated: the test cut the connection"));
            return;
          }
          if (events === cut.events && text.length > 0) {
            controller.enqueue(encoder.encode(text.slice(0, Math.min(cut.extra, text.length - 1))));
            cutting = true;
            return;
          }
          const { value, done } = await upstream.read();
          if (done) return controller.close();
          text += decoder.decode(value, { stream: true });
        }
      },
        cancel: (reason) => upstream.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  return { fetch: wrapped, lastEventIds };
}

type KVEvent = WatchEvent<"/v1/watch">;

test("watch: resumes with Last-Event-ID after the connection drops and yields every revision once, in order", async () => {
  const prefix = `/${unique("watch")}/`;
  const writer = connect();
  const put = async (name: string, value: JSONValue) => (await writer.kv.put(prefix + name, value)).modRevision;
  const txn = async (...names: string[]) => {
    const r = await writer.POST("/v1/txn", {
      body: { success: names.map((n) => ({ put: { key: prefix + n, value: n } })) },
    });
    assert.equal(r.response.status, 200, JSON.stringify(r.error));
    return r.data!.revision;
  };

  // What the watch replays from the start (fromRevision): one event a
  // revision or several at one.
  const want = new Map<number, string[]>();
  const first = await put("k0", 0);
  want.set(first, ["put " + prefix + "k0"]);
  want.set(await put("a", 1), ["put " + prefix + "a"]);
  want.set(await txn("x", "y", "z"), ["x", "y", "z"].map((n) => "put " + prefix + n));
  want.set(await put("b", 2), ["put " + prefix + "b"]);
  want.set(await txn("u", "v"), ["u", "v"].map((n) => "put " + prefix + n));
  // A delete event's tombstone has the delete's revision, X-Steward-Revision.
  const deleted = await writer.DELETE("/v1/kv/{key}", { params: { path: { key: prefix.slice(1) + "a" } } });
  assert.equal(deleted.response.status, 200, JSON.stringify(deleted.error));
  const deleteA = Number(deleted.response.headers.get("X-Steward-Revision"));

  // The first connection breaks after k0, a and x, inside x's revision and
  // halfway through y's event; the second after x, y, z, b and u, inside
  // u's revision, with the real request aborted.
  const cutting = cuttingFetch(
    new Map([
      [1, { events: 3, extra: 40 }],
      [2, { events: 5, extra: 0 }],
    ]),
  );
  const steward = connect({ fetch: cutting.fetch });
  const stop = new AbortController();
  const retries: unknown[] = [];
  const seen: KVEvent[] = [];
  let live: Promise<void> | undefined;
  let lastRevision = 0;

  for await (const ev of steward.watch("/v1/watch", {
    params: { query: { prefix, fromRevision: first } },
    signal: stop.signal,
    retry: 50,
    onRetry: (reason) => retries.push(reason),
  })) {
    seen.push(ev);
    if (ev.event === "put" || ev.event === "delete") {
      const rev = ev.data.entry.modRevision;
      if (ev.event === "delete" && ev.data.entry.key === prefix + "a" && !live) {
        // Caught up after both cuts: the rest is written while watched.
        live = (async () => {
          want.set(deleteA, ["delete " + prefix + "a"]);
          want.set(await put("c", 3), ["put " + prefix + "c"]);
          want.set(await txn("p", "q"), ["p", "q"].map((n) => "put " + prefix + n));
          const gone = await writer.DELETE("/v1/kv", { params: { query: { prefix } } });
          assert.equal(gone.response.status, 200, JSON.stringify(gone.error));
          lastRevision = gone.data!.revision;
          const left = ["b", "c", "k0", "p", "q", "u", "v", "x", "y", "z"];
          want.set(lastRevision, left.map((n) => "delete " + prefix + n));
        })();
      }
      if (lastRevision === 0) await live;
      if (rev === lastRevision && ev.id !== undefined) stop.abort();
    }
  }
  await live;

  // Every revision once, in revision order, each whole, its id on its last event.
  const got = new Map<number, string[]>();
  let previous = 0;
  for (const [i, ev] of seen.entries()) {
    assert.ok(ev.event === "put" || ev.event === "delete", `unexpected event ${ev.event}`);
    const rev = ev.data.entry.modRevision;
    assert.ok(rev >= previous, `revision ${rev} after ${previous}: out of order`);
    previous = rev;
    got.set(rev, [...(got.get(rev) ?? []), `${ev.event} ${ev.data.entry.key}`]);
    const lastOfRevision = seen[i + 1] === undefined || (seen[i + 1] as KVEvent & { event: "put" }).data.entry.modRevision !== rev;
    assert.equal(ev.id, lastOfRevision ? String(rev) : undefined, `event ${i}'s id`);
  }
  assert.deepEqual(
    [...got.entries()].map(([rev, evs]) => [rev, [...evs].sort()]),
    [...want.entries()].sort(([a], [b]) => a - b).map(([rev, evs]) => [rev, [...evs].sort()]),
  );

  // It reconnected twice, each time from the last revision it had yielded whole.
  const revisions = [...want.keys()].sort((a, b) => a - b);
  assert.deepEqual(cutting.lastEventIds, [null, String(revisions[1]), String(revisions[3])]);
  assert.equal(retries.length, 2, retries.map(String).join("; "));
});

test("watch: a 4xx answer ends the iterator with a StewardError, without retrying", async () => {
  let calls = 0;
  const steward = connect({
    fetch: (input, init) => {
      calls++;
      return fetch(input, init);
    },
  });
  // Neither key nor prefix: 400.
  const events = steward.watch("/v1/watch", { params: { query: {} }, retry: 10 });
  await assert.rejects(events.next(), (err: unknown) => {
    assert.ok(err instanceof StewardError, String(err));
    assert.equal(err.status, 400);
    assert.equal(err.type, "urn:steward:problem:invalid");
    return true;
  });
  assert.equal(calls, 1);
});

test("watch: aborting the signal ends an idle watch without an error", async () => {
  const steward = connect();
  const stop = new AbortController();
  const started = Date.now();
  setTimeout(() => stop.abort(), 300);
  const seen: unknown[] = [];
  for await (const ev of steward.watch("/v1/watch", {
    params: { query: { prefix: `/${unique("idle")}/` } },
    signal: stop.signal,
  })) {
    seen.push(ev);
  }
  assert.deepEqual(seen, []);
  assert.ok(Date.now() - started < 5_000, "the watch outlived its signal");
});

test("watch: an election's stream is typed by the document: vacant, then elected", async () => {
  const steward = connect();
  const name = unique("watched");
  const stop = new AbortController();
  const events: string[] = [];
  for await (const ev of steward.watch("/v1/elections/{name}/watch", {
    params: { path: { name } },
    signal: stop.signal,
  })) {
    if (ev.event === "vacant") {
      assert.equal(ev.data.name, name);
      assert.ok(ev.id, "the first event has the revision it reflects as its id");
      const won = await steward.POST("/v1/elections/{name}/campaign", {
        params: { path: { name } },
        body: { candidate: "w", ttl: "10s" },
      });
      assert.equal(won.response.status, 200, JSON.stringify(won.error));
    } else if (ev.event === "elected") {
      assert.equal(ev.data.leader, "w");
      assert.equal(ev.id, String(ev.data.token));
      stop.abort();
    }
    events.push(ev.event);
  }
  assert.deepEqual(events, ["vacant", "elected"]);
});
