// Two Chromium pages run peerjs@1.5.5 against a PeerJS broker and exchange data over real
// DataConnections in each serialization. Prints one JSON object with what happened; exits 0
// when every check passed, 1 otherwise.
//
//   node tools/js/browser-peerjs.mjs BROKER_PORT [EXPIRE_WAIT_MS]
//
// Checks: binary (with a message over 16,300 bytes, so PeerJS chunks it), json and raw echo
// through the other page; a taken ID gives `unavailable-id`; an unknown peer gives
// `peer-unavailable`.
import { launch, servePage } from "./chromium.mjs";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const port = Number(process.argv[2]);
const expireWait = Number(process.argv[3] ?? 8000);
if (!port) {
  console.error("usage: node browser-peerjs.mjs BROKER_PORT [EXPIRE_WAIT_MS]");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const peerjsSource = readFileSync(join(here, "node_modules/peerjs/dist/peerjs.min.js"), "utf8");
const suffix = Math.random().toString(36).slice(2, 8);
const opts = { host: "127.0.0.1", port, path: "/", key: "peerjs", secure: false, debug: 0, config: { iceServers: [] } };

const page = await servePage(`<!doctype html><meta charset="utf-8"><title>peerstorm peerjs interop</title><script>${peerjsSource.replace(/<\/script/gi, "<\\/script")}</script>`);
const { context, close: closeBrowser } = await launch();
const close = async () => {
  await closeBrowser();
  await page.close();
};
const results = { checks: {}, errors: [] };
const deadline = setTimeout(() => {
  results.errors.push("timed out after 60 s");
  finish();
}, 60_000);

async function finish() {
  clearTimeout(deadline);
  const ok = results.errors.length === 0 && Object.values(results.checks).every((c) => c.ok);
  results.ok = ok;
  console.log(JSON.stringify(results));
  await close().catch(() => {});
  process.exit(ok ? 0 : 1);
}

try {
  const pageB = await context.newPage();
  const pageA = await context.newPage();
  for (const p of [pageA, pageB]) {
    p.on("pageerror", (e) => results.errors.push(`page error: ${e.message}`));
    await p.goto(page.url);
  }
  const bob = `bob-${suffix}`;
  const alice = `alice-${suffix}`;
  // B echoes everything back on the same connection.
  await pageB.evaluate(
    ([id, opts]) =>
      new Promise((resolve, reject) => {
        const peer = new peerjs.Peer(id, opts);
        window.peer = peer;
        peer.on("open", () => resolve());
        peer.on("error", (e) => reject(new Error(`bob: ${e.type} ${e.message}`)));
        peer.on("connection", (conn) => conn.on("data", (d) => conn.send(d)));
      }),
    [bob, opts],
  );
  results.checks.echo = await pageA.evaluate(
    ([id, bob, opts]) =>
      new Promise((resolve, reject) => {
        const peer = new peerjs.Peer(id, opts);
        window.peer = peer;
        peer.on("error", (e) => reject(new Error(`alice: ${e.type} ${e.message}`)));
        peer.on("open", async () => {
          const out = {};
          const big = new Uint8Array(40000).map((_, i) => (i * 7) & 0xff);
          const cases = {
            binary: [{ n: 1, s: "héllo" }, "plain string", big],
            json: [{ n: 2, list: [1, "two", { three: 3 }] }, "json string"],
            raw: ["raw string"],
          };
          for (const [serialization, messages] of Object.entries(cases)) {
            const conn = peer.connect(bob, { serialization, reliable: true });
            const got = await new Promise((res, rej) => {
              const seen = [];
              const t = setTimeout(() => rej(new Error(`${serialization}: no echo in 20 s (${seen.length} of ${messages.length})`)), 20000);
              conn.on("data", (d) => {
                seen.push(d);
                if (seen.length === messages.length) {
                  clearTimeout(t);
                  res(seen);
                }
              });
              conn.on("error", (e) => rej(new Error(`${serialization}: ${e.type} ${e.message}`)));
              conn.on("open", () => messages.forEach((m) => conn.send(m)));
            });
            const same = messages.every((m, i) => {
              const g = got[i];
              if (m instanceof Uint8Array) {
                const b = new Uint8Array(g);
                return b.length === m.length && b.every((x, j) => x === m[j]);
              }
              return JSON.stringify(g) === JSON.stringify(m);
            });
            out[serialization] = { sent: messages.length, echoed: got.length, same };
          }
          resolve({ ok: Object.values(out).every((r) => r.same), ...out });
        });
      }),
    [alice, bob, opts],
  );
  // A taken ID (bob is registered with another token).
  results.checks.unavailable_id = await pageA.evaluate(
    ([bob, opts]) =>
      new Promise((resolve) => {
        const p = new peerjs.Peer(bob, opts);
        const t = setTimeout(() => resolve({ ok: false, got: "no error in 10 s" }), 10000);
        p.on("error", (e) => {
          clearTimeout(t);
          resolve({ ok: e.type === "unavailable-id", got: e.type });
        });
        p.on("open", () => resolve({ ok: false, got: "open" }));
      }),
    [bob, opts],
  );
  // An unknown peer: the broker queues the OFFER, then EXPIREs it.
  results.checks.peer_unavailable = await pageA.evaluate(
    ([wait]) =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve({ ok: false, got: `no error in ${wait} ms` }), wait);
        window.peer.on("error", (e) => {
          clearTimeout(t);
          resolve({ ok: e.type === "peer-unavailable", got: e.type });
        });
        window.peer.connect("nobody-" + Math.random().toString(36).slice(2));
      }),
    [expireWait],
  );
} catch (e) {
  results.errors.push(String(e.message ?? e));
}
await finish();
