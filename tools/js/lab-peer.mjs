// One Chromium page running peerjs@1.5.5 as a lab host (inside a network namespace that
// peerstorm's lab put behind a simulated NAT). It joins the broker; with "connect" it opens a
// DataConnection and runs the echo workload (`messages` messages of `messageBytes` bytes, each
// after the previous echo); without, it echoes what it gets.
//
// Prints "open" once registered, then one JSON line in the shape `peerstorm peer` prints (a
// ConnOutcome: remote, offerer, milestones, bytes_moved) plus `ok`. Milestones are
// milliseconds since the page created its Peer, read from the browser's own events: the
// signaling WebSocket's open, PeerJS's OPEN, setLocalDescription/setRemoteDescription (an
// ANSWER: its frame's arrival),
// icecandidate (first candidate, first srflx, first relay, gathering complete),
// iceconnectionstatechange (ice_connected), connectionstatechange (dtls_connected: DTLS is up
// when the connection state says "connected"), the DataConnection's open, the first echo and the
// last. The selected pair's candidate types come from getStats. With "vanilla": true the page
// sends its offer or answer only once gathering is complete, candidates in the SDP (see below). Exits 0 when the workload ran
// (answerer: when it echoed), 1 otherwise.
//
//   node tools/js/lab-peer.mjs '{"broker":"198.51.100.10:9000","id":"a","connect":"b",
//                                "iceServers":[...],"messages":10,"messageBytes":1000,
//                                "timeoutMs":40000,"vanilla":false,"settleMs":1000}'
import { launch, servePage } from "./chromium.mjs";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const cfg = JSON.parse(process.argv[2] ?? "{}");
if (!cfg.broker || !cfg.id) {
  console.error("usage: node lab-peer.mjs '{\"broker\":\"HOST:PORT\",\"id\":\"ID\",\"connect\":\"OTHER\",\"iceServers\":[]}'");
  process.exit(2);
}
const timeoutMs = cfg.timeoutMs ?? 40000;
const SETTLE_MS = 1000;
const here = dirname(fileURLToPath(import.meta.url));
const peerjsSource = readFileSync(join(here, "node_modules/peerjs/dist/peerjs.min.js"), "utf8");
const page = await servePage(`<!doctype html><meta charset="utf-8"><title>peerstorm lab peer</title><script>${peerjsSource.replace(/<\/script/gi, "<\\/script")}</script>`);
const { context, close } = await launch();
let result = { remote: cfg.connect ?? "", offerer: Boolean(cfg.connect), milestones: { at: {}, failure: null, selected: null, failed_at: null }, bytes_moved: 0, ok: false };
let p;
const timer = setTimeout(async () => {
  // What the page saw so far, then the verdict.
  const sofar = p ? await p.evaluate(() => window.labState?.()).catch(() => null) : null;
  if (sofar) result = { ...result, ...sofar };
  const m = result.milestones;
  if (!m.failure) {
    m.failure = "timeout";
    m.failed_at = timeoutMs;
  }
  finish({ error: `timed out after ${timeoutMs} ms` });
}, timeoutMs);

async function finish(extra) {
  clearTimeout(timer);
  result = { ...result, ...extra };
  console.log(JSON.stringify(result));
  await close().catch(() => {});
  await page.close().catch(() => {});
  process.exit(result.ok ? 0 : 1);
}

try {
  p = await context.newPage();
  p.on("pageerror", (e) => finish({ error: `page error: ${e.message}` }));
  await p.goto(page.url);
  // A browser that has just been launched is still busy starting (its GPU, network and
  // renderer processes, the page's script): on the project's two cores a Chromium that joined
  // and connected at once took twice its settled time to describe and to gather at 0 ms RTT
  // (an answerer receiving the offer 50-100 ms after its own OPEN began gathering 18-20 ms after
  // it, against 7 ms 1.4 s after OPEN). Users' browsers connect long after launch; the page
  // waits this long before it creates its Peer so the lab measures a settled browser.
  await new Promise((r) => setTimeout(r, cfg.settleMs ?? SETTLE_MS));
  const [host, port] = cfg.broker.split(":");
  const opts = { host, port: Number(port), path: "/", key: "peerjs", secure: false, debug: 0, config: { iceServers: cfg.iceServers ?? [], iceTransportPolicy: cfg.relayOnly ? "relay" : "all" } };
  await p.exposeFunction("labOpen", () => console.log("open"));
  const out = await p.evaluate(
    ([cfg, opts]) =>
      new Promise((resolve) => {
        const t0 = performance.now();
        const at = {};
        const state = { remote: cfg.connect ?? "", offerer: Boolean(cfg.connect), milestones: { at, failure: null, selected: null, failed_at: null }, bytes_moved: 0 };
        window.labState = () => state;
        const mark = (name) => {
          if (!(name in at)) at[name] = performance.now() - t0;
        };
        const fail = (why) => {
          if (!state.milestones.failure) {
            state.milestones.failure = why;
            state.milestones.failed_at = performance.now() - t0;
          }
        };
        // The signaling socket's open (PeerJS keeps it to itself). Vanilla ICE (cfg.vanilla):
        // PeerJS always trickles, so its OFFER and ANSWER frames are held until the connection
        // has gathered every candidate and then carry the complete local description, and its
        // CANDIDATE frames are dropped: the remote side sees what a vanilla peer sends.
        let lastPc = null;
        const NativeWebSocket = window.WebSocket;
        window.WebSocket = class extends NativeWebSocket {
          constructor(...a) {
            super(...a);
            this.addEventListener("open", () => mark("signaling_connected"));
            // The ANSWER counts as received when its frame arrives, before PeerJS hands it to
            // setRemoteDescription, as a virtual peer counts it (the description's application,
            // 2-14 ms here, is part of the next stage on both).
            this.addEventListener("message", (e) => {
              if ("answer_received" in at || typeof e.data !== "string" || !e.data.includes('"ANSWER"')) return;
              try {
                if (JSON.parse(e.data).type === "ANSWER") mark("answer_received");
              } catch {}
            });
          }
          send(data) {
            if (!cfg.vanilla || typeof data !== "string") return super.send(data);
            let frame;
            try {
              frame = JSON.parse(data);
            } catch {
              return super.send(data);
            }
            if (frame.type === "CANDIDATE") return;
            const pc = lastPc;
            if ((frame.type !== "OFFER" && frame.type !== "ANSWER") || !pc) return super.send(data);
            const release = () => {
              frame.payload.sdp = { type: pc.localDescription.type, sdp: pc.localDescription.sdp };
              super.send(JSON.stringify(frame));
              // The offer leaves now, not at setLocalDescription.
              if (frame.type === "OFFER") at.offer_sent = performance.now() - t0;
            };
            if (pc.iceGatheringState === "complete") return release();
            const wait = () => {
              if (pc.iceGatheringState !== "complete") return;
              pc.removeEventListener("icegatheringstatechange", wait);
              release();
            };
            pc.addEventListener("icegatheringstatechange", wait);
          }
        };
        // Every RTCPeerConnection PeerJS makes reports its stages.
        const NativePC = window.RTCPeerConnection;
        window.RTCPeerConnection = class extends NativePC {
          constructor(...a) {
            super(...a);
            lastPc = this;
            this.addEventListener("icecandidate", (e) => {
              if (!e.candidate || !e.candidate.candidate) return mark("gathering_complete");
              mark("first_local_candidate");
              if (e.candidate.type === "srflx") mark("first_srflx");
              if (e.candidate.type === "relay") mark("first_relay");
            });
            this.addEventListener("icegatheringstatechange", () => {
              if (this.iceGatheringState === "complete") mark("gathering_complete");
            });
            this.addEventListener("iceconnectionstatechange", () => {
              const s = this.iceConnectionState;
              if (s === "connected" || s === "completed") mark("ice_connected");
              if (s === "failed") fail("ice_failed");
            });
            this.addEventListener("connectionstatechange", () => {
              if (this.connectionState === "connected") mark("dtls_connected");
              if (this.connectionState === "failed") fail("ice_connected" in at ? "dtls_failed" : "ice_failed");
            });
          }
          async setLocalDescription(d) {
            const r = await super.setLocalDescription(d);
            if (this.localDescription?.type === "offer") mark("offer_sent");
            return r;
          }
          async setRemoteDescription(d) {
            if (d?.type === "offer") mark("offer_received");
            return super.setRemoteDescription(d);
          }
        };
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
          if (local?.candidateType && remote?.candidateType) state.milestones.selected = [local.candidateType, remote.candidateType];
        };
        const peer = new peerjs.Peer(cfg.id, opts);
        peer.on("error", (e) => {
          fail(e.type === "unavailable-id" ? "id_taken" : { broker_error: `${e.type}: ${e.message}` });
          resolve({ ...state, ok: false, error: `${e.type}: ${e.message}` });
        });
        peer.on("open", () => {
          mark("open");
          window.labOpen();
          if (!cfg.connect) return;
          const conn = peer.connect(cfg.connect, { reliable: true });
          const payload = new Uint8Array(cfg.messageBytes ?? 1000).fill(0x61);
          let echoed = 0;
          const total = cfg.messages ?? 10;
          conn.on("open", async () => {
            mark("data_channel_open");
            await describe(conn);
            conn.on("data", async (d) => {
              const n = d?.byteLength ?? d?.length ?? 0;
              state.bytes_moved += n;
              echoed += 1;
              if (echoed === 1) mark("first_echo");
              if (echoed < total) {
                conn.send(payload);
                state.bytes_moved += payload.byteLength;
              } else {
                mark("workload_done");
                resolve({ ...state, ok: n === payload.byteLength });
              }
            });
            conn.send(payload);
            state.bytes_moved += payload.byteLength;
          });
        });
        peer.on("connection", (conn) => {
          state.remote = conn.peer;
          conn.on("open", () => {
            mark("data_channel_open");
            describe(conn);
          });
          let echoed = 0;
          conn.on("data", (d) => {
            conn.send(d);
            state.bytes_moved += 2 * (d?.byteLength ?? d?.length ?? 0);
            echoed += 1;
            if (echoed === 1) mark("first_echo");
            // Stay until the offerer is done (the lab stops this host then), or a while after
            // the last echo.
            clearTimeout(window.labQuiet);
            window.labQuiet = setTimeout(() => resolve({ ...state, ok: true }), 3000);
          });
        });
      }),
    [cfg, opts],
  );
  await finish(out);
} catch (e) {
  await finish({ error: String(e) });
}
