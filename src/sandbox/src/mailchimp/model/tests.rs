//! The model's rules: subscriber hashes, existing and forgotten addresses, compliance states,
//! e-mail changes, required merge fields, archive and restore.

use super::*;

fn audience() -> (Audience, Ids) {
    let now = Utc::now();
    (
        Audience::new("a1b2c3d4e5".into(), 1, "Test".into(), now),
        Data::default().ids,
    )
}

fn input(email: &str, status: MemberStatus) -> MemberInput {
    MemberInput {
        email: Some(email.into()),
        status: Some(status),
        ..MemberInput::default()
    }
}

#[test]
fn subscriber_hash_is_md5_of_the_lowercased_address() {
    assert_eq!(
        subscriber_hash("Urist.McVankab@Freddiesjokes.com"),
        md5_hex("urist.mcvankab@freddiesjokes.com")
    );
}

#[test]
fn adding_an_existing_address_is_member_exists_and_a_forgotten_one_is_refused() {
    let (mut a, mut ids) = audience();
    let now = Utc::now();
    a.add_member(
        input("x@example.com", MemberStatus::Subscribed),
        &mut ids,
        now,
    )
    .unwrap();
    let err = a
        .add_member(
            input("X@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap_err();
    assert_eq!(err.title, "Member Exists");
    a.delete_permanent("x@example.com").unwrap();
    let err = a
        .add_member(
            input("x@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap_err();
    assert_eq!(err.title, "Forgotten Email Not Subscribed");
}

#[test]
fn an_unsubscribed_member_cannot_be_resubscribed_but_may_go_pending() {
    let (mut a, mut ids) = audience();
    let now = Utc::now();
    let i = a
        .add_member(
            input("u@example.com", MemberStatus::Unsubscribed),
            &mut ids,
            now,
        )
        .unwrap();
    let err = a
        .update_member(
            i,
            input("u@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap_err();
    assert_eq!(err.title, "Member In Compliance State");
    a.update_member(
        i,
        input("u@example.com", MemberStatus::Pending),
        &mut ids,
        now,
    )
    .unwrap();
    assert_eq!(a.members[i].status, MemberStatus::Pending);
}

#[test]
fn changing_the_email_changes_the_hash_but_not_the_contact_id() {
    let (mut a, mut ids) = audience();
    let now = Utc::now();
    let i = a
        .add_member(
            input("old@example.com", MemberStatus::Subscribed),
            &mut ids,
            now,
        )
        .unwrap();
    let contact = a.members[i].contact_id.clone();
    let old_hash = a.members[i].hash.clone();
    a.update_member(
        i,
        MemberInput {
            email: Some("new@example.com".into()),
            ..MemberInput::default()
        },
        &mut ids,
        now,
    )
    .unwrap();
    let m = a.member("new@example.com").unwrap();
    assert_eq!(m.contact_id, contact);
    assert_ne!(m.hash, old_hash);
    assert!(a.member(&old_hash).is_err());
    assert!(a.member(&contact).is_ok());
}

#[test]
fn required_merge_fields_are_reported_by_tag() {
    let (mut a, mut ids) = audience();
    a.merge_fields[1].required = true;
    let err = a
        .add_member(
            input("r@example.com", MemberStatus::Subscribed),
            &mut ids,
            Utc::now(),
        )
        .unwrap_err();
    assert_eq!(err.title, "Invalid Resource");
    assert_eq!(err.errors[0].field, "LNAME");
    let mut skip = input("r@example.com", MemberStatus::Subscribed);
    skip.skip_merge_validation = true;
    assert!(a.add_member(skip, &mut ids, Utc::now()).is_ok());
}

#[test]
fn archive_keeps_the_member_and_put_brings_it_back() {
    let (mut a, mut ids) = audience();
    let now = Utc::now();
    a.add_member(
        input("z@example.com", MemberStatus::Subscribed),
        &mut ids,
        now,
    )
    .unwrap();
    a.archive("z@example.com", now).unwrap();
    assert_eq!(
        a.member("z@example.com").unwrap().status,
        MemberStatus::Archived
    );
    assert_eq!(
        a.archive("z@example.com", now).unwrap_err().status.as_u16(),
        405
    );
    let put = MemberInput {
        email: Some("z@example.com".into()),
        status_if_new: Some(MemberStatus::Subscribed),
        ..MemberInput::default()
    };
    a.upsert_member(&subscriber_hash("z@example.com"), put, &mut ids, now)
        .unwrap();
    assert_eq!(
        a.member("z@example.com").unwrap().status,
        MemberStatus::Subscribed
    );
}
