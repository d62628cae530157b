//! Building and signing a local-validation Statement (the producer side, used by
//! `safedeploy attest` and the tests).

use std::collections::BTreeMap;

use super::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::keys::{KeyError, SigningKey};
use super::statement::{
    LOCAL_VALIDATION_PREDICATE_TYPE, LocalValidation, STATEMENT_TYPE_V1, Statement, Subject,
};
use crate::api::image::ImageRef;

/// Why a statement could not be built or signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The predicate could not be turned into JSON.
    #[error("cannot serialise the statement: {0}")]
    Json(#[from] serde_json::Error),
    /// Signing failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// One subject per distinct image digest (`name` = repository, `digest.sha256` = hex), in the
/// order first seen.
pub fn subjects_for(images: &[ImageRef]) -> Vec<Subject> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for image in images {
        if seen
            .insert((image.repository.clone(), image.digest.clone()), ())
            .is_none()
        {
            let mut digest = BTreeMap::new();
            digest.insert("sha256".to_owned(), image.digest.clone());
            out.push(Subject {
                name: Some(image.repository.clone()),
                digest,
            });
        }
    }
    out
}

/// The Statement v1 with our predicate type around `predicate`.
pub fn statement(images: &[ImageRef], predicate: &LocalValidation) -> Result<Statement, SignError> {
    Ok(Statement {
        type_: STATEMENT_TYPE_V1.to_owned(),
        subject: subjects_for(images),
        predicate_type: LOCAL_VALIDATION_PREDICATE_TYPE.to_owned(),
        predicate: serde_json::to_value(predicate)?,
    })
}

/// Serialises `statement` compactly and signs it into a DSSE envelope
/// (`application/vnd.in-toto+json`), one signature per key, each with its key id.
pub fn sign_statement(statement: &Statement, keys: &[&SigningKey]) -> Result<Envelope, SignError> {
    let body = serde_json::to_vec(statement)?;
    Ok(Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &body, keys)?)
}
