// Media calls between a Chromium page running peerjs@1.5.5 (its fake camera and microphone:
// --use-fake-device-for-media-stream, see chromium.mjs) and peerstorm virtual peers, both ways:
//
//   1. the page calls VIRTUAL_ID (`peer.call(id, stream)`), which answers with its synthetic
//      Opus- and VP8-shaped stream; the page records what it received (`inbound-rtp`);
//   2. the page prints `ready BROWSER_ID` and waits for a call (the test starts
//      `peerstorm peer --call BROWSER_ID`), answers it with its stream (`call.answer(stream)`)
//      and records what it received.
//
//   node tools/js/browser-media.mjs BROKER_PORT VIRTUAL_ID [SECONDS]
//
// Prints `ready BROWSER_ID`, then one JSON object with each direction's inbound-rtp figures
// (audio and video: packets, bytes, and for video frames received and decoded, key frames
// decoded; for the call it answered, the call's `metadata`); exits 0 when both calls carried
// audio and video, 1 otherwise.
import { launch, servePage } from "./chromium.mjs";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const port = Number(process.argv[2]);
const target = process.argv[3];
const seconds = Number(process.argv[4] || 6);
if (!port || !target) {
  console.error("usage: node browser-media.mjs BROKER_PORT VIRTUAL_ID [SECONDS]");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const peerjsSource = readFileSync(join(here, "node_modules/peerjs/dist/peerjs.min.js"), "utf8");
const page = await servePage(
  `<!doctype html><meta charset="utf-8"><title>peerstorm media interop</title><script>${peerjsSource.replace(/<\/script/gi, "<\\/script")}</script>`,
);
const { context, close: closeBrowser } = await launch();
const results = { errors: [] };
const deadline = setTimeout(() => {
  results.errors.push("timed out after 90 s");
  finish();
}, 90_000);

async function finish() {
  clearTimeout(deadline);
  const good = (d) => d && d.audio?.packetsReceived > 0 && d.video?.packetsReceived > 0;
  results.ok = results.errors.length === 0 && good(results.calling) && good(results.answering);
  console.log(JSON.stringify(results));
  await closeBrowser().catch(() => {});
  await page.close().catch(() => {});
  process.exit(results.ok ? 0 : 1);
}

try {
  const p = await context.newPage();
  p.on("pageerror", (e) => results.errors.push(`page error: ${e.message}`));
  await p.goto(page.url);
  const id = "browser-media-" + Math.random().toString(36).slice(2, 8);
  await p.evaluate(
    ([id, port, seconds]) =>
      new Promise((resolve, reject) => {
        // The figures of one call's inbound-rtp streams, by kind, `seconds` after its stream came.
        window.measure = async (call, hangUp = true) => {
          await new Promise((r) => setTimeout(r, seconds * 1000));
          const out = {};
          (await call.peerConnection.getStats()).forEach((s) => {
            if (s.type !== "inbound-rtp") return;
            out[s.kind] = {
              packetsReceived: s.packetsReceived,
              packetsLost: s.packetsLost,
              bytesReceived: s.bytesReceived,
              jitter: s.jitter,
              framesReceived: s.framesReceived,
              framesDecoded: s.framesDecoded,
              keyFramesDecoded: s.keyFramesDecoded,
              pliCount: s.pliCount,
              nackCount: s.nackCount,
              decoderImplementation: s.decoderImplementation,
            };
          });
          if (hangUp) call.close();
          return out;
        };
        window.peer = new peerjs.Peer(id, { host: "127.0.0.1", port, path: "/", key: "peerjs", debug: 0, config: { iceServers: [] } });
        window.peer.on("error", (e) => reject(new Error(`browser: ${e.type} ${e.message}`)));
        window.peer.on("open", async () => {
          window.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 320, height: 240 } });
          resolve();
        });
      }),
    [id, port, seconds],
  );
  // 1. The page calls the virtual peer.
  results.calling = await p.evaluate(
    (target) =>
      new Promise((resolve, reject) => {
        const call = window.peer.call(target, window.stream);
        call.on("error", (e) => reject(new Error(`call: ${e.message}`)));
        call.on("stream", () => window.measure(call).then(resolve, reject));
      }),
    target,
  );
  // 2. A virtual peer calls the page.
  const answered = p.evaluate(
    () =>
      new Promise((resolve, reject) => {
        window.peer.on("call", (call) => {
          // The virtual caller hangs up when it has sent for its time: PeerJS must see the
          // call close (its data channel closing), without closing it from here.
          let closed = null;
          const t0 = Date.now();
          call.on("close", () => (closed = (Date.now() - t0) / 1000));
          call.on("error", (e) => reject(new Error(`answer: ${e.message}`)));
          call.on("stream", () =>
            window.measure(call, false).then(async (m) => {
              for (let i = 0; i < 150 && closed === null; i++) await new Promise((r) => setTimeout(r, 100));
              resolve({ ...m, metadata: call.metadata ?? null, closedByRemoteAfterS: closed });
            }, reject),
          );
          call.answer(window.stream);
        });
      }),
  );
  console.log(`ready ${id}`);
  results.answering = await answered;
} catch (e) {
  results.errors.push(String(e && e.message ? e.message : e));
}
await finish();
