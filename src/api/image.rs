//! Container image references pinned by digest (`repository[:tag]@sha256:<64 lowercase hex>`):
//! the one reading of an image string that both the attestation subjects (`attest::config`) and
//! the preflight's pinned-image check (`core::preflight`) rely on, so that what an attestation
//! names and what the operator demands of a template cannot drift apart.

/// A container image pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageRef {
    /// Component name (`main` for a single template).
    pub component: String,
    /// Container name (init containers included).
    pub container: String,
    /// The full reference as written, such as `registry.example.com/app:1.2@sha256:…`.
    pub image: String,
    /// The repository without tag or digest, such as `registry.example.com/app`; the subject
    /// `name` written by `safedeploy attest`.
    pub repository: String,
    /// The sha256 digest, 64 lowercase hex characters (no `sha256:` prefix).
    pub digest: String,
}

/// Splits `repo[:tag]@sha256:<hex>` into (repository without tag, hex digest).
pub fn parse_pinned(image: &str) -> Option<(String, String)> {
    let (name, digest) = image.split_once('@')?;
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    // A tag is a ':' in the last path segment (a ':' before a '/' is a registry port).
    let repository = match name.rsplit_once('/') {
        Some((path, last)) => format!("{path}/{}", without_tag(last)),
        None => without_tag(name).to_owned(),
    };
    if repository.is_empty()
        || repository.ends_with('/')
        || repository.contains(char::is_whitespace)
    {
        return None;
    }
    Some((repository, hex.to_owned()))
}

/// The last path segment of an image name without its `:tag`.
fn without_tag(segment: &str) -> &str {
    segment.split_once(':').map_or(segment, |(name, _tag)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_reference_parsing() {
        let d = "6b6d3a8e1f0c2b4a59d7e3f1a2c4b6d8e0f1a3c5b7d9e1f3a5c7e9b1d3f5a7c9";
        assert_eq!(
            parse_pinned(&format!("app@sha256:{d}")),
            Some(("app".into(), d.into()))
        );
        assert_eq!(
            parse_pinned(&format!("localhost:5000/team/app:v1@sha256:{d}")),
            Some(("localhost:5000/team/app".into(), d.into()))
        );
        assert_eq!(
            parse_pinned(&format!("localhost:5000/app@sha256:{d}")).map(|p| p.0),
            Some("localhost:5000/app".into())
        );
        assert_eq!(parse_pinned("app:latest"), None);
        assert_eq!(
            parse_pinned(&format!("app@sha256:{}", d.to_uppercase())),
            None
        );
        assert_eq!(parse_pinned(&format!("app@sha512:{d}")), None);
        assert_eq!(parse_pinned(&format!("app@sha256:{d}0")), None);
        assert_eq!(parse_pinned(&format!("@sha256:{d}")), None);
        assert_eq!(parse_pinned(""), None);
    }
}
