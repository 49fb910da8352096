//! Static marketing lists: adding and removing members as the list actions do (type, dynamic,
//! locked and inactive lists refused), kept in step with `listmember` rows and `membercount`.

use uuid::Uuid;

use super::{LIST_LINKS, Store};
use crate::dataverse::errors::DvError;
use crate::dataverse::meta;
use crate::dataverse::value::Val;

/// `CannotRemoveNonListMember` (PD `reference/web-service-error-codes`): removing a record that
/// is not on the list.
pub const NOT_A_LIST_MEMBER: &str = "0x80048458";

/// A locked list's refusal of an add or a removal. The words are those the SDK helpers report
/// ("you can not perform this action if marketing list is locked", emregulcan/xrmlibrary.2016
/// `ListHelper.cs`); no documented error code is known, so the code is empty, as Dataverse's
/// often is (PD `webapi/compose-http-requests-handle-errors.md`).
///
/// The same holds for every list refusal below: the published error-code reference
/// (PD `includes/data-service-errors.md`, CDS `org-service/web-service-error-codes.md`) lists no
/// code for a dynamic, locked or inactive list or a wrong member type, so the emulator answers
/// with an empty `code` and the words of the `list` table reference (CE
/// `ce/developer/reference/entities/list.md`: `type`, `lockstatus`, `statecode`,
/// `createdfromcode`) rather than invent a code a client could come to depend on.
pub const LOCKED: &str = "You can not perform this action if marketing list is locked.";

/// An inactive contact or lead offered as a member: "Marketing List does not include inactive
/// records" (MicrosoftDocs/dynamics-365-customer-engagement#3182; the list's
/// `ignoreinactivelistmembers` exists for members deactivated after they joined). The emulator
/// refuses the add rather than skip it silently, so a client that offers one is seen to.
pub const INACTIVE_MEMBER: &str =
    "Marketing List does not include inactive records: the record is inactive (statecode 1).";

/// A dynamic list's refusal of an add: "A dynamic marketing list is based on a dynamic query"
/// (list.md, `type`).
pub const DYNAMIC: &str =
    "Members cannot be added to a dynamic marketing list: its members come from its query.";

/// An inactive list's refusal: "Inactive marketing lists are read-only and can't be edited
/// unless they are reactivated." (list.md, `statecode`).
pub const INACTIVE: &str =
    "Inactive marketing lists are read-only and can't be edited unless they are reactivated.";

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
            return Err(DvError::new(400, "", DYNAMIC));
        }
        if get("lockstatus") == Val::Bool(true) {
            return Err(DvError::new(400, "", LOCKED));
        }
        if get("statecode") == Val::Int(1) {
            return Err(DvError::new(400, "", INACTIVE));
        }
        let expected = match get("createdfromcode") {
            Val::Int(1) => "account",
            Val::Int(4) => "lead",
            _ => "contact",
        };
        if member_type != expected {
            return Err(DvError::new(
                400,
                "",
                format!(
                    "The member type {member_type} does not match the list member type {expected}."
                ),
            ));
        }
        let member_row = self.require(member_type, member)?;
        // contact: 1 Inactive; lead: 1 Qualified, 2 Disqualified (docs/dataverse.md §4).
        if matches!(self.column_of(member_type, member_row, "statecode"), Some(Val::Int(n)) if n != 0)
        {
            return Err(DvError::new(400, "", INACTIVE_MEMBER));
        }
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

    /// Remove a list member by `listmemberid` (`DELETE listmembers(id)` or `RemoveMemberList`).
    ///
    /// # Errors
    /// 404 `0x80040217` when it does not exist; a locked list refuses (see [`LOCKED`]).
    pub fn remove_list_member(&mut self, member_id: Uuid) -> Result<(), DvError> {
        let list = self
            .get("listmember", member_id)
            .and_then(|row| self.column_of("listmember", row, "listid"));
        if let Some(Val::Guid(list)) = list {
            if self.list_column(list, "lockstatus") == Val::Bool(true) {
                return Err(DvError::new(400, "", LOCKED));
            }
        }
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

    /// A column of `row` of `table`.
    fn column_of(&self, table: &str, row: &super::Row, column: &str) -> Option<Val> {
        let pos = self.tables.get(table)?.meta.position(column)?;
        Some(row.get(pos).clone())
    }

    /// A column of a list row (`Null` when the list or column is missing).
    fn list_column(&self, list: Uuid, column: &str) -> Val {
        self.get("list", list)
            .and_then(|row| self.column_of("list", row, column))
            .unwrap_or(Val::Null)
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
