// Bodies as the README sends them, typed with openapi-typescript's output
// for each document (generated into .gen/ by lint.sh): tsc refuses them if
// a document makes a field required that the service does not need.
import type { components as config } from "./.gen/config";
import type { components as registry } from "./.gen/registry";
import type { components as election } from "./.gen/election";
import type { components as scaler } from "./.gen/scaler";
import type { components as gateway } from "./.gen/gateway";

export const registration: registry["schemas"]["Registration"] = {
  address: "127.0.0.1",
  port: 9000,
  tags: ["v1"],
  check: { ttl: "10s", deregisterAfter: "1m" },
};
export const bare: registry["schemas"]["Registration"] = { address: "127.0.0.1", port: 9001 };
export const heartbeat: registry["schemas"]["HeartbeatRequest"] = {};
export const grant: config["schemas"]["GrantRequest"] = { ttl: "10s" };
export const txn: config["schemas"]["Txn"] = {
  compare: [{ key: "/app/db/url", target: "version", op: "==", value: 0 }],
  success: [{ put: { key: "/app/db/url", value: "postgres://db/app" } }],
};
export const campaign: election["schemas"]["CampaignRequest"] = { candidate: "a", ttl: "10s", value: { addr: "10.0.0.7" } };
export const watchEvent = (e: config["schemas"]["KVWatchEvent"]): string =>
  e.event === "error" ? e.data.error : e.event === "shutdown" ? "" : e.data.entry.key;
export const scalerName: scaler["schemas"]["Name"] = "web";
export const route: gateway["schemas"]["Route"] | undefined = undefined;
