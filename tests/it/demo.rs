//! `audience-sync demo` walks a newcomer through the whole loop and converges.

use crate::common::{run, texts};

#[test]
fn demo_walks_through_plan_apply_and_a_mailchimp_change() {
    let output = run(&["demo", "--no-pause"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // First sync: everything created, the hand-added contact kept.
    assert!(
        stdout.contains("Apply complete: 24 done, 0 failed, 0 stale, 0 skipped."),
        "{stdout}"
    );
    assert!(
        stdout.contains("s***@partner.example"),
        "the unmanaged member is shown as kept, masked"
    );
    assert!(
        !stdout.contains("sam@partner.example"),
        "member data is masked"
    );
    // Then nothing to do.
    assert!(stdout.contains("Plan: 0 changes in 1 binding"), "{stdout}");
    assert!(stdout.contains("(exit code 0)"), "{stdout}");
    // The Mailchimp changes arrive with their reasons and are applied.
    for reason in [
        "tag_renamed_in_mailchimp",
        "unsubscribed_in_mailchimp",
        "member_missing_in_crm",
        "tags_added_in_mailchimp",
    ] {
        assert!(stdout.contains(reason), "{reason} missing from:\n{stdout}");
    }
    assert!(
        stdout.contains("Apply complete: 9 done, 0 failed, 0 stale, 0 skipped."),
        "{stdout}"
    );
    assert!(stdout.contains("Synced"), "{stdout}");
    assert!(
        !stdout.contains("sandbox-dataverse-secret"),
        "no secret is printed"
    );
}
