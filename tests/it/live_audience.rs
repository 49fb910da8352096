//! Reads of an audience that changes while it is read: sign-ups, unsubscribes, re-subscribes,
//! archives, permanent deletions and e-mail changes arrive at tens per second during the read,
//! and every member that stayed unchanged is read exactly once, no member twice.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use api_sandbox::mailchimp::MemberStatus as SeedStatus;
use api_sandbox::mailchimp::{AudienceSeed, Faults, MemberSeed};
use api_sandbox::{Options, Sandbox, Seed};
use audience_sync::config::MemberStatus;
use audience_sync::mailchimp::{Client, MemberQuery};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

/// Change one random member every `every` until `stop`; the e-mails touched.
async fn churn(
    sandbox: &Sandbox,
    list_id: &str,
    n: usize,
    seed: u64,
    every: Duration,
    stop: &AtomicBool,
) -> HashSet<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut touched = HashSet::new();
    let mut added = 0;
    let mc = &sandbox.mailchimp;
    while !stop.load(Ordering::Relaxed) {
        let target = email(rng.random_range(0..n));
        let _ = match rng.random_range(0..6) {
            0 => mc.set_status(list_id, &target, SeedStatus::Unsubscribed),
            1 => mc.set_status(list_id, &target, SeedStatus::Subscribed),
            2 => mc.set_status(list_id, &target, SeedStatus::Archived),
            3 => mc.delete_member_permanently(list_id, &target),
            4 => mc
                .change_email(list_id, &target, &format!("moved{added}-{target}"))
                .map(|_| ()),
            _ => {
                added += 1;
                mc.add_member(
                    list_id,
                    &MemberSeed::new(&format!("new{added}@example.com")),
                )
                .map(|_| ())
            }
        };
        touched.insert(target);
        tokio::time::sleep(every).await;
    }
    touched
}

#[tokio::test]
async fn a_read_during_churn_loses_and_doubles_no_member() {
    let n = 10_000;
    let sandbox = start(n).await;
    let list_id = sandbox.mailchimp.audiences()[0].0.clone();
    // Slow pages so that the read takes a while and many changes land in it.
    sandbox.mailchimp.set_faults(Faults {
        latency_ms: 60,
        ..Faults::default()
    });
    let client = client(&sandbox);
    let mut all_touched = HashSet::new();
    for seed in 0..3 {
        let stop = AtomicBool::new(false);
        let read = async {
            let query = MemberQuery {
                statuses: vec![MemberStatus::Subscribed],
                ..MemberQuery::default()
            };
            let mut pages = client.members(&list_id, query);
            let mut emails = Vec::new();
            while let Some(page) = pages.next().await {
                emails.extend(
                    page.expect("the read converges")
                        .into_iter()
                        .map(|m| m.email_address),
                );
            }
            stop.store(true, Ordering::Relaxed);
            emails
        };
        let (emails, touched) = tokio::join!(
            read,
            churn(
                &sandbox,
                &list_id,
                n,
                seed,
                Duration::from_millis(20),
                &stop
            )
        );
        assert!(
            touched.len() > 10,
            "seed {seed}: churn ran ({} changes)",
            touched.len()
        );
        let unique: HashSet<&String> = emails.iter().collect();
        assert_eq!(
            unique.len(),
            emails.len(),
            "seed {seed}: a member was read twice"
        );
        // Members never touched (in this run or an earlier one) were subscribed throughout.
        all_touched.extend(touched);
        let missing: Vec<String> = (0..n)
            .map(email)
            .filter(|e| !all_touched.contains(e) && !unique.contains(e))
            .collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: unchanged members lost: {missing:?}"
        );
    }
}
