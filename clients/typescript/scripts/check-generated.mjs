// Fails when src/schema.ts is not what `npm run generate` makes of
// gateway/api/openapi.json now, so the committed types cannot drift from
// the document.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), "steward-schema-"));
try {
  const fresh = join(dir, "schema.ts");
  execFileSync(join(root, "node_modules/.bin/openapi-typescript"), ["../../gateway/api/openapi.json", "--output", fresh], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (readFileSync(fresh, "utf8") !== readFileSync(join(root, "src/schema.ts"), "utf8")) {
    console.error("src/schema.ts differs from what openapi-typescript makes of gateway/api/openapi.json: run npm run generate in clients/typescript and commit it");
    process.exit(1);
  }
  console.log("src/schema.ts is what openapi-typescript makes of gateway/api/openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
