// One Chromium page running peerjs@1.5.5 as a lab host (inside a network namespace that
// peerstorm's lab put behind a simulated NAT). It joins the broker; with "connect" it opens a
// DataConnection, sends one message and waits for the echo; without, it echoes what it gets.
// Prints "open" once registered, then one JSON line: the setup time and the selected candidate
// pair's types from getStats. Exits 0 when the exchange happened, 1 otherwise.
//
//   node tools/js/lab-peer.mjs '{"broker":"198.51.100.10:9000","id":"a","connect":"b",
//                                "iceServers":[...],"timeoutMs":40000}'
import { launch, servePage } from "./chromium.mjs";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const cfg = JSON.parse(process.argv[2] ?? "{}");
if (!cfg.broker || !cfg.id) {
  console.error("usage: node lab-peer.mjs '{\"broker\":\"HOST:PORT\",\"id\":\"ID\",\"connect\":\"OTHER\",\"iceServers\":[]}'");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const peerjsSource = readFileSync(join(here, "node_modules/peerjs/dist/peerjs.min.js"), "utf8");
const page = await servePage(`<!doctype html><meta charset="utf-8"><title>peerstorm lab peer</title><script>${peerjsSource.replace(/<\/script/gi, "<\\/script")}</script>`);
const { context, close } = await launch();
let result = { id: cfg.id, ok: false };
const timer = setTimeout(() => finish({ error: `timed out after ${cfg.timeoutMs ?? 40000} ms` }), cfg.timeoutMs ?? 40000);

async function finish(extra) {
  clearTimeout(timer);
  result = { ...result, ...extra };
  console.log(JSON.stringify(result));
  await close().catch(() => {});
  await page.close().catch(() => {});
  process.exit(result.ok ? 0 : 1);
}

try {
  const p = await context.newPage();
  p.on("pageerror", (e) => finish({ error: `page error: ${e.message}` }));
  await p.goto(page.url);
  const [host, port] = cfg.broker.split(":");
  const opts = { host, port: Number(port), path: "/", key: "peerjs", secure: false, debug: 0, config: { iceServers: cfg.iceServers ?? [] } };
  await p.exposeFunction("labOpen", () => console.log("open"));
  const out = await p.evaluate(
    ([cfg, opts]) =>
      new Promise((resolve) => {
        // The selected pair's local and remote candidate types, from getStats.
        const describe = async (conn) => {
          const stats = await conn.peerConnection.getStats();
          let pairId;
          stats.forEach((s) => {
            if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
          });
          const pair = pairId && stats.get(pairId);
          const local = pair && stats.get(pair.localCandidateId);
          const remote = pair && stats.get(pair.remoteCandidateId);
          return { selected: [local?.candidateType ?? null, remote?.candidateType ?? null] };
        };
        const peer = new peerjs.Peer(cfg.id, opts);
        peer.on("error", (e) => resolve({ error: `${e.type}: ${e.message}` }));
        peer.on("open", () => {
          window.labOpen();
          if (!cfg.connect) return;
          const t0 = performance.now();
          const conn = peer.connect(cfg.connect, { reliable: true });
          conn.on("open", () => {
            const openMs = performance.now() - t0;
            conn.on("data", async (d) => resolve({ ok: d === "ping", open_ms: openMs, ...(await describe(conn)) }));
            conn.send("ping");
          });
        });
        peer.on("connection", (conn) => {
          conn.on("data", (d) => {
            conn.send(d);
            // Stay a while so the echo leaves before the page goes.
            setTimeout(async () => resolve({ ok: true, ...(await describe(conn)) }), 2000);
          });
        });
      }),
    [cfg, opts],
  );
  await finish(out);
} catch (e) {
  await finish({ error: String(e) });
}
