//! The starter config: one binding per Mailchimp audience, written by `audience-sync init`
//! (every binding commented out) and by `sandbox --print-config` (active). The text is a valid
//! config as soon as one binding is uncommented; secrets are `${VAR}` references, never values.

use std::collections::HashSet;
use std::fmt::Write as _;

/// An audience to write a binding for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarterAudience {
    /// Its Mailchimp id.
    pub id: String,
    /// Its name (the binding's and the list's name derive from it).
    pub name: String,
    /// Subscribed members (shown in a comment).
    pub members: u64,
    /// Tags (shown in a comment).
    pub tags: usize,
}

/// The Dataverse connection to write (values known from the environment, else placeholders).
#[derive(Debug, Clone)]
pub struct DataverseStarter {
    /// Environment URL.
    pub url: String,
    /// Tenant id (or a `${VAR}` reference).
    pub tenant_id: String,
    /// Client id (or a `${VAR}` reference).
    pub client_id: String,
    /// Token endpoint override.
    pub token_url: Option<String>,
}

impl DataverseStarter {
    /// From `DATAVERSE_URL`, `DATAVERSE_TOKEN_URL` (as values) and references for the rest.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            url: lookup("DATAVERSE_URL")
                .unwrap_or_else(|| "https://YOUR-ORG.crm.dynamics.com".to_owned()),
            tenant_id: "${DATAVERSE_TENANT_ID}".to_owned(),
            client_id: "${DATAVERSE_CLIENT_ID}".to_owned(),
            token_url: lookup("DATAVERSE_TOKEN_URL"),
        }
    }
}

/// What goes into the file.
#[derive(Debug, Clone)]
pub struct Starter<'a> {
    /// The audiences, one binding each.
    pub audiences: &'a [StarterAudience],
    /// `mailchimp.base_url`, when not the key's data centre.
    pub mailchimp_base_url: Option<String>,
    /// The Dataverse connection.
    pub dataverse: DataverseStarter,
    /// Write the bindings active instead of commented out (the sandbox's `--print-config`).
    pub active: bool,
}

/// A YAML scalar: JSON strings are valid YAML double-quoted scalars.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// A binding name from an audience name: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters,
/// unique among `taken`.
fn binding_name(name: &str, id: &str, taken: &mut HashSet<String>) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if let Some(plain) = fold_accent(c) {
            slug.push_str(plain);
        } else if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_end_matches('-').chars().take(56).collect();
    if slug.is_empty() {
        slug = format!("audience-{id}");
    }
    let mut candidate = slug.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{slug}-{n}");
        n += 1;
    }
    candidate
}

/// The plain letters of a common accented Latin letter.
fn fold_accent(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'æ' => "ae",
        'ç' => "c",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'œ' => "oe",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        _ => return None,
    })
}

/// Render the starter config.
#[must_use]
pub fn render(starter: &Starter<'_>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# audience-sync config: which Mailchimp audiences keep which Dynamics 365 marketing lists in step."
    );
    let _ = writeln!(
        out,
        "# Written by `audience-sync init`. Check it with `audience-sync validate`."
    );
    if !starter.active {
        let _ = writeln!(
            out,
            "# Every binding below is commented out: uncomment the ones to sync (at least one)."
        );
    }
    let _ = writeln!(
        out,
        "# Secrets are read from the environment; never write them here."
    );
    let _ = writeln!(out, "version: 1");
    let _ = writeln!(out, "mailchimp:");
    let _ = writeln!(out, "  api_key: {}", quoted("${MAILCHIMP_API_KEY}"));
    if let Some(base) = &starter.mailchimp_base_url {
        let _ = writeln!(out, "  base_url: {}", quoted(base));
    }
    let dv = &starter.dataverse;
    let _ = writeln!(out, "dataverse:");
    let _ = writeln!(out, "  url: {}", quoted(&dv.url));
    let _ = writeln!(out, "  tenant_id: {}", quoted(&dv.tenant_id));
    let _ = writeln!(out, "  client_id: {}", quoted(&dv.client_id));
    let _ = writeln!(
        out,
        "  client_secret: {}",
        quoted("${DATAVERSE_CLIENT_SECRET}")
    );
    if let Some(token) = &dv.token_url {
        let _ = writeln!(out, "  token_url: {}", quoted(token));
    }
    let _ = writeln!(out, "bindings:");
    if starter.audiences.is_empty() {
        let _ = writeln!(
            out,
            "  # The Mailchimp account has no audiences yet. A binding looks like this:"
        );
    }
    let mut taken = HashSet::new();
    let placeholder = [StarterAudience {
        id: "a1b2c3d4e5".to_owned(),
        name: "Newsletter".to_owned(),
        members: 0,
        tags: 0,
    }];
    let audiences = if starter.audiences.is_empty() {
        &placeholder[..]
    } else {
        starter.audiences
    };
    let prefix = if starter.active && !starter.audiences.is_empty() {
        ""
    } else {
        "# "
    };
    for (n, a) in audiences.iter().enumerate() {
        if n > 0 {
            let _ = writeln!(out);
        }
        if !starter.audiences.is_empty() {
            let _ = writeln!(
                out,
                "  # Audience {}: {} subscribed members, {} tags.",
                quoted(&a.name),
                a.members,
                a.tags
            );
        }
        let name = binding_name(&a.name, &a.id, &mut taken);
        let list_name: String = a.name.chars().take(128).collect();
        for line in [
            format!("- name: {name}"),
            "  audience:".to_owned(),
            format!("    id: {}", quoted(&a.id)),
            "  marketing_list:".to_owned(),
            format!("    name: {}", quoted(&list_name)),
            "    member_type: contact".to_owned(),
            "    create: true".to_owned(),
        ] {
            let _ = writeln!(out, "  {prefix}{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn summaries() -> Vec<StarterAudience> {
        ["Newsletter", "Événements & Co", "Newsletter"]
            .iter()
            .zip(["a1b2c3d4e5", "0f0f0f0f0f", "1234567890"])
            .map(|(name, id)| StarterAudience {
                id: id.to_owned(),
                name: (*name).to_owned(),
                members: 3,
                tags: 2,
            })
            .collect()
    }

    fn parse(text: &str) -> Result<Config, String> {
        let value = crate::config::yaml::parse_value(text).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    #[test]
    fn every_binding_is_commented_out_and_uncommenting_one_gives_a_valid_config() {
        let audiences = summaries();
        let text = render(&Starter {
            audiences: &audiences,
            mailchimp_base_url: Some("${MAILCHIMP_BASE_URL}".into()),
            dataverse: DataverseStarter::from_env(|_| None),
            active: false,
        });
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("- name")),
            "{text}"
        );
        // Uncomment the second binding (7 lines).
        let lines: Vec<&str> = text.lines().collect();
        let start = lines
            .iter()
            .position(|l| l.contains("# - name: evenements-co"))
            .expect(&text);
        let edited: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if (start..start + 7).contains(&i) {
                    l.replacen("# ", "", 1)
                } else {
                    (*l).to_owned()
                }
            })
            .collect();
        let config = parse(&edited.join("\n")).unwrap();
        assert_eq!(config.bindings.len(), 1);
        assert_eq!(
            config.bindings[0].audience.id.as_deref(),
            Some("0f0f0f0f0f")
        );
        assert_eq!(
            config.bindings[0].marketing_list.name.as_deref(),
            Some("Événements & Co")
        );
        assert_eq!(config.mailchimp.api_key, "${MAILCHIMP_API_KEY}");
        assert_eq!(config.dataverse.client_secret, "${DATAVERSE_CLIENT_SECRET}");
    }

    #[test]
    fn active_bindings_have_unique_names() {
        let audiences = summaries();
        let text = render(&Starter {
            audiences: &audiences,
            mailchimp_base_url: None,
            dataverse: DataverseStarter::from_env(|_| None),
            active: true,
        });
        let config = parse(&text).unwrap();
        let names: Vec<&str> = config.bindings.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, vec!["newsletter", "evenements-co", "newsletter-2"]);
    }

    #[test]
    fn binding_names_never_start_with_a_dash_and_fall_back_to_the_id() {
        let mut taken = HashSet::new();
        assert_eq!(
            binding_name("--- !!!", "a1b2c3d4e5", &mut taken),
            "audience-a1b2c3d4e5"
        );
        assert_eq!(
            binding_name("  VIP Kunden 2024 ", "x", &mut taken),
            "vip-kunden-2024"
        );
    }
}
