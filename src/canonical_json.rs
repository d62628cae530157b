//! Canonical JSON writing, the ground floor under every digest of the operator: the
//! configuration digest an attestation binds (`attest::config`) and the content digests of the
//! ConfigMaps and Secrets a revision references (`core::config`) both hash these bytes, so the
//! two wings agree without importing each other.
//!
//! [`canonical`] writes a value with object keys in byte order and no insignificant whitespace,
//! independent of `serde_json`'s `preserve_order` feature. [`kind_of`] names a value's JSON type
//! for messages that must not quote the value (the strict attestation reader, the web provider).

use std::collections::BTreeMap;

use serde_json::Value;

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8 bytes (which is Unicode
/// code point order), no whitespace, strings and numbers exactly as `serde_json` writes them
/// (minimal escaping, non-ASCII left as UTF-8; integers without a fraction, other numbers in
/// shortest round-trip form).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// The JSON type of `value` with its article ("a string", "an array", "null"), for messages
/// that must not quote a value (it may be large, or secret).
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            let sorted: BTreeMap<&str, &Value> =
                object.iter().map(|(k, v)| (k.as_str(), v)).collect();
            out.push('{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // Serialising a &str cannot fail; the fallback keeps this total without unwrap.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b" : 1, "a" : { "d" : "x", "c" : [ 2 , 1 ] }, "\u00e9": "", "Z": null }"#,
        )
        .unwrap_or_default();
        assert_eq!(
            canonical(&v),
            r#"{"Z":null,"a":{"c":[2,1],"d":"x"},"b":1,"é":""}"#
        );
    }
}
