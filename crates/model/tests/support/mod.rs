//! Reading the serialization vectors that `tools/js/gen-binarypack.mjs` and
//! `tools/js/gen-msgpack.mjs` write: one JSON object per line, `{"name", "value", "messages"}`,
//! binary in `value` as `{"$bin": hex}`.

use peerstorm_model::peerjs::binarypack::Value;

pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The vector's JSON value, with `{"$bin": hex}` read as binary. A JSON integer beyond
/// JavaScript's safe range was a double in JavaScript, so it is read as one.
pub fn value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Object(o) if o.len() == 1 && o.contains_key("$bin") => {
            Value::Bin(unhex(o["$bin"].as_str().unwrap()))
        }
        serde_json::Value::Object(o) => Value::Map(o.iter().map(|(k, v)| (Value::str(k), value(v))).collect()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
        serde_json::Value::Number(n) if n.as_i64().is_some_and(|i| i.unsigned_abs() > (1 << 53) - 1) => {
            Value::Float(n.as_f64().unwrap())
        }
        other => Value::from_json(other),
    }
}

pub struct Vector {
    pub name: String,
    pub value: Value,
    pub messages: Vec<Vec<u8>>,
}

/// The vectors in `fixtures/<file>`.
pub fn vectors(file: &str) -> Vec<Vector> {
    let path = format!(
        "{}/../../fixtures/{file}",
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            Vector {
                name: j["name"].as_str().unwrap().to_string(),
                value: value(&j["value"]),
                messages: j["messages"].as_array().unwrap().iter().map(|m| unhex(m.as_str().unwrap())).collect(),
            }
        })
        .collect()
}
