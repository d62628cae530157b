//! Issue 12, defect 8: every struct-shaped value must be a JSON object. `serde` derives also
//! accept a sequence of the field values in declaration order, so a signer's tool (or an
//! attacker controlling one) could produce payloads another verifier reads differently.

use super::*;

/// Rejects as `Malformed` with a message containing every one of `needles`.
fn assert_malformed(f: &Fixture, envelope: &[u8], needles: &[&str]) {
    let r = verify(envelope, &f.expected, &f.policy, now()).expect_err("must be rejected");
    assert_eq!(r.reason, RejectReason::Malformed, "{r:?}");
    for needle in needles {
        assert!(
            r.message.contains(needle),
            "{needle:?} not in {:?}",
            r.message
        );
    }
}

/// An object's values, in order, as an array: the shape serde's derives used to accept.
fn values_of(value: &Value) -> Value {
    Value::Array(
        value
            .as_object()
            .expect("an object")
            .values()
            .cloned()
            .collect(),
    )
}

#[test]
fn a_signed_statement_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| *v = values_of(v));
    assert_malformed(&f, &env, &["Statement", "found an array"]);
}

#[test]
fn a_signed_predicate_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| v["predicate"] = values_of(&v["predicate"]));
    assert_malformed(
        &f,
        &env,
        &["predicate", "LocalValidation", "found an array"],
    );
}

#[test]
fn a_signed_subject_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| v["subject"][0] = values_of(&v["subject"][0]));
    assert_malformed(&f, &env, &["Subject", "found an array", "subject[0]"]);
}

#[test]
fn a_signed_digest_map_as_an_array_is_malformed() {
    let f = fixture();
    let env = f.with_statement_json(|v| {
        v["subject"][0]["digest"] = values_of(&v["subject"][0]["digest"]);
    });
    assert_malformed(&f, &env, &["found an array", "subject[0].digest"]);
    let env = f.with_statement_json(|v| {
        v["predicate"]["configDigest"] = values_of(&v["predicate"]["configDigest"]);
    });
    assert_malformed(
        &f,
        &env,
        &["DigestSha256", "found an array", "configDigest"],
    );
}

#[test]
fn nested_structs_of_the_predicate_as_arrays_are_malformed() {
    let f = fixture();
    for (pointer, needle) in [
        ("/predicate/verifier", "verifier"),
        ("/predicate/checks/2", "checks[2]"),
        ("/predicate/checks/2/metrics/0", "checks[2].metrics[0]"),
        (
            "/predicate/checks/2/metrics/0/threshold",
            "checks[2].metrics[0].threshold",
        ),
    ] {
        let env = f.with_statement_json(|v| {
            let node = v.pointer_mut(pointer).expect(pointer);
            *node = values_of(node);
        });
        assert_malformed(&f, &env, &["found an array", needle]);
    }
}

#[test]
fn an_envelope_as_an_array_is_malformed() {
    let f = fixture();
    let good: Value = serde_json::from_slice(&f.envelope()).expect("json");
    let env = serde_json::to_vec(&values_of(&good)).expect("bytes");
    assert_malformed(&f, &env, &["Envelope", "found an array"]);
}

#[test]
fn a_signatures_entry_as_an_array_is_malformed() {
    let f = fixture();
    let mut env: Value = serde_json::from_slice(&f.envelope()).expect("json");
    env["signatures"][0] = values_of(&env["signatures"][0]);
    let env = serde_json::to_vec(&env).expect("bytes");
    assert_malformed(
        &f,
        &env,
        &["EnvelopeSignature", "found an array", "signatures[0]"],
    );
}

#[test]
fn numbers_where_strings_are_expected_are_malformed() {
    let f = fixture();
    for (pointer, needle) in [
        ("/_type", "_type"),
        ("/predicateType", "predicateType"),
        ("/subject/0/name", "subject[0].name"),
        ("/subject/0/digest/sha256", "subject[0].digest.sha256"),
        ("/predicate/timeVerified", "timeVerified"),
        ("/predicate/expiresAt", "expiresAt"),
        ("/predicate/verificationResult", "verificationResult"),
        ("/predicate/configDigest/sha256", "configDigest.sha256"),
        ("/predicate/verifier/id", "verifier.id"),
        (
            "/predicate/verifier/version/safedeploy",
            "verifier.version.safedeploy",
        ),
        ("/predicate/checks/0/name", "checks[0].name"),
        ("/predicate/checks/0/result", "checks[0].result"),
        ("/predicate/checks/2/metrics/0/threshold/op", "threshold.op"),
    ] {
        let env = f.with_statement_json(|v| *v.pointer_mut(pointer).expect(pointer) = json!(1));
        assert_malformed(&f, &env, &["expected a string", needle]);
    }
    // And in the envelope (not covered by the signature, so no re-signing needed).
    let mut env: Value = serde_json::from_slice(&f.envelope()).expect("json");
    env["signatures"][0]["keyid"] = json!(7);
    let env = serde_json::to_vec(&env).expect("bytes");
    assert_malformed(&f, &env, &["expected a string", "signatures[0].keyid"]);
}

/// JSON pointers of every node of `value` (the root is `""`) for which `pick` holds.
fn pointers(value: &Value, at: &str, pick: &dyn Fn(&Value) -> bool, out: &mut Vec<String>) {
    if pick(value) {
        out.push(at.to_owned());
    }
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                pointers(item, &format!("{at}/{key}"), pick, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, &format!("{at}/{i}"), pick, out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_object_of_a_signed_statement_replaced_by_its_values_is_malformed() {
    // The class, not the instances: each object node, one at a time, becomes the array of its
    // values and is re-signed; not one of them may verify or be judged on anything but shape.
    let f = fixture();
    let statement = serde_json::to_value(f.statement()).expect("value");
    let mut objects = Vec::new();
    pointers(&statement, "", &Value::is_object, &mut objects);
    assert!(objects.len() >= 12, "{objects:?}");
    for pointer in &objects {
        let env = f.with_statement_json(|v| {
            let node = v.pointer_mut(pointer).expect("pointer");
            *node = values_of(node);
        });
        let r = verify(&env, &f.expected, &f.policy, now());
        assert_eq!(
            r.as_ref().err().map(|r| r.reason),
            Some(RejectReason::Malformed),
            "{pointer:?}: {r:?}"
        );
    }
    // The same for the envelope's own objects (the signature stays valid: it covers the payload).
    let envelope: Value = serde_json::from_slice(&f.envelope()).expect("json");
    let mut objects = Vec::new();
    pointers(&envelope, "", &Value::is_object, &mut objects);
    assert_eq!(objects, ["", "/signatures/0"]);
    for pointer in &objects {
        let mut env = envelope.clone();
        let node = env.pointer_mut(pointer).expect("pointer");
        *node = values_of(node);
        assert_reason(
            &f,
            &serde_json::to_vec(&env).expect("bytes"),
            RejectReason::Malformed,
        );
    }
}

#[test]
fn every_typed_string_of_a_signed_statement_as_a_number_is_malformed() {
    let f = fixture();
    let statement = serde_json::to_value(f.statement()).expect("value");
    let mut strings = Vec::new();
    pointers(&statement, "", &Value::is_string, &mut strings);
    // `environment` values are free-form JSON (the policy compares them), so not typed.
    strings.retain(|p| !p.starts_with("/predicate/environment/"));
    assert!(strings.len() >= 15, "{strings:?}");
    for pointer in &strings {
        let env = f.with_statement_json(|v| *v.pointer_mut(pointer).expect("pointer") = json!(1));
        let r = verify(&env, &f.expected, &f.policy, now());
        assert_eq!(
            r.as_ref().err().map(|r| r.reason),
            Some(RejectReason::Malformed),
            "{pointer:?}: {r:?}"
        );
    }
}
