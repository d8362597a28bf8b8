// Writes MessagePack vectors made by the encoder peerjs@1.5.5's `MsgPack` serialization uses
// (@msgpack/msgpack's `encode` with its default options, as `serializer.msgpack.mjs` bundles
// it), each value's encoding cut into 32 KiB data-channel messages as its StreamConnection does.
//
//   node tools/js/gen-msgpack.mjs OUT_FILE
//
// One JSON object per line: {"name", "value", "messages": [hex, ...]}, binary in `value` written
// as {"$bin": "<hex>"} (the same format as gen-binarypack.mjs).
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { bytes, commonCases, hex, tag } from "./vector-cases.mjs";

const require = createRequire(import.meta.url);
const { encode } = require("@msgpack/msgpack");

const out = process.argv[2];
if (!out) {
  console.error("usage: node gen-msgpack.mjs OUT_FILE");
  process.exit(2);
}

const CHUNK = 32768;
const cases = {
  ...commonCases(),
  max_safe: 9007199254740991,
  beyond_safe: 18014398509481984,
  str8: "s".repeat(40),
  empty_bin: new Uint8Array(0),
  bin8: bytes(10, 1),
  bin16: bytes(1000, 2),
  bin32_chunked: bytes(66000, 3),
};

const lines = [];
for (const [name, value] of Object.entries(cases)) {
  const enc = encode(value);
  const messages = [];
  for (let i = 0; i < enc.length; i += CHUNK) messages.push(hex(enc.subarray(i, i + CHUNK)));
  lines.push(JSON.stringify({ name, value: tag(value), messages }));
}
writeFileSync(out, lines.join("\n") + "\n");
console.log(`wrote ${lines.length} vectors to ${out}`);
