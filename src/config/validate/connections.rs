//! Meaning checks of the connection settings: `${VAR}` references (well-formed, set when asked,
//! no bare `$VAR` that would be sent as written), literal secrets, the Mailchimp key's data
//! centre, and URLs.

use std::collections::HashMap;

use super::words::key_name;
use super::{CheckOptions, Findings};
use crate::config::env;
use crate::config::model::{DataverseConfig, MailchimpConfig};
use crate::config::yaml::shorten;

/// Check the connection settings that parsed.
pub(super) fn check(
    mc: Option<&MailchimpConfig>,
    dv: Option<&DataverseConfig>,
    options: &CheckOptions<'_>,
    out: &mut Findings<'_>,
) {
    let mut settings: Vec<(&str, Option<&String>)> = Vec::new();
    if let Some(mc) = mc {
        settings.push(("/mailchimp/api_key", Some(&mc.api_key)));
        settings.push(("/mailchimp/base_url", mc.base_url.as_ref()));
    }
    if let Some(dv) = dv {
        settings.extend([
            ("/dataverse/url", Some(&dv.url)),
            ("/dataverse/tenant_id", Some(&dv.tenant_id)),
            ("/dataverse/client_id", Some(&dv.client_id)),
            ("/dataverse/client_secret", Some(&dv.client_secret)),
            ("/dataverse/token_url", dv.token_url.as_ref()),
        ]);
    }
    let mut resolved: HashMap<&str, Option<String>> = HashMap::new();
    for (path, value) in settings {
        let Some(value) = value else { continue };
        resolved.insert(path, resolve(path, value, options, out));
    }
    for (path, literal, example) in [
        (
            "/mailchimp/api_key",
            mc.map(|m| &m.api_key),
            "${MAILCHIMP_API_KEY}",
        ),
        (
            "/dataverse/client_secret",
            dv.map(|d| &d.client_secret),
            "${DATAVERSE_CLIENT_SECRET}",
        ),
    ] {
        if let Some(literal) = literal
            && !literal.contains("${")
            && env::bare_references(literal).is_empty()
        {
            out.warning(
                path,
                &format!(
                    "`{}` looks like a literal secret; secrets belong in the environment",
                    key_name(path)
                ),
                Some(&format!("write `{example}` and set that variable")),
            );
        }
    }
    if let Some(Some(key)) = resolved.get("/mailchimp/api_key")
        && mc.is_some_and(|m| m.base_url.is_none())
        && !has_data_centre(key)
    {
        out.error(
            "/mailchimp/api_key",
            "the Mailchimp API key is malformed: it must end in its data centre, like `-us21`",
            "copy the whole key from Mailchimp (Profile → Extras → API keys), or set `base_url`",
        );
    }
    for path in [
        "/dataverse/url",
        "/mailchimp/base_url",
        "/dataverse/token_url",
    ] {
        if let Some(Some(text)) = resolved.get(path) {
            match url::Url::parse(text) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {}
                _ => out.error(
                    path,
                    &format!("`{}` is not an http(s) URL", shorten(text)),
                    if path == "/dataverse/url" {
                        "the environment URL looks like `https://contoso.crm.dynamics.com`"
                    } else {
                        "write the whole URL, starting with `https://`"
                    },
                ),
            }
        }
    }
}

/// Check one setting's references; its value when it can be known without the environment
/// (or with it, under `--check-env`).
fn resolve(
    path: &str,
    value: &str,
    options: &CheckOptions<'_>,
    out: &mut Findings<'_>,
) -> Option<String> {
    let name = key_name(path);
    let mut bare = false;
    for (offset, var) in env::bare_references(value) {
        bare = true;
        let pos = out.char_pos(path, value[..offset].chars().count(), '$');
        out.error_at(
            pos,
            path,
            &format!(
                "`${}` is not expanded: only `${{NAME}}` references are read from the environment",
                shorten(var)
            ),
            &format!("write `${{{}}}`", shorten(var)),
        );
    }
    let refs = match env::references(value) {
        Err(err) => {
            let pos = out.char_pos(path, value[..err.offset].chars().count(), '$');
            let help = if err.message.contains("not closed") {
                "close the reference with `}`: `${NAME}`".to_owned()
            } else {
                format!(
                    "a variable name is letters, digits and `_`, not starting with a digit, like `${{{}}}`",
                    name.to_uppercase()
                )
            };
            out.error_at(pos, path, &err.message, &help);
            return None;
        }
        Ok(refs) => refs,
    };
    let mut missing = false;
    if options.check_env {
        for reference in &refs {
            if (options.lookup)(&reference.name).is_none() {
                missing = true;
                let pos = out.char_pos(path, value[..reference.start].chars().count(), '$');
                out.error_at(
                    pos,
                    path,
                    &format!("environment variable `{}` is not set", reference.name),
                    &format!(
                        "set it (`export {}=…`), or leave out `--check-env` where secrets are not available",
                        reference.name
                    ),
                );
            }
        }
    }
    if bare || missing || (!options.check_env && !refs.is_empty()) {
        None
    } else {
        env::expand(value, options.lookup).ok()
    }
}

/// Whether a Mailchimp key ends in `-<dc>` (letters then digits, e.g. `us21`).
#[must_use]
pub fn has_data_centre(key: &str) -> bool {
    key.rsplit_once('-').is_some_and(|(head, dc)| {
        !head.is_empty()
            && dc.len() >= 3
            && dc.chars().take_while(char::is_ascii_lowercase).count() >= 2
            && dc
                .chars()
                .skip_while(char::is_ascii_lowercase)
                .all(|c| c.is_ascii_digit())
            && dc.chars().last().is_some_and(|c| c.is_ascii_digit())
    })
}
