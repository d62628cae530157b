//! Strict JSON reading.
//!
//! `serde_json` silently keeps the last value when an object repeats a key, which is a
//! parser-differential risk (another verifier may keep the first). [`parse_strict`] reads JSON
//! into a [`serde_json::Value`] and rejects any object, at any depth, that repeats a key.
//!
//! Typed structures are then read from that value with [`from_value_strict`] (or
//! [`from_slice_strict`], both steps at once), never with `serde_json::from_value`: `serde`'s
//! derives also accept a struct written as an *array* of its field values in declaration order
//! (`["https://in-toto.io/Statement/v1", [...], ...]`), another parser differential. The strict
//! reader only gives a struct or a map a JSON object and a sequence a JSON array, and its errors
//! say where in the document the problem is (`at subject[0].digest`).
//!
//! Writing is the other half: [`crate::canonical_json`].

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde_json::{Map, Value};

use crate::canonical_json::kind_of;

/// Reads one JSON document, rejecting duplicate object keys at every depth, trailing data and
/// nesting deeper than `serde_json`'s recursion limit (128).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictSeed.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Reads a typed value from JSON bytes via [`parse_strict`] (so duplicate keys are rejected
/// everywhere, including in maps and in ignored fields) and [`from_value_strict`] (so every
/// struct and map is a JSON object and every sequence a JSON array).
pub fn from_slice_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    from_value_strict(&parse_strict(bytes)?)
}

/// Reads a typed value from `value` like `serde_json::from_value`, except that a struct or a map
/// is only read from a JSON object, a sequence or tuple only from a JSON array, and an enum only
/// from a string (unit variants; no attestation type has another kind). The error names the
/// offending place, such as `at subject[0].digest`.
pub fn from_value_strict<T: DeserializeOwned>(value: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(Strict(value)).map_err(<serde_json::Error as de::Error>::custom)
}

/// A [`Value`] being read by [`from_value_strict`].
#[derive(Clone, Copy)]
struct Strict<'a>(&'a Value);

/// One step from a value to a nested one.
#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

/// An error of [`from_value_strict`] with where it happened.
#[derive(Debug)]
struct StrictError {
    message: String,
    /// From the failing value outwards: each enclosing array or object appends its step while
    /// the error travels up, which is cheaper than tracking the path on the way down.
    path: Vec<Segment>,
}

impl StrictError {
    fn within(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if self.path.is_empty() {
            return Ok(());
        }
        f.write_str(" at ")?;
        for (i, segment) in self.path.iter().rev().enumerate() {
            match segment {
                Segment::Index(n) => write!(f, "[{n}]")?,
                Segment::Key(key) if is_plain_key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                // Quoted so that a hostile key cannot make the path read as a different one.
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl std::error::Error for StrictError {}

impl de::Error for StrictError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            path: Vec::new(),
        }
    }
}

fn wrong_shape(expected: &str, found: &Value) -> StrictError {
    de::Error::custom(format!("expected {expected}, found {}", kind_of(found)))
}

fn visit_array<'de, V: Visitor<'de>>(
    items: &'de [Value],
    visitor: V,
) -> Result<V::Value, StrictError> {
    let mut access = StrictSeq {
        items: items.iter().enumerate(),
    };
    let value = visitor.visit_seq(&mut access)?;
    // As `serde_json` does: a fixed-size target (tuple) must use every element.
    if access.items.len() == 0 {
        Ok(value)
    } else {
        Err(de::Error::invalid_length(
            items.len(),
            &"fewer elements in the array",
        ))
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    object: &'de Map<String, Value>,
    visitor: V,
) -> Result<V::Value, StrictError> {
    let mut access = StrictMap {
        entries: object.iter(),
        pending: None,
    };
    visitor.visit_map(&mut access)
}

struct StrictSeq<'de> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
}

impl<'de> SeqAccess<'de> for StrictSeq<'de> {
    type Error = StrictError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, StrictError> {
        match self.items.next() {
            Some((i, item)) => seed
                .deserialize(Strict(item))
                .map(Some)
                .map_err(|e| e.within(Segment::Index(i))),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct StrictMap<'de> {
    entries: serde_json::map::Iter<'de>,
    pending: Option<(&'de str, &'de Value)>,
}

impl<'de> MapAccess<'de> for StrictMap<'de> {
    type Error = StrictError;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, StrictError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key.as_str(), value));
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
            .map_err(|e: StrictError| e.within(Segment::Key(key.clone())))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, StrictError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a map value was read before its key"));
        };
        seed.deserialize(Strict(value))
            .map_err(|e| e.within(Segment::Key(key.to_owned())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

impl<'de> Deserializer<'de> for Strict<'de> {
    type Error = StrictError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(f) = n.as_f64() {
                    visitor.visit_f64(f)
                } else {
                    Err(de::Error::custom(format!("number {n} is out of range")))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(object) => visit_object(object, visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Object(object) => visit_object(object, visitor),
            other => Err(wrong_shape(&format!("a JSON object ({name})"), other)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Object(object) => visit_object(object, visitor),
            other => Err(wrong_shape("a JSON object", other)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            other => Err(wrong_shape("a JSON array", other)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(wrong_shape(&format!("a string ({name})"), other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct identifier
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Inner {
        a: String,
        #[serde(default)]
        b: Option<u8>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        #[serde(default)]
        pair: Option<(u8, u8)>,
        #[serde(default)]
        any: Value,
    }

    fn read(text: &str) -> Result<Outer, String> {
        from_slice_strict(text.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn structs_and_maps_are_only_read_from_objects() {
        let ok = read(
            r#"{"inner":{"a":"x"},"list":[{"a":"y","b":2}],"map":{"k":{"a":"z"}},"pair":[1,2],"any":[1,{"q":[]}],"extra":[]}"#,
        )
        .expect("valid");
        assert_eq!(ok.list[0].b, Some(2));
        assert_eq!(ok.any, serde_json::json!([1, {"q": []}]));
        // Plain serde_json takes the array of field values: the reason for this reader.
        let sneaky = r#"{"inner":["x",1],"list":[]}"#;
        assert!(serde_json::from_str::<Outer>(sneaky).is_ok());
        for (text, message) in [
            (
                sneaky,
                "expected a JSON object (Inner), found an array at inner",
            ),
            (
                r#"[{"a":"x"},[]]"#,
                "expected a JSON object (Outer), found an array",
            ),
            (
                r#"{"inner":{"a":"x"},"list":[{"a":"y"},["z"]]}"#,
                "expected a JSON object (Inner), found an array at list[1]",
            ),
            (
                r#"{"inner":{"a":"x"},"list":[],"map":[["k",{"a":"z"}]]}"#,
                "expected a JSON object, found an array at map",
            ),
            (
                r#"{"inner":{"a":"x"},"list":[],"map":{"k":["z"]}}"#,
                "expected a JSON object (Inner), found an array at map.k",
            ),
            (
                r#"{"inner":{"a":"x"},"list":[],"map":{"a.b":{"a":1}}}"#,
                "invalid type: integer `1`, expected a string at map[\"a.b\"].a",
            ),
            (
                r#"{"inner":{"a":"x"},"list":{"0":{"a":"y"}}}"#,
                "expected a JSON array, found an object at list",
            ),
            (
                r#"{"inner":{"a":"x"},"list":[],"pair":[1,2,3]}"#,
                "invalid length 3, expected fewer elements in the array at pair",
            ),
            (
                r#"{"inner":{"b":1},"list":[]}"#,
                "missing field `a` at inner",
            ),
            (
                r#"{"inner":{"a":"x","b":300},"list":[]}"#,
                "invalid value: integer `300`, expected u8 at inner.b",
            ),
        ] {
            assert_eq!(read(text).err().as_deref(), Some(message), "{text}");
        }
    }

    #[test]
    fn strict_typed_reading_agrees_with_serde_json_on_objects() {
        let text =
            r#"{"inner":{"a":"x","b":null},"list":[{"a":"\u00e9"}],"pair":null,"any":{"n":-1.5}}"#;
        let strict = read(text).expect("strict");
        let plain: Outer = serde_json::from_str(text).expect("plain");
        assert_eq!(strict, plain);
    }
}
