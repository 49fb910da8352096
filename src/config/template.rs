//! Small templates over member fields, for lead columns Mailchimp has no field for:
//! `"Newsletter: {{ merge_fields.FNAME }} {{ merge_fields.LNAME }}"`. Only `{{ field.path }}`
//! substitution; `{{{{` writes a literal `{{`. A field the member lacks renders empty.

use serde::{Deserialize, Serialize};

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Part {
    Text(String),
    Field(String),
}

impl Template {
    /// Parse a template.
    ///
    /// # Errors
    /// An unclosed `{{` or an empty `{{ }}`, with the byte offset where it starts.
    pub fn parse(source: &str) -> Result<Self, (usize, String)> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(start) = rest.find("{{") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            if let Some(stripped) = after.strip_prefix("{{") {
                text.push_str("{{");
                offset += start + 4;
                rest = stripped;
                continue;
            }
            let Some(end) = after.find("}}") else {
                return Err((offset + start, "`{{` is not closed by `}}`".to_owned()));
            };
            let field = after[..end].trim();
            if field.is_empty() {
                return Err((
                    offset + start,
                    "empty `{{ }}`: name a member field, e.g. `{{ email_address }}`".to_owned(),
                ));
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Field(field.to_owned()));
            offset += start + 2 + end + 2;
            rest = &after[end + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The fields it refers to.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Render with a lookup of member fields by path.
    #[must_use]
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(&lookup(f).unwrap_or_default()),
            }
        }
        out
    }

    /// The text as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_fields_and_literal_braces() {
        let t = Template::parse("Hi {{ merge_fields.FNAME }} <{{email_address}}> {{{{x").unwrap();
        assert_eq!(
            t.fields().collect::<Vec<_>>(),
            vec!["merge_fields.FNAME", "email_address"]
        );
        let out = t.render(|f| (f == "email_address").then(|| "a@b.c".to_owned()));
        assert_eq!(out, "Hi  <a@b.c> {{x");
    }

    #[test]
    fn unclosed_and_empty_placeholders_are_errors() {
        assert_eq!(Template::parse("ab {{ x").unwrap_err().0, 3);
        assert!(Template::parse("{{ }}").is_err());
    }
}
