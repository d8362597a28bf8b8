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

const require = createRequire(import.meta.url);
const { util } = require("peerjs");

const out = process.argv[2];
if (!out) {
  console.error("usage: node gen-binarypack.mjs OUT_FILE");
  process.exit(2);
}

const hex = (buf) => Buffer.from(buf).toString("hex");
const bytes = (n, seed) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};
// JSON form of a value with binary tagged, as the Rust test reads it.
const tag = (v) => {
  if (v instanceof ArrayBuffer) return { $bin: hex(v) };
  if (ArrayBuffer.isView(v)) return { $bin: hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  if (Array.isArray(v)) return v.map(tag);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tag(x)]));
  return v;
};

const cases = {
  null: null,
  true: true,
  false: false,
  zero: 0,
  fixint: 127,
  negfix: -32,
  uint8: 200,
  int8: -100,
  uint16: 60000,
  int16: -30000,
  uint32: 4000000000,
  int32: -2000000000,
  int64: 1099511627776,
  negint64: -1099511627776,
  double: 3.14159,
  negdouble: -2.5,
  tiny: 1e-10,
  integral_double: 42.0,
  empty_string: "",
  short_string: "hello",
  unicode_string: "ünïcødé ✓ 🚀",
  string16: "x".repeat(300),
  string32: "y".repeat(70000),
  empty_bin: new Uint8Array(0).buffer,
  bin: bytes(10, 1).buffer,
  bin16: bytes(1000, 2).buffer,
  typed_view: bytes(20, 3),
  array: [1, "two", 3.5, null, false, [4]],
  array16: Array.from({ length: 20 }, (_, i) => i * 1000),
  object: { connectionId: "dc_k3j4h5g6f7", n: 1, nested: { a: [true] } },
  object16: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])),
  close: { __peerData: { type: "close" } },
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
