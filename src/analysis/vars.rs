//! Substitution of `{{revision}}`, `{{canary}}`, `{{stable}}`, `{{baseline}}`, `{{namespace}}`
//! and `{{name}}` in PromQL queries, URLs and request bodies. Pure text work.

/// The values a query may refer to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryVars {
    /// Hash of the canary revision.
    pub canary: String,
    /// Hash of the stable revision.
    pub stable: String,
    /// What selects the baseline: the stable hash with `baseline: Stable` (the default), and
    /// `<stable hash>-baseline`, the revision label of the fresh baseline's pods, with `Fresh`.
    pub baseline: String,
    /// Namespace of the SafeDeployment.
    pub namespace: String,
    /// Name of the SafeDeployment.
    pub name: String,
}

/// Which side a query measures; `{{revision}}` becomes that side's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The canary revision.
    Canary,
    /// The baseline revision.
    Baseline,
}

/// A text whose placeholders cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarsError {
    /// `{{x}}` names no known variable.
    #[error(
        "unknown variable {{{{{0}}}}}; known: revision, canary, stable, baseline, namespace, name"
    )]
    Unknown(String),
    /// `{{` without a closing `}}`.
    #[error("'{{{{' without a closing '}}}}'")]
    Unclosed,
}

/// Replaces every `{{variable}}` (spaces inside the braces allowed) in `text`.
pub fn render(text: &str, vars: &QueryVars, side: Side) -> Result<String, VarsError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((before, after)) = rest.split_once("{{") {
        out.push_str(before);
        let (key, after_close) = after.split_once("}}").ok_or(VarsError::Unclosed)?;
        let key = key.trim();
        let value = match key {
            "revision" => match side {
                Side::Canary => &vars.canary,
                Side::Baseline => &vars.baseline,
            },
            "canary" => &vars.canary,
            "stable" => &vars.stable,
            "baseline" => &vars.baseline,
            "namespace" => &vars.namespace,
            "name" => &vars.name,
            other => return Err(VarsError::Unknown(other.to_string())),
        };
        out.push_str(value);
        rest = after_close;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> QueryVars {
        QueryVars {
            canary: "c4n4ry".into(),
            stable: "st4bl3".into(),
            baseline: "b4s3".into(),
            namespace: "shop".into(),
            name: "checkout".into(),
        }
    }

    #[test]
    fn substitutes_every_variable() {
        let text = r#"sum(rate(x{ns="{{namespace}}",app="{{ name }}",rev="{{revision}}"}[1m])) / {{canary}}-{{stable}}-{{baseline}}"#;
        assert_eq!(
            render(text, &vars(), Side::Canary).as_deref(),
            Ok(r#"sum(rate(x{ns="shop",app="checkout",rev="c4n4ry"}[1m])) / c4n4ry-st4bl3-b4s3"#)
        );
        assert_eq!(
            render("rev={{revision}}", &vars(), Side::Baseline).as_deref(),
            Ok("rev=b4s3")
        );
    }

    #[test]
    fn leaves_single_braces_alone_and_rejects_unknown_or_unclosed() {
        assert_eq!(
            render("x{a=\"1\"}", &vars(), Side::Canary).as_deref(),
            Ok("x{a=\"1\"}")
        );
        assert_eq!(
            render("{{pod}}", &vars(), Side::Canary),
            Err(VarsError::Unknown("pod".into()))
        );
        assert_eq!(
            render("{{name", &vars(), Side::Canary),
            Err(VarsError::Unclosed)
        );
        assert!(
            VarsError::Unknown("pod".into())
                .to_string()
                .contains("{{pod}}")
        );
    }
}
