//! Filling the account: from a [`Seed`] (people write these) and from the deterministic generator
//! (`members=N,tags=T,seed=S[,audiences=K]`, for tests and benchmarks).
//!
//! # Guarantees
//! - The same [`GenerateSpec`] gives byte-identical data (one `StdRng` seeded from `seed`, fixed
//!   base dates, no wall clock).
//! - Generated audiences are named `Generated Audience 1…K`; about 85 % of members are
//!   subscribed, the rest unsubscribed, cleaned, pending or archived; tag `j` is carried by about
//!   `1/(j+2)` of the members; FNAME, LNAME, PHONE and ADDRESS are filled.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use super::model::MemberStatus;
use super::model::{Audience, Data, MemberInput, MergeField, md5_hex, parse_time};
use super::seed::{AudienceSeed, Seed};
use crate::{Error, GenerateSpec};

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

fn invalid(message: String) -> Error {
    Error::InvalidSeed {
        path: "mailchimp".into(),
        message,
    }
}

/// Add the seed's audiences to `data`.
///
/// # Errors
/// An invalid id, date, status, duplicate audience or member.
pub fn apply_seed(data: &mut Data, seed: &Seed) -> Result<(), Error> {
    for (n, audience) in seed.audiences.iter().enumerate() {
        add_seed_audience(data, audience).map_err(|message| {
            invalid(format!(
                "audience {} (`{}`): {message}",
                n + 1,
                audience.name
            ))
        })?;
    }
    Ok(())
}

fn add_seed_audience(data: &mut Data, seed: &AudienceSeed) -> Result<(), String> {
    let id = match &seed.id {
        Some(id) => {
            if id.len() != 10
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(format!("id `{id}` is not 10 lowercase hex characters"));
            }
            id.clone()
        }
        None => md5_hex(&format!("audience:{}", seed.name))[..10].to_owned(),
    };
    if data.audiences.iter().any(|a| a.id == id) {
        return Err(format!("a second audience has the id `{id}`"));
    }
    let created = match &seed.date_created {
        Some(text) => {
            parse_time(text).ok_or_else(|| format!("date_created `{text}` is not ISO 8601"))?
        }
        None => base_time(),
    };
    let web_id = 1000 + data.audiences.len() as u64;
    let mut audience = Audience::new(id, web_id, seed.name.clone(), created);
    if let Some(fields) = &seed.merge_fields {
        audience.merge_fields = fields
            .iter()
            .zip(1u32..)
            .map(|(f, n)| MergeField {
                merge_id: n,
                tag: f.tag.clone(),
                name: f.name.clone().unwrap_or_else(|| f.tag.clone()),
                field_type: f.field_type.clone(),
                required: f.required,
                display_order: n + 1,
            })
            .collect();
    }
    for tag in &seed.tags {
        audience.ensure_tag(tag, &mut data.ids, created);
    }
    for member in &seed.members {
        let signup = match &member.timestamp_signup {
            Some(text) => Some(parse_time(text).ok_or_else(|| {
                format!(
                    "timestamp_signup `{text}` of `{}` is not ISO 8601",
                    member.email
                )
            })?),
            None => Some(created),
        };
        let last_changed = match &member.last_changed {
            Some(text) => Some(parse_time(text).ok_or_else(|| {
                format!(
                    "last_changed `{text}` of `{}` is not ISO 8601",
                    member.email
                )
            })?),
            None => signup,
        };
        let archived = member.status == MemberStatus::Archived;
        let input = MemberInput {
            email: Some(member.email.clone()),
            status: Some(if archived {
                MemberStatus::Subscribed
            } else {
                member.status
            }),
            merge_fields: Some(member.merge_fields.clone()),
            tags: Some(member.tags.clone()),
            language: member.language.clone(),
            vip: Some(member.vip),
            timestamp_signup: signup,
            country_code: member.country_code.clone(),
            contact_id: member.contact_id.clone(),
            last_changed,
            skip_merge_validation: true,
            ..MemberInput::default()
        };
        let i = audience
            .add_member(input, &mut data.ids, last_changed.unwrap_or(created))
            .map_err(|p| format!("member `{}`: {} ({})", member.email, p.title, p.detail))?;
        if archived {
            audience.members[i].status = MemberStatus::Archived;
        }
    }
    data.audiences.push(audience);
    Ok(())
}

const FIRST: &[&str] = &[
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Tim", "Hedy", "Linus", "Karen", "Dennis", "Sophie", "Niklaus", "Anita", "Claude",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "McCarthy",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Torvalds",
    "Jones",
    "Ritchie",
    "Wilson",
    "Wirth",
    "Borg",
    "Shannon",
];
const TAGS: &[&str] = &[
    "Customers",
    "Newsletter",
    "VIP",
    "Webinar 2024",
    "Trade Fair",
    "Partners",
    "Beta Testers",
    "Donors",
    "Volunteers",
    "Press",
];
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Atlanta", "GA", "30308", "US"),
    ("Berlin", "BE", "10115", "DE"),
    ("Lyon", "ARA", "69001", "FR"),
    ("Leeds", "ENG", "LS1 1UR", "GB"),
    ("Austin", "TX", "73301", "US"),
];
const LANGUAGES: &[&str] = &["en", "en", "en", "de", "fr"];

/// Add `spec.audiences` generated audiences to `data`.
pub fn generate(data: &mut Data, spec: GenerateSpec) {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let base = base_time();
    for a in 1..=spec.audiences {
        let id = loop {
            let candidate = format!("{:010x}", rng.random::<u64>() & 0xff_ffff_ffff);
            if !data.audiences.iter().any(|x| x.id == candidate) {
                break candidate;
            }
        };
        let created = base - Duration::days(400);
        let web_id = 1000 + data.audiences.len() as u64;
        let mut audience = Audience::new(id, web_id, format!("Generated Audience {a}"), created);
        let tag_ids: Vec<u64> = (0..spec.tags)
            .map(|j| {
                let name = if j < TAGS.len() {
                    TAGS[j].to_owned()
                } else {
                    format!("{} {}", TAGS[j % TAGS.len()], j / TAGS.len() + 1)
                };
                audience.ensure_tag(&name, &mut data.ids, created)
            })
            .collect();
        audience.members.reserve(spec.members);
        for i in 0..spec.members {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let own = format!(
                "{}.{}.{a}.{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase().replace('-', "")
            );
            let email = shared_email(data, &spec, a, i).unwrap_or(own);
            let roll: f64 = rng.random();
            let status = match roll {
                r if r < 0.85 => MemberStatus::Subscribed,
                r if r < 0.91 => MemberStatus::Unsubscribed,
                r if r < 0.94 => MemberStatus::Cleaned,
                r if r < 0.97 => MemberStatus::Pending,
                _ => MemberStatus::Archived,
            };
            let (city, state, zip, country) = CITIES[rng.random_range(0..CITIES.len())];
            let mut merge = Map::new();
            merge.insert("FNAME".into(), first.into());
            merge.insert("LNAME".into(), last.into());
            merge.insert(
                "ADDRESS".into(),
                json!({"addr1": format!("{} Main St", rng.random_range(1..999)), "addr2": "",
                       "city": city, "state": state, "zip": zip, "country": country}),
            );
            merge.insert(
                "PHONE".into(),
                Value::String(format!("+1 555 {:04}", rng.random_range(0..10_000))),
            );
            let signup = created + Duration::seconds(rng.random_range(0..(365 * 86_400)));
            let changed = signup + Duration::seconds(rng.random_range(0..(180 * 86_400)));
            let input = MemberInput {
                email: Some(email.clone()),
                status: Some(if status == MemberStatus::Archived {
                    MemberStatus::Subscribed
                } else {
                    status
                }),
                merge_fields: Some(merge),
                language: Some(LANGUAGES[rng.random_range(0..LANGUAGES.len())].to_owned()),
                vip: Some(rng.random_bool(0.02)),
                timestamp_signup: Some(signup),
                country_code: Some(country.to_owned()),
                contact_id: Some(format!("{:032x}", rng.random::<u128>())),
                last_changed: Some(changed),
                skip_merge_validation: true,
                ..MemberInput::default()
            };
            let Ok(index) = audience.add_member(input, &mut data.ids, changed) else {
                continue;
            };
            let member = &mut audience.members[index];
            member.status = status;
            for (j, &tag) in tag_ids.iter().enumerate() {
                #[allow(clippy::cast_precision_loss)] // j is a small tag index
                let share = 1.0 / (j as f64 + 2.0);
                if rng.random_bool(share) {
                    member.tags.push((tag, signup));
                }
            }
        }
        data.audiences.push(audience);
    }
}

/// The first generated audience's address of member `i` when audience `a` shares it (see
/// [`GenerateSpec::shared`]); every third shared address is in upper case, so a matcher that
/// compares addresses case-sensitively is seen to fail.
fn shared_email(data: &Data, spec: &GenerateSpec, a: usize, i: usize) -> Option<String> {
    if a < 2 || i.saturating_mul(100) >= spec.shared.saturating_mul(spec.members) {
        return None;
    }
    let first = data.audiences.len().checked_sub(a - 1)?;
    let email = &data.audiences.get(first)?.members.get(i)?.email;
    Some(if i % 3 == 0 {
        email.to_uppercase()
    } else {
        email.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seed: u64) -> GenerateSpec {
        GenerateSpec {
            members: 500,
            tags: 4,
            seed,
            audiences: 2,
            shared: 0,
        }
    }

    fn fingerprint(data: &Data) -> Vec<(String, String, String, usize)> {
        data.audiences
            .iter()
            .flat_map(|a| {
                a.members.iter().map(|m| {
                    (
                        a.id.clone(),
                        m.email.clone(),
                        m.contact_id.clone(),
                        m.tags.len(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_data_and_another_seed_other_data() {
        let (mut one, mut two, mut three) = (Data::default(), Data::default(), Data::default());
        generate(&mut one, spec(7));
        generate(&mut two, spec(7));
        generate(&mut three, spec(8));
        assert_eq!(fingerprint(&one), fingerprint(&two));
        assert_ne!(fingerprint(&one), fingerprint(&three));
    }

    #[test]
    fn generated_audiences_have_every_status_and_spread_tags() {
        let mut data = Data::default();
        generate(&mut data, spec(1));
        assert_eq!(data.audiences.len(), 2);
        let a = &data.audiences[0];
        assert_eq!(a.name, "Generated Audience 1");
        assert_eq!(a.id.len(), 10);
        assert_eq!(a.members.len(), 500);
        assert_eq!(a.tags.len(), 4);
        for status in [
            MemberStatus::Subscribed,
            MemberStatus::Unsubscribed,
            MemberStatus::Cleaned,
            MemberStatus::Pending,
            MemberStatus::Archived,
        ] {
            assert!(a.members.iter().any(|m| m.status == status), "{status:?}");
        }
        let subscribed = a
            .members
            .iter()
            .filter(|m| m.status == MemberStatus::Subscribed)
            .count();
        assert!(subscribed > 380, "{subscribed}");
        let first_tag = a.tag_member_count(a.tags[0].id);
        let last_tag = a.tag_member_count(a.tags[3].id);
        assert!(
            first_tag > last_tag && last_tag > 0,
            "{first_tag} {last_tag}"
        );
        assert!(
            a.members
                .iter()
                .all(|m| m.merge_fields["FNAME"].is_string())
        );
    }

    #[test]
    fn shared_audiences_hold_the_first_audiences_people_some_in_other_case() {
        let mut data = Data::default();
        generate(
            &mut data,
            GenerateSpec {
                members: 300,
                shared: 20,
                ..spec(5)
            },
        );
        let first: std::collections::HashSet<String> = data.audiences[0]
            .members
            .iter()
            .map(|m| m.email.to_lowercase())
            .collect();
        let second = &data.audiences[1].members;
        let shared: Vec<&str> = second
            .iter()
            .map(|m| m.email.as_str())
            .filter(|e| first.contains(&e.to_lowercase()))
            .collect();
        assert_eq!(shared.len(), 60, "20 % of 300");
        assert!(shared.iter().any(|e| e.chars().any(char::is_uppercase)));
        assert!(shared.iter().any(|e| !e.chars().any(char::is_uppercase)));
        let ids: std::collections::HashSet<&str> = data.audiences[0]
            .members
            .iter()
            .map(|m| m.contact_id.as_str())
            .collect();
        assert!(
            second.iter().all(|m| !ids.contains(m.contact_id.as_str())),
            "each audience keeps its own Mailchimp ids"
        );
    }
}
