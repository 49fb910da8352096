//! Reads of an audience that changes while it is read: the emulator's churn mode signs members
//! up, unsubscribes, re-subscribes, cleans, archives, deletes them and changes their addresses,
//! merge fields and tags during the read, and the convergent read (`observe::live`) satisfies
//! its stated guarantee, checked against the emulator's journal of what changed when.

use std::collections::{HashMap, HashSet};

use api_sandbox::mailchimp::MemberStatus as SeedStatus;
use api_sandbox::mailchimp::{AudienceSeed, Churn, JournalEntry, MemberSeed};
use api_sandbox::{Options, Sandbox, Seed};
use audience_sync::config::MemberStatus;
use audience_sync::mailchimp::Client;
use secrecy::SecretString;

fn email(i: usize) -> String {
    format!("live{i}@example.com")
}

async fn start(n: usize) -> Sandbox {
    let mut seed = Seed::default();
    seed.mailchimp.audiences.push(AudienceSeed {
        name: "Live".into(),
        members: (0..n).map(|i| MemberSeed::new(&email(i))).collect(),
        ..AudienceSeed::default()
    });
    Sandbox::start(Options {
        seed,
        ..audience_sync::commands::sandbox::options()
    })
    .await
    .expect("sandbox starts")
}

fn client(sandbox: &Sandbox) -> Client {
    let env: HashMap<String, String> = sandbox.env().into_iter().collect();
    Client::builder()
        .api_key(SecretString::from(env["MAILCHIMP_API_KEY"].clone()))
        .base_url(env.get("MAILCHIMP_BASE_URL").cloned())
        .build()
        .expect("client builds")
}

/// One observation of the convergent reader: (contact id, e-mail, status).
type Seen = (String, String, SeedStatus);

fn seed_status(status: MemberStatus) -> SeedStatus {
    match status {
        MemberStatus::Subscribed => SeedStatus::Subscribed,
        MemberStatus::Unsubscribed => SeedStatus::Unsubscribed,
        MemberStatus::Cleaned => SeedStatus::Cleaned,
        MemberStatus::Pending => SeedStatus::Pending,
        MemberStatus::Transactional => SeedStatus::Transactional,
        MemberStatus::Archived => SeedStatus::Archived,
    }
}

/// Check the guarantee of `observe::live` against the emulator's journal: `changes` are the
/// journal entries made during the read, `now` the members after it.
fn check_guarantee(
    seed: u64,
    seen: &[Seen],
    changes: &[JournalEntry],
    now: &[(String, String, String, SeedStatus)],
) {
    // The states each changed member had during the read (before its first change, after each).
    let mut states: HashMap<&str, Vec<(String, Option<SeedStatus>)>> = HashMap::new();
    for e in changes {
        let list = states.entry(e.contact_id.as_str()).or_default();
        if list.is_empty() {
            let before = e.old_email.clone().unwrap_or_else(|| e.email.clone());
            list.push((before, e.old_status));
        }
        list.push((e.email.clone(), e.new_status));
    }
    let mut by_contact: HashMap<&str, &Seen> = HashMap::new();
    for s in seen {
        assert!(
            by_contact.insert(s.0.as_str(), s).is_none(),
            "seed {seed}: {} read twice",
            s.1
        );
    }
    for (contact, _, email, status) in now {
        if states.contains_key(contact.as_str()) {
            continue;
        }
        let read = by_contact.get(contact.as_str());
        if *status == SeedStatus::Subscribed {
            let read = read.unwrap_or_else(|| panic!("seed {seed}: unchanged {email} lost"));
            assert_eq!(&read.1, email, "seed {seed}: unchanged member's address");
        } else {
            assert!(read.is_none(), "seed {seed}: {email} ({status:?}) read");
        }
    }
    let present: HashSet<&str> = now.iter().map(|(c, _, _, _)| c.as_str()).collect();
    for (contact, email, status) in seen {
        assert_eq!(*status, SeedStatus::Subscribed, "seed {seed}: {email}");
        if let Some(had) = states.get(contact.as_str()) {
            assert!(
                had.iter()
                    .any(|(e, s)| e == email && *s == Some(SeedStatus::Subscribed)),
                "seed {seed}: {email} read in a state it never had during the read: {had:?}"
            );
        } else {
            assert!(
                present.contains(contact.as_str()),
                "seed {seed}: {email} invented"
            );
        }
    }
}

/// Property: whatever the emulator's churn does during a read of 10,000 members (its journal
/// says what changed when), the convergent read satisfies the guarantee of `observe::live`.
#[tokio::test]
async fn a_convergent_read_satisfies_its_guarantee_under_emulated_churn() {
    let n = 10_000;
    let sandbox = start(n).await;
    let list_id = sandbox.mailchimp.audiences()[0].0.clone();
    let client = client(&sandbox);
    for seed in 0..6 {
        let before = sandbox.mailchimp.journal().len();
        // A few changes at every request: about 5 per page of 1000, whatever the machine's
        // speed (tens to hundreds per second of reading).
        sandbox.mailchimp.set_churn(Churn {
            per_request: 3 + u32::try_from(seed).expect("small"),
            seed,
            ..Churn::default()
        });
        let start = audience_sync::observe::live::read_start(
            client.server_time().await.expect("server time"),
        );
        let seen = audience_sync::observe::live::read(
            &client,
            audience_sync::observe::live::Spec {
                list_id: &list_id,
                statuses: &[MemberStatus::Subscribed],
                fields: vec!["last_changed".to_owned()],
                start,
                expected: 0,
            },
            std::sync::Arc::new(audience_sync::mailchimp::Projection::new(&[])),
            |m| {
                (
                    m.contact_id().to_owned(),
                    m.email().to_owned(),
                    seed_status(m.status()),
                )
            },
        )
        .await
        .expect("the read converges");
        sandbox.mailchimp.set_churn(Churn::default());
        let journal = sandbox.mailchimp.journal();
        let changes = &journal[before..];
        assert!(
            changes.len() >= 30,
            "seed {seed}: churn ran ({} changes)",
            changes.len()
        );
        let now = sandbox.mailchimp.members_now(&list_id);
        check_guarantee(seed, &seen, changes, &now);
    }
}
