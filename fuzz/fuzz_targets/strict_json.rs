//! Fuzzes the strict JSON reader: it must never panic, must agree with `serde_json` on every
//! document it accepts, and canonical output must re-read to the same value.
//!
//! "The same" allows one float rounding step: without its `float_roundtrip` feature,
//! `serde_json` parses some long decimal mantissas one ulp off (the fuzzer found
//! `2222222282222…` with 73 digits: parsed, printed and re-parsed it moves by one ulp). Canonical
//! JSON is only ever hashed from typed data, never re-parsed, so this does not affect digests.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safedeploy::attest::json::parse_strict;
use safedeploy::canonical_json::canonical;
use serde_json::Value;

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= x.abs().max(y.abs()) * 4.0 * f64::EPSILON,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(strict) = parse_strict(data) {
        let plain: Value =
            serde_json::from_slice(data).expect("strict accepted what serde_json rejects");
        assert_eq!(strict, plain);
        let text = canonical(&strict);
        let again = parse_strict(text.as_bytes()).expect("canonical output re-reads");
        assert!(same(&again, &strict), "{again:?} != {strict:?}");
        // Canonical form is a fixed point once re-read.
        let again_text = canonical(&again);
        let third = parse_strict(again_text.as_bytes()).expect("re-reads");
        assert!(same(&third, &again));
    }
});
