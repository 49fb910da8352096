//! `${VAR}` references: connection settings name environment variables instead of holding
//! secrets. They are resolved at run time; a missing variable is an error that names it.

/// One `${NAME}` in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Byte offset of `$`.
    pub start: usize,
    /// The variable's name.
    pub name: String,
}

/// A malformed reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// Byte offset of the `$` it concerns.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

/// The references in `text`, in order.
///
/// # Errors
/// An unclosed `${`, or a name that is not `[A-Za-z_][A-Za-z0-9_]*`.
pub fn references(text: &str) -> Result<Vec<Reference>, SyntaxError> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("${") {
        let start = from + found;
        let Some(len) = text[start + 2..].find('}') else {
            return Err(SyntaxError {
                offset: start,
                message: "`${` is not closed by `}`".to_owned(),
            });
        };
        let name = &text[start + 2..start + 2 + len];
        if !is_name(name) {
            return Err(SyntaxError {
                offset: start,
                message: if name.trim().is_empty() {
                    format!("`${{{name}}}` names no environment variable")
                } else {
                    format!(
                        "`${{{}}}` is not a valid environment variable reference (letters, digits and `_`, not starting with a digit)",
                        super::yaml::shorten(name)
                    )
                },
            });
        }
        out.push(Reference {
            start,
            name: name.to_owned(),
        });
        from = start + 2 + len + 1;
    }
    Ok(out)
}

/// `$NAME` written without braces: only `${NAME}` is expanded, so these would be sent as they
/// are. Returns the byte offset of each `$` and the name after it.
#[must_use]
pub fn bare_references(text: &str) -> Vec<(usize, &str)> {
    text.match_indices('$')
        .filter_map(|(start, _)| {
            let rest = &text[start + 1..];
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                .then_some((start, name))
        })
        .collect()
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A variable that a reference names is not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{name}` is not set")]
pub struct Missing {
    /// The variable.
    pub name: String,
}

/// Replace every reference with the variable's value.
///
/// # Errors
/// The first reference whose variable `lookup` does not know (malformed references are left
/// as written: validation reports them).
pub fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Missing> {
    let Ok(refs) = references(text) else {
        return Ok(text.to_owned());
    };
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for reference in refs {
        out.push_str(&text[from..reference.start]);
        let value = lookup(&reference.name).ok_or_else(|| Missing {
            name: reference.name.clone(),
        })?;
        out.push_str(&value);
        from = reference.start + reference.name.len() + 3;
    }
    out.push_str(&text[from..]);
    Ok(out)
}

/// Look variables up in the process environment; an empty variable counts as unset.
#[must_use]
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_expands_references() {
        let refs = references("https://${HOST}:${PORT}/x").unwrap();
        assert_eq!(
            refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            vec!["HOST", "PORT"]
        );
        let lookup = |n: &str| match n {
            "HOST" => Some("h".to_owned()),
            "PORT" => Some("1".to_owned()),
            _ => None,
        };
        assert_eq!(
            expand("https://${HOST}:${PORT}/x", &lookup).unwrap(),
            "https://h:1/x"
        );
        assert_eq!(expand("${NOPE}", &lookup).unwrap_err().name, "NOPE");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(references("${OPEN").is_err());
        assert!(references("${1X}").is_err());
        assert!(references("${}").is_err());
        assert_eq!(references("plain").unwrap(), vec![]);
    }

    #[test]
    fn bare_references_are_found() {
        assert_eq!(bare_references("$TENANT"), vec![(0, "TENANT")]);
        assert_eq!(bare_references("a-$_X1.b"), vec![(2, "_X1")]);
        assert_eq!(bare_references("${TENANT} costs $5"), vec![]);
    }
}
