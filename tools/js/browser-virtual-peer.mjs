// A Chromium page running peerjs@1.5.5 connects to a peerstorm virtual peer (the rtc stack on
// real sockets, `peerstorm peer --id ID`) through a PeerJS broker and checks that it echoes what
// it gets in the `binary` (including a 40,000-byte message PeerJS chunks), `json` and `MsgPack`
// (peerjs's own `serializer.msgpack.mjs`, a byte stream cut into 32 KiB messages) serializations.
// Prints one JSON object; exits 0 when every check passed, 1 otherwise.
//
//   node tools/js/browser-virtual-peer.mjs BROKER_PORT VIRTUAL_PEER_ID [CERT_PEM]
//
// With CERT_PEM the broker is reached over wss:// (PeerJS `secure: true`) and Chromium trusts
// exactly that certificate's key (--ignore-certificate-errors-spki-list), nothing else.
import { launch, servePage } from "./chromium.mjs";
import { createHash, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const port = Number(process.argv[2]);
const target = process.argv[3];
if (!port || !target) {
  console.error("usage: node browser-virtual-peer.mjs BROKER_PORT VIRTUAL_PEER_ID");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const peerjsSource = readFileSync(join(here, "node_modules/peerjs/dist/peerjs.min.js"), "utf8");
// The MsgPack serializer ships as an ES module ending in `export{X as MsgPack}`; in the page it
// runs as a plain script that hands the class to window.PeerjsMsgPack.
const msgpackModule = readFileSync(join(here, "node_modules/peerjs/dist/serializer.msgpack.mjs"), "utf8");
const exported = /export\s*\{\s*([\w$]+)\s+as\s+MsgPack\s*\}\s*;?/.exec(msgpackModule);
if (!exported) {
  console.error("serializer.msgpack.mjs: no `export{X as MsgPack}` in it");
  process.exit(2);
}
const msgpackScript = `(function(){${msgpackModule.slice(0, exported.index)};window.PeerjsMsgPack=${exported[1]};})();${msgpackModule.slice(exported.index + exported[0].length)}`;
const certPem = process.argv[4];
const opts = { host: "127.0.0.1", port, path: "/", key: "peerjs", secure: Boolean(certPem), debug: 0, config: { iceServers: [] } };
const trust = [];
if (certPem) {
  const spki = new X509Certificate(readFileSync(certPem)).publicKey.export({ type: "spki", format: "der" });
  trust.push(`--ignore-certificate-errors-spki-list=${createHash("sha256").update(spki).digest("base64")}`);
}
const page = await servePage(`<!doctype html><meta charset="utf-8"><title>peerstorm virtual peer interop</title><script>${peerjsSource.replace(/<\/script/gi, "<\\/script")}</script><script>${msgpackScript.replace(/<\/script/gi, "<\\/script")}</script>`);
const { context, close: closeBrowser } = await launch(trust);
const results = { checks: {}, errors: [] };
const deadline = setTimeout(() => {
  results.errors.push("timed out after 60 s");
  finish();
}, 60_000);

async function finish() {
  clearTimeout(deadline);
  results.ok = results.errors.length === 0 && Object.values(results.checks).length === 3 && Object.values(results.checks).every((c) => c.same);
  console.log(JSON.stringify(results));
  await closeBrowser().catch(() => {});
  await page.close().catch(() => {});
  process.exit(results.ok ? 0 : 1);
}

try {
  const p = await context.newPage();
  p.on("pageerror", (e) => results.errors.push(`page error: ${e.message}`));
  await p.goto(page.url);
  results.checks = await p.evaluate(
    ([target, opts]) =>
      new Promise((resolve, reject) => {
        const peer = new peerjs.Peer("browser-" + Math.random().toString(36).slice(2, 8), {
          ...opts,
          serializers: { MsgPack: window.PeerjsMsgPack },
        });
        peer.on("error", (e) => reject(new Error(`browser: ${e.type} ${e.message}`)));
        peer.on("open", async () => {
          const out = {};
          const big = new Uint8Array(40000).map((_, i) => (i * 7) & 0xff);
          const cases = {
            binary: [{ n: 1, s: "héllo" }, "plain string", big, [1, 2.5, null, true]],
            json: [{ n: 2, list: [1, "two", { three: 3 }] }, "json string", 42],
            MsgPack: [{ n: 3, s: "msgpack ✓" }, "msgpack string", big, [1, 2.5, null, true]],
          };
          for (const [serialization, messages] of Object.entries(cases)) {
            const conn = peer.connect(target, { serialization, reliable: true });
            try {
              const got = await new Promise((res, rej) => {
                const seen = [];
                const t = setTimeout(() => rej(new Error(`${serialization}: ${seen.length} of ${messages.length} echoes in 20 s`)), 20000);
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
            } catch (e) {
              out[serialization] = { sent: messages.length, same: false, error: String(e.message ?? e) };
            }
          }
          resolve(out);
        });
      }),
    [target, opts],
  );
} catch (e) {
  results.errors.push(String(e.message ?? e));
}
await finish();
