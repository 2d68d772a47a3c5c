import assert from "node:assert/strict";
import { test } from "node:test";
import { StewardError } from "../src/index.js";
import { connect, unique } from "./steward.js";

test("registry: a registered instance is listed, and gone once deregistered", async () => {
  const steward = connect();
  const service = unique("svc");
  const registered = await steward.PUT("/v1/services/{service}/instances/{id}", {
    params: { path: { service, id: "web-1" } },
    body: { address: "127.0.0.1", port: 9000, tags: ["v1"], check: { ttl: "10s", deregisterAfter: "1m" } },
  });
  assert.equal(registered.response.status, 200, JSON.stringify(registered.error));
  assert.equal(registered.data?.id, "web-1");

  const listed = await steward.GET("/v1/services/{service}/instances", { params: { path: { service } } });
  assert.equal(listed.response.status, 200);
  assert.deepEqual(
    listed.data?.map((i) => [i.id, i.address, i.port, i.tags]),
    [["web-1", "127.0.0.1", 9000, ["v1"]]],
  );
  const services = await steward.GET("/v1/services");
  assert.ok(
    services.data?.some((s) => s.name === service),
    `GET /v1/services lacks ${service}`,
  );

  const gone = await steward.DELETE("/v1/services/{service}/instances/{id}", {
    params: { path: { service, id: "web-1" } },
  });
  assert.equal(gone.response.status, 200);
  const after = await steward.GET("/v1/services/{service}/instances", { params: { path: { service } } });
  assert.deepEqual(after.data, []);
});

test("election: the first candidate leads, a second is refused with 409, and the leader is read back", async () => {
  const steward = connect();
  const name = unique("election");
  const won = await steward.POST("/v1/elections/{name}/campaign", {
    params: { path: { name } },
    body: { candidate: "a", ttl: "10s", value: { addr: "10.0.0.7" } },
  });
  assert.equal(won.response.status, 200, JSON.stringify(won.error));
  const lead = won.data!;
  assert.equal(lead.leader, "a");
  assert.ok(lead.token >= 1);

  const refused = await steward.POST("/v1/elections/{name}/campaign", {
    params: { path: { name } },
    body: { candidate: "c", ttl: "10s" },
  });
  assert.equal(refused.response.status, 409);
  const err = StewardError.from(refused.response, refused.error);
  assert.equal(err.type, "urn:steward:problem:conflict");

  const read = await steward.GET("/v1/elections/{name}", { params: { path: { name } } });
  assert.equal(read.data?.leader, "a");
  assert.equal(read.data?.token, lead.token);
  assert.deepEqual(read.data?.value, { addr: "10.0.0.7" });

  const resigned = await steward.POST("/v1/elections/{name}/resign", {
    params: { path: { name } },
    body: { candidate: "a", token: lead.token },
  });
  assert.equal(resigned.response.status, 200, JSON.stringify(resigned.error));
});
