//! Binding checks: a snapshot not read with the binding's mappings, or a list that is missing
//! (and not created), of accounts, dynamic, of the wrong member type, inactive or locked, is a binding
//! error; the binding then gets no changes at all.

use crate::config::{Binding, ListSelector};
use crate::domain::{ACCOUNT_LIST_CODE, Names};
use crate::plan::model::{Problem, ProblemCode};
use crate::plan::snapshot::{Snapshot, crm_columns, member_field_paths};

fn binding_error(code: ProblemCode, message: String) -> Problem {
    Problem {
        code,
        message,
        member: None,
        records: Vec::new(),
    }
}

pub(super) fn check_shape(
    binding: &Binding,
    names: &Names,
    snapshot: &Snapshot,
) -> Option<Problem> {
    let paths = member_field_paths(binding);
    let columns = crm_columns(binding, names);
    let width_ok = snapshot
        .mailchimp
        .members
        .iter()
        .all(|m| m.values_len() == paths.len())
        && snapshot
            .crm
            .records
            .iter()
            .all(|r| r.values_len() == columns.len());
    if snapshot.mailchimp.field_paths != paths || snapshot.crm.columns != columns || !width_ok {
        return Some(binding_error(
            ProblemCode::SnapshotMismatch,
            format!(
                "the snapshot of binding `{}` was not read with its field mappings (internal error)",
                binding.name
            ),
        ));
    }
    None
}

pub(super) fn check_list(binding: &Binding, snapshot: &Snapshot) -> Option<Problem> {
    let expected = binding.list.member_type.list_code();
    let Some(list) = &snapshot.crm.list else {
        let creatable =
            binding.list.create && matches!(binding.list.selector, ListSelector::Name(_));
        if creatable {
            return None;
        }
        let what = match &binding.list.selector {
            ListSelector::Id(id) => format!("with id `{id}`"),
            ListSelector::Name(name) => format!("named `{name}`"),
        };
        return Some(binding_error(
            ProblemCode::ListNotFound,
            format!(
                "no marketing list {what} exists; create it in the CRM or set `create: true` (with `name`) on binding `{}`",
                binding.name
            ),
        ));
    };
    let (code, message) = if i64::from(list.member_type_code) == ACCOUNT_LIST_CODE {
        (
            ProblemCode::AccountList,
            format!(
                "marketing list `{}` holds accounts; only contact and lead lists can be synced",
                list.name
            ),
        )
    } else if list.dynamic {
        (
            ProblemCode::DynamicList,
            format!(
                "marketing list `{}` is dynamic (computed from a query); only static lists can be synced",
                list.name
            ),
        )
    } else if i64::from(list.member_type_code) != expected {
        (
            ProblemCode::WrongMemberType,
            format!(
                "marketing list `{}` has member type code `{}` but binding `{}` syncs {}s (code `{expected}`)",
                list.name,
                list.member_type_code,
                binding.name,
                binding.list.member_type.logical_name()
            ),
        )
    } else if list.statecode != 0 {
        (
            ProblemCode::InactiveList,
            format!(
                "marketing list `{}` is inactive (read-only); activate it in the CRM",
                list.name
            ),
        )
    } else if list.locked {
        (
            ProblemCode::LockedList,
            format!(
                "marketing list `{}` is locked (`lockstatus`): the CRM refuses to add or remove its members; unlock it in the CRM or bind another list",
                list.name
            ),
        )
    } else {
        return None;
    };
    Some(binding_error(code, message))
}
