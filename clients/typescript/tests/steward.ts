// What every test needs: the Steward to test against and names no other
// run uses (a developer's `steward dev` outlives many runs).
import { randomUUID } from "node:crypto";
import { createSteward, type Steward, type StewardOptions } from "../src/index.js";

/** The gateway of the `steward dev` under test, from STEWARD_ENDPOINT. */
export function endpoint(): string {
  const url = process.env.STEWARD_ENDPOINT;
  if (!url) {
    throw new Error(
      "STEWARD_ENDPOINT is not set: these tests run against a real Steward. Start one (`make run`, or `steward dev`) and set STEWARD_ENDPOINT to its gateway URL, e.g. STEWARD_ENDPOINT=http://127.0.0.1:8080 npm test (STEWARD_TOKEN too when auth is on).",
    );
  }
  return url;
}

/** A client of the Steward under test. */
export function connect(options: Partial<StewardOptions> = {}): Steward {
  return createSteward({ endpoint: endpoint(), token: process.env.STEWARD_TOKEN || undefined, ...options });
}

/** A name unique to this call, usable as a key segment, service, instance or election name. */
export function unique(what: string): string {
  return `ts-${what}-${randomUUID().slice(0, 8)}`;
}
