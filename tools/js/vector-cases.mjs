// What gen-binarypack.mjs and gen-msgpack.mjs share: hex output, deterministic bytes, the JSON
// form of a value with binary tagged as {"$bin": hex} (as the Rust tests read it), and the values
// both serializations are checked on.
export const hex = (buf) => Buffer.from(buf).toString("hex");

export const bytes = (n, seed) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

export const tag = (v) => {
  if (v instanceof ArrayBuffer) return { $bin: hex(v) };
  if (ArrayBuffer.isView(v)) return { $bin: hex(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) };
  if (Array.isArray(v)) return v.map(tag);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tag(x)]));
  return v;
};

// Scalars, strings and containers in every length class either format has.
export const commonCases = () => ({
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
  array: [1, "two", 3.5, null, false, [4]],
  array16: Array.from({ length: 20 }, (_, i) => i * 1000),
  object: { connectionId: "dc_k3j4h5g6f7", n: 1, nested: { a: [true] } },
  object16: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])),
  close: { __peerData: { type: "close" } },
});
