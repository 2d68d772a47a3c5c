import assert from "node:assert/strict";
import { test } from "node:test";
import { StewardError } from "../src/index.js";
import { connect, unique } from "./steward.js";

/** Fails unless call rejects with a StewardError of status; answers it. */
async function problem(status: number, call: Promise<unknown>): Promise<StewardError> {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof StewardError, `want a StewardError, got ${String(err)}`);
    assert.equal(err.status, status, err.message);
    return err;
  }
  assert.fail(`want StewardError ${status}, the call succeeded`);
}

test("kv: a key with '/' in it is put, read, listed and deleted as that key", async () => {
  const urls: string[] = [];
  const steward = connect({
    fetch: (input, init) => {
      urls.push(input instanceof Request ? input.url : String(input));
      return fetch(input, init);
    },
  });
  const prefix = `/${unique("kv")}/`;
  const key = `${prefix}app/db/url`;

  const put = await steward.kv.put(key, { url: "postgres://db/app", pool: 5 });
  assert.equal(put.key, key);
  assert.equal(put.version, 1);
  assert.ok(put.modRevision >= 1);
  // openapi-fetch sent the key as one percent-encoded segment ...
  assert.ok(urls[0]?.includes(`/v1/kv/${encodeURIComponent(key.slice(1))}`), urls[0]);
  assert.ok(urls[0]?.includes("%2F"), urls[0]);

  // ... which the server decoded once: the listing shows the real key.
  const list = await steward.kv.list({ prefix });
  assert.deepEqual(
    list.items.map((e) => e.key),
    [key],
  );
  assert.deepEqual(list.items[0]?.value, { url: "postgres://db/app", pool: 5 });
  assert.equal(list.next, null);
  assert.ok(list.revision >= put.modRevision);

  const got = await steward.kv.get(key);
  assert.deepEqual(got, put);

  // A '%' in a key is an ordinary character: %2F stays %2F, not a '/'.
  const literal = `${prefix}odd%2Fname`;
  assert.equal((await steward.kv.put(literal, "x")).key, literal);
  assert.deepEqual(
    (await steward.kv.list({ prefix, keysOnly: true })).items.map((e) => e.key),
    [key, literal],
  );

  const deleted = await steward.kv.delete(key);
  assert.equal(deleted.key, key);
  assert.equal(deleted.modRevision, put.modRevision);
  await steward.kv.delete(literal);
  await problem(404, steward.kv.get(key));
  assert.deepEqual((await steward.kv.list({ prefix })).items, []);
});

test("kv: compare-and-set on a stale revision is a StewardError 412, and writes nothing", async () => {
  const steward = connect();
  const key = `/${unique("cas")}/setting`;
  const first = await steward.kv.put(key, 1);
  const second = await steward.kv.put(key, 2, { ifRevision: first.modRevision });
  assert.equal(second.version, 2);

  const stale = await problem(412, steward.kv.put(key, 3, { ifRevision: first.modRevision }));
  assert.equal(stale.type, "urn:steward:problem:precondition-failed");
  assert.equal(stale.title, "Precondition Failed");
  assert.ok(stale.detail, "a 412 says why");
  assert.equal(stale.problem?.modRevision, second.modRevision);
  assert.equal((await steward.kv.get(key)).value, 2);

  // Create-only and a conditional delete are checked the same way.
  await problem(412, steward.kv.put(key, 4, { create: true }));
  await problem(412, steward.kv.delete(key, { ifRevision: first.modRevision }));
  await steward.kv.delete(key, { ifRevision: second.modRevision });
  await problem(404, steward.kv.get(key));
});

test("kv: a key is checked before it is sent", async () => {
  const steward = connect();
  await assert.rejects(steward.kv.get("no/leading/slash"), TypeError);
  // and by the server: a '..' segment is refused however it is escaped.
  const bad = await problem(400, steward.kv.put(`/${unique("bad")}/../x`, 1));
  assert.equal(bad.type, "urn:steward:problem:invalid");
});

test("leases: a granted lease has its TTL, holds its keys and takes them when revoked", async () => {
  const steward = connect();
  const before = Date.now();
  const granted = await steward.POST("/v1/leases", { body: { ttl: "10s" } });
  assert.equal(granted.response.status, 201, JSON.stringify(granted.error));
  const lease = granted.data!;
  assert.equal(lease.ttl, "10s");
  const expires = Date.parse(lease.expiresAt) - before;
  // Log time and this clock may differ a little.
  assert.ok(expires > 8_000 && expires < 12_000, `expiresAt is ${expires} ms away, want about 10 s`);

  const key = `/${unique("lease")}/session`;
  const entry = await steward.kv.put(key, "a", { lease: lease.id });
  assert.equal(entry.lease, lease.id);
  const read = await steward.GET("/v1/leases/{id}", { params: { path: { id: lease.id } } });
  assert.deepEqual(read.data?.keys, [key]);

  const revoked = await steward.DELETE("/v1/leases/{id}", { params: { path: { id: lease.id } } });
  assert.equal(revoked.response.status, 200);
  await problem(404, steward.kv.get(key));
});

test("the token is sent as a bearer token on every request", async () => {
  // With auth off (steward dev's default) the server ignores the header;
  // with auth on, STEWARD_TOKEN is a real token and the calls need it.
  const token = process.env.STEWARD_TOKEN || "s3cret";
  const seen: (string | null)[] = [];
  const steward = connect({
    token,
    fetch: (input, init) => {
      seen.push(new Request(input, init).headers.get("Authorization"));
      return fetch(input, init);
    },
  });
  const raw = await steward.GET("/v1/kv", { params: { query: { prefix: "/", limit: 1 } } });
  assert.equal(raw.response.status, 200, JSON.stringify(raw.error));
  await steward.kv.list({ prefix: "/", limit: 1 });
  assert.deepEqual(seen, [`Bearer ${token}`, `Bearer ${token}`]);
});
