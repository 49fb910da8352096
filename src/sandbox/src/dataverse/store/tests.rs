//! The store's behaviour: duplicates and versions, rollback of rows, links and memberships,
//! snapshots, and list member types.

use super::*;

fn contact(store: &mut Store, email: &str) -> Uuid {
    let pos = store
        .table("contact")
        .unwrap()
        .meta
        .position("emailaddress1")
        .unwrap();
    let mut row = Row::default();
    row.set(pos, Val::Str(email.into()));
    store.create("contact", None, row).unwrap()
}

fn list(store: &mut Store, code: i64) -> Uuid {
    let id = Uuid::new_v4();
    store
        .insert_raw(
            "list",
            id,
            &[
                ("listname", Val::Str("L".into())),
                ("createdfromcode", Val::Int(code)),
            ],
        )
        .unwrap();
    id
}

#[test]
fn create_with_an_existing_id_is_a_duplicate_and_versions_increase() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let id = contact(&mut store, "a@x");
    let err = store
        .create("contact", Some(id), Row::default())
        .unwrap_err();
    assert_eq!(err.status, 412);
    let v1 = store
        .version_of("contact", store.get("contact", id).unwrap())
        .unwrap();
    store.update("contact", id, Row::default()).unwrap();
    let v2 = store
        .version_of("contact", store.get("contact", id).unwrap())
        .unwrap();
    assert!(v2 > v1);
}

#[test]
fn rollback_undoes_rows_links_and_memberships() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let l = list(&mut store, 2);
    let before = store.table("contact").unwrap().rows.len();
    let result: Result<(), DvError> = store.atomically(|store| {
        let c = contact(store, "a@x");
        store.add_list_member(l, "contact", c)?;
        Err(DvError::duplicate())
    });
    assert!(result.is_err());
    let c = Uuid::new_v4();
    assert_eq!(store.table("contact").unwrap().rows.len(), before);
    assert!(store.list_member_id(l, c).is_none());
    let count_pos = store
        .table("list")
        .unwrap()
        .meta
        .position("membercount")
        .unwrap();
    assert_eq!(store.get("list", l).unwrap().get(count_pos), &Val::Int(0));
}

#[test]
fn a_snapshot_round_trips_rows_links_and_metadata() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let l = list(&mut store, 2);
    let c = contact(&mut store, "a@x");
    store.add_list_member(l, "contact", c).unwrap();
    let mut text = Vec::new();
    store.write_snapshot(&mut text).unwrap();
    let back = Store::read_snapshot(text.as_slice()).unwrap();
    assert_eq!(back.get("contact", c), store.get("contact", c));
    assert!(back.list_member_id(l, c).is_some());
    assert!(back.table("mcsync_tag").is_some());
    assert_eq!(
        back.table_by_set("contacts")
            .unwrap()
            .meta
            .position("emailaddress1"),
        store
            .table("contact")
            .unwrap()
            .meta
            .position("emailaddress1")
    );
}

#[test]
fn lists_refuse_wrong_member_types() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let accounts = list(&mut store, 1);
    let c = contact(&mut store, "a@x");
    assert_eq!(
        store
            .add_list_member(accounts, "contact", c)
            .unwrap_err()
            .status,
        400
    );
    let contacts = list(&mut store, 2);
    let m = store.add_list_member(contacts, "contact", c).unwrap();
    assert_eq!(store.add_list_member(contacts, "contact", c).unwrap(), m);
    store.delete("contact", c).unwrap();
    assert!(store.get("listmember", m).is_none());
}

#[test]
fn a_locked_list_refuses_removals_and_a_removed_member_is_gone_with_the_real_code() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let contacts = list(&mut store, 2);
    let c = contact(&mut store, "a@x");
    let m = store.add_list_member(contacts, "contact", c).unwrap();
    let lock = store
        .table("list")
        .unwrap()
        .meta
        .position("lockstatus")
        .unwrap();
    let mut locked = Row::default();
    locked.set(lock, Val::Bool(true));
    store.update("list", contacts, locked).unwrap();
    let refused = store.remove_list_member(m).unwrap_err();
    assert_eq!(
        (refused.status, refused.message.as_str()),
        (400, lists::LOCKED)
    );
    assert!(store.get("listmember", m).is_some());
    let mut unlocked = Row::default();
    unlocked.set(lock, Val::Bool(false));
    store.update("list", contacts, unlocked).unwrap();
    store.remove_list_member(m).unwrap();
    let gone = store.remove_list_member(m).unwrap_err();
    assert_eq!((gone.status, gone.code.as_str()), (404, "0x80040217"));
}

#[test]
fn an_inactive_contact_or_lead_is_never_added_to_a_list() {
    let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
    let contacts = list(&mut store, 2);
    let c = contact(&mut store, "a@x");
    let state = store
        .table("contact")
        .unwrap()
        .meta
        .position("statecode")
        .unwrap();
    let mut inactive = Row::default();
    inactive.set(state, Val::Int(1));
    store.update("contact", c, inactive).unwrap();
    let refused = store.add_list_member(contacts, "contact", c).unwrap_err();
    assert_eq!(
        (refused.status, refused.message.as_str()),
        (400, lists::INACTIVE_MEMBER)
    );
    assert!(store.member_ids.is_empty());
}
