// Writes BinaryPack vectors made by the real JavaScript code that peerjs@1.5.5 runs: values
// packed by `util.pack` (peerjs-js-binarypack 2.1.0) and large values split by `util.chunk`,
// PeerJS's own chunker, then each chunk packed as the BinaryConnection sends it.
//
//   node tools/js/gen-binarypack.mjs OUT_FILE
//
// One JSON object per line: {"name", "value", "messages": [hex, ...]}. `value` is JSON with
// binary written as {"$bin": "<hex>"}.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { bytes, commonCases, hex, tag } from "./vector-cases.mjs";

const require = createRequire(import.meta.url);
const { util } = require("peerjs");

const out = process.argv[2];
if (!out) {
  console.error("usage: node gen-binarypack.mjs OUT_FILE");
  process.exit(2);
}

const cases = {
  ...commonCases(),
  empty_bin: new Uint8Array(0).buffer,
  bin: bytes(10, 1).buffer,
  bin16: bytes(1000, 2).buffer,
  typed_view: bytes(20, 3),
};

const lines = [];
for (const [name, value] of Object.entries(cases)) {
  const packed = util.pack(value);
  const messages = packed.byteLength > util.chunkedMTU ? util.chunk(packed).map((c) => hex(util.pack(c))) : [hex(packed)];
  lines.push(JSON.stringify({ name, value: tag(value), messages }));
}
// A large binary message, chunked exactly as BinaryConnection._sendChunks sends it.
const big = bytes(40000, 9).buffer;
const packed = util.pack(big);
lines.push(JSON.stringify({ name: "chunked_bin_40000", value: tag(big), messages: util.chunk(packed).map((c) => hex(util.pack(c))) }));
const obj = { text: "z".repeat(20000), n: 7 };
lines.push(JSON.stringify({ name: "chunked_object", value: tag(obj), messages: util.chunk(util.pack(obj)).map((c) => hex(util.pack(c))) }));
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${lines.length} vectors to ${out}`);
