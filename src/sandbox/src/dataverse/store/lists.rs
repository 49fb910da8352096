//! Static marketing lists: adding and removing members as the list actions do (type, dynamic,
//! locked and inactive lists refused), kept in step with `listmember` rows and `membercount`.

use uuid::Uuid;

use super::{LIST_LINKS, Store};
use crate::dataverse::errors::DvError;
use crate::dataverse::meta;
use crate::dataverse::value::Val;

impl Store {
    /// Add a member to a static list, checking the list as the service does. Returns the
    /// `listmemberid` (the existing one when already a member).
    ///
    /// # Errors
    /// Missing list or member, dynamic, locked or inactive list, member of the wrong type.
    pub fn add_list_member(
        &mut self,
        list: Uuid,
        member_type: &str,
        member: Uuid,
    ) -> Result<Uuid, DvError> {
        let list_row = self.require("list", list)?.clone();
        let list_meta = &self
            .tables
            .get("list")
            .ok_or_else(|| DvError::no_resource("list"))?
            .meta;
        let get = |name: &str| {
            list_meta
                .position(name)
                .map_or(Val::Null, |p| list_row.get(p).clone())
        };
        if get("type") == Val::Bool(true) {
            return Err(DvError::new(
                400,
                "0x8004F6E0",
                "Members cannot be added to a dynamic marketing list.",
            ));
        }
        if get("lockstatus") == Val::Bool(true) {
            return Err(DvError::new(
                400,
                "0x8004F6DF",
                "You can't add members to a locked marketing list.",
            ));
        }
        if get("statecode") == Val::Int(1) {
            return Err(DvError::new(
                400,
                "0x80040203",
                "The marketing list is inactive. Inactive lists are read-only.",
            ));
        }
        let expected = match get("createdfromcode") {
            Val::Int(1) => "account",
            Val::Int(4) => "lead",
            _ => "contact",
        };
        if member_type != expected {
            return Err(DvError::new(
                400,
                "0x8004F6DC",
                format!(
                    "The member type {member_type} does not match the list member type {expected}."
                ),
            ));
        }
        self.require(member_type, member)?;
        if let Some(existing) = self.member_ids.get(&(list, member)) {
            return Ok(*existing);
        }
        let id = meta::name_uuid("listmember", &format!("{list}:{member}"));
        let taken = self
            .tables
            .get("listmember")
            .ok_or_else(|| DvError::no_resource("listmember"))?
            .rows
            .contains_key(&id);
        let id = if taken { Uuid::new_v4() } else { id };
        self.insert_raw(
            "listmember",
            id,
            &[
                ("listid", Val::Guid(list)),
                ("entityid", Val::Guid(member)),
                ("entitytype", Val::Str(member_type.into())),
            ],
        )?;
        self.link(LIST_LINKS, list, member);
        self.member_ids.insert((list, member), id);
        self.members_by_list.insert((list, id));
        self.bump_member_count(list, 1);
        Ok(id)
    }

    /// Remove a list member by `listmemberid`.
    ///
    /// # Errors
    /// 404 when it does not exist.
    pub fn remove_list_member(&mut self, member_id: Uuid) -> Result<(), DvError> {
        let row = self
            .take_row("listmember", member_id)
            .ok_or_else(|| DvError::not_found("listmember", &member_id))?;
        let Some(meta) = self.tables.get("listmember").map(|t| &t.meta) else {
            return Ok(());
        };
        let (Some(lp), Some(ep)) = (meta.position("listid"), meta.position("entityid")) else {
            return Ok(());
        };
        if let (Val::Guid(list), Val::Guid(entity)) = (row.get(lp).clone(), row.get(ep).clone()) {
            self.unlink(LIST_LINKS, list, entity);
            self.member_ids.remove(&(list, entity));
            self.members_by_list.remove(&(list, member_id));
            self.bump_member_count(list, -1);
        }
        Ok(())
    }

    /// The `listmemberid` of a pair.
    #[must_use]
    pub fn list_member_id(&self, list: Uuid, member: Uuid) -> Option<Uuid> {
        self.member_ids.get(&(list, member)).copied()
    }

    fn bump_member_count(&mut self, list: Uuid, delta: i64) {
        let Some(t) = self.tables.get("list") else {
            return;
        };
        let Some(pos) = t.meta.position("membercount") else {
            return;
        };
        let Some(mut row) = t.rows.get(&list).cloned() else {
            return;
        };
        let count = match row.get(pos) {
            Val::Int(n) => *n,
            _ => 0,
        };
        row.set(pos, Val::Int((count + delta).max(0)));
        self.stamp("list", &mut row, false);
        self.put_row("list", list, row);
    }
}
