// Launches Debian's Chromium through playwright-core (never a downloaded browser), with the flags
// this closed network needs. Shared by the fixture generator and the browser tests.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.PEERSTORM_CHROMIUM || "/usr/bin/chromium";

// `extraArgs`: more Chromium flags (e.g. one that trusts a test certificate).
export async function launch(extraArgs = []) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (scripts/test.sh does)`);
  }
  const userDataDir = mkdtempSync(join(tmpdir(), "peerstorm-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      ...extraArgs,
    ],
  });
  const close = async () => {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { context, close };
}

// Serves one HTML page on 127.0.0.1 (a free port). Chromium blocks requests from opaque
// origins such as about:blank to loopback (Local Network Access), so pages that talk to a
// server on 127.0.0.1 must themselves come from 127.0.0.1.
import { createServer } from "node:http";
export async function servePage(html) {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}
