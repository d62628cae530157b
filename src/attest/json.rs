//! Strict JSON reading and canonical JSON writing.
//!
//! `serde_json` silently keeps the last value when an object repeats a key, which is a
//! parser-differential risk (another verifier may keep the first). [`parse_strict`] reads JSON
//! into a [`serde_json::Value`] and rejects any object, at any depth, that repeats a key; typed
//! structures are then read from that value. [`canonical`] writes a value with object keys in
//! byte order and no insignificant whitespace, independent of `serde_json`'s `preserve_order`
//! feature.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Reads one JSON document, rejecting duplicate object keys at every depth, trailing data and
/// nesting deeper than `serde_json`'s recursion limit (128).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads a typed value from JSON bytes via [`parse_strict`] (so duplicate keys are rejected
/// everywhere, including in maps and in ignored fields).
pub fn from_slice_strict<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    serde_json::from_value(parse_strict(bytes)?)
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number is not finite"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        StrictSeed.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate object key {key:?}")));
            }
            let value = map.next_value_seed(StrictSeed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Writes `value` as canonical JSON: object keys sorted by their UTF-8 bytes (which is Unicode
/// code point order), no whitespace, strings and numbers exactly as `serde_json` writes them
/// (minimal escaping, non-ASCII left as UTF-8; integers without a fraction, other numbers in
/// shortest round-trip form).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
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
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert!(parse_strict(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict(br#"{"x":[{"sha256":"aa","sha256":"bb"}]}"#).is_err());
        assert!(parse_strict(br#"{"x":{"y":{"z":1,"z":1}}}"#).is_err());
        assert!(parse_strict(br#"{"a":1,"b":{"a":2}}"#).is_ok());
    }

    #[test]
    fn plain_serde_json_keeps_the_last_duplicate() {
        // The reason this module exists.
        let v: BTreeMap<String, String> =
            serde_json::from_str(r#"{"sha256":"aaa","sha256":"bbb"}"#).unwrap_or_default();
        assert_eq!(v.get("sha256").map(String::as_str), Some("bbb"));
    }

    #[test]
    fn trailing_data_and_deep_nesting_are_rejected() {
        assert!(parse_strict(br#"{"a":1} x"#).is_err());
        assert!(parse_strict(br#"{"a":1}{"b":2}"#).is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse_strict(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_strict(ok.as_bytes()).is_ok());
    }

    #[test]
    fn strict_value_equals_plain_value_without_duplicates() {
        let text = br#"{"b":[1,2.5,-3,true,null,"\u00e9\n"],"a":{"z":{},"y":[]},"n":18446744073709551615}"#;
        let strict = parse_strict(text).unwrap_or_default();
        let plain: Value = serde_json::from_slice(text).unwrap_or_default();
        assert_eq!(strict, plain);
    }

    #[test]
    fn canonical_sorts_keys_and_drops_whitespace() {
        let v = parse_strict(
            br#"{ "b" : 1, "a" : { "d" : "x", "c" : [ 2 , 1 ] }, "\u00e9": "", "Z": null }"#,
        )
        .unwrap_or_default();
        assert_eq!(
            canonical(&v),
            r#"{"Z":null,"a":{"c":[2,1],"d":"x"},"b":1,"é":""}"#
        );
    }
}
