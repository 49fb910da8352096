//! Query options on a collection (`$select`, `$filter`, `$orderby`, `$top`, `$count`,
//! `$expand`, `$skiptoken`, parameter aliases): parsed and bound to the table's metadata, then
//! evaluated against the store one page at a time.
//!
//! Invariants: an option or function the emulator does not support is a 400 OData error, never
//! ignored; rows come in primary-key order unless `$orderby` says otherwise, so a page resumes
//! after the last key of the previous one; a page holds at most `maxpagesize` rows (≤ 5000).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::errors::DvError;
use super::filter::{self, Expr, Lit, Op, Operand, TextFn};
use super::meta::{AttrType, EntityMeta, ManyToMany};
use super::store::{Row, Store, Table};
use super::value::{Val, cmp_ci};

mod paged;
mod render;
use paged::{linked_to_one, sorted_after, unordered_page};
pub use render::{render, write_row, write_str};

/// The largest page the service returns.
pub const MAX_PAGE: usize = 5000;

/// Parsed query options of one request.
#[derive(Debug, Default, Clone)]
pub struct QueryOptions {
    /// `$select` names (empty = all columns).
    pub select: Vec<String>,
    /// `$filter`.
    pub filter: Option<Expr>,
    /// `$orderby` (name, descending).
    pub orderby: Vec<(String, bool)>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$count=true`.
    pub count: bool,
    /// `$expand` items.
    pub expand: Vec<Expand>,
    /// `$skiptoken` (last key seen, page number).
    pub skiptoken: Option<(Option<Uuid>, usize)>,
}

/// One `$expand` item.
#[derive(Debug, Clone)]
pub struct Expand {
    /// Navigation property.
    pub nav: String,
    /// Nested `$select`.
    pub select: Vec<String>,
}

/// Parse the query string pairs of a request into options.
///
/// # Errors
/// An unsupported or malformed option (400).
pub fn parse_options(pairs: &[(String, String)]) -> Result<QueryOptions, DvError> {
    let aliases: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k.starts_with('@'))
        .cloned()
        .collect();
    let mut out = QueryOptions::default();
    for (key, value) in pairs {
        match key.as_str() {
            "$select" => out.select = split_list(value),
            "$filter" => {
                out.filter =
                    Some(filter::parse(value, &aliases).map_err(|e| {
                        DvError::bad_request(format!("Syntax error in $filter: {e}"))
                    })?);
            }
            "$orderby" => {
                for item in split_list(value) {
                    let mut parts = item.split_whitespace();
                    let name = parts.next().unwrap_or_default().to_owned();
                    let desc = match parts.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => {
                            return Err(DvError::bad_request(format!(
                                "Syntax error in $orderby: unexpected '{other}'."
                            )));
                        }
                    };
                    out.orderby.push((name, desc));
                }
            }
            "$top" => {
                out.top = Some(value.parse().map_err(|_| {
                    DvError::bad_request(format!("Invalid value '{value}' for $top query option."))
                })?);
            }
            "$count" => {
                out.count = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(DvError::bad_request(format!(
                            "Invalid value '{value}' for $count query option."
                        )));
                    }
                }
            }
            "$expand" => out.expand = parse_expand(value)?,
            "$skiptoken" => out.skiptoken = Some(parse_skiptoken(value)?),
            "$skip" => {
                return Err(DvError::bad_request(
                    "The query parameter $skip is not supported",
                ));
            }
            "$apply" | "$search" | "$format" | "$compute" | "$levels" | "$deltatoken" => {
                return Err(DvError::bad_request(format!(
                    "The query parameter {key} is not supported"
                )));
            }
            k if k.starts_with('$') => {
                return Err(DvError::bad_request(format!(
                    "The query parameter {k} is not supported"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0_i32;
    let mut current = String::new();
    for c in value.chars() {
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_expand(value: &str) -> Result<Vec<Expand>, DvError> {
    let mut out = Vec::new();
    for item in split_list(value) {
        let (nav, inner) = match item.split_once('(') {
            Some((nav, rest)) => (
                nav.trim().to_owned(),
                rest.strip_suffix(')').unwrap_or(rest).to_owned(),
            ),
            None => (item.clone(), String::new()),
        };
        let mut expand = Expand {
            nav,
            select: Vec::new(),
        };
        for option in inner.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            match option.split_once('=') {
                Some(("$select", cols)) => expand.select = split_list(cols),
                _ => {
                    return Err(DvError::bad_request(format!(
                        "The expand option '{option}' is not supported"
                    )));
                }
            }
        }
        out.push(expand);
    }
    if out.len() > 15 {
        return Err(DvError::bad_request(
            "Number of expands exceeded the limit of 15.",
        ));
    }
    Ok(out)
}

/// Build the `$skiptoken` of the page after `page_number` ending at `last`.
#[must_use]
pub fn make_skiptoken(primary_id: &str, last: Uuid, first: Uuid, page_number: usize) -> String {
    let cookie = format!(
        "<cookie page=\"{page_number}\"><{primary_id} last=\"{{{}}}\" first=\"{{{}}}\" /></cookie>",
        last.to_string().to_uppercase(),
        first.to_string().to_uppercase()
    );
    format!(
        "<cookie pagenumber=\"{}\" pagingcookie=\"{}\" istracking=\"False\" />",
        page_number + 1,
        urlencoding::encode(&urlencoding::encode(&cookie))
    )
}

fn parse_skiptoken(value: &str) -> Result<(Option<Uuid>, usize), DvError> {
    let bad = || DvError::bad_request(format!("The $skiptoken '{value}' is not valid."));
    let page = value
        .split("pagenumber=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(bad)?;
    let cookie = value
        .split("pagingcookie=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(bad)?;
    let mut decoded = cookie.to_owned();
    for _ in 0..2 {
        decoded = urlencoding::decode(&decoded)
            .map_err(|_| bad())?
            .into_owned();
    }
    let last = decoded
        .split("last=\"{")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .and_then(|g| Uuid::parse_str(g).ok());
    Ok((last, page))
}

/// A `$filter` bound to a table: every name resolved to a column position or a relationship.
#[derive(Debug, Clone)]
pub enum Pred {
    /// Both.
    And(Box<Pred>, Box<Pred>),
    /// Either.
    Or(Box<Pred>, Box<Pred>),
    /// Negation.
    Not(Box<Pred>),
    /// A column compared with a value.
    Cmp(Col, Op, Val),
    /// Text function on a column.
    Text(TextFn, Col, String),
    /// Column value in a set.
    In(Col, Vec<Val>),
    /// Any/all over a many-to-many relationship.
    Lambda {
        /// The relationship.
        rel: ManyToMany,
        /// Whether the filtered table is entity1.
        first_side: bool,
        /// `all`.
        all: bool,
        /// Condition on the other table's rows (`None` = exists).
        body: Option<Box<Pred>>,
    },
    /// Constant.
    Const(bool),
}

/// A column reference, possibly through a single-valued navigation property.
#[derive(Debug, Clone)]
pub enum Col {
    /// A column of the row.
    Here(u16),
    /// A column of the row the lookup at the first position points to, in that table.
    Via(u16, String, u16),
}

/// Bind a parsed filter to a table.
///
/// # Errors
/// Unknown property or navigation property, or a shape not supported.
pub fn bind(store: &Store, meta: &EntityMeta, expr: &Expr) -> Result<Pred, DvError> {
    bind_in(store, meta, expr, None)
}

fn bind_in(
    store: &Store,
    meta: &EntityMeta,
    expr: &Expr,
    var: Option<&str>,
) -> Result<Pred, DvError> {
    Ok(match expr {
        Expr::And(a, b) => Pred::And(
            Box::new(bind_in(store, meta, a, var)?),
            Box::new(bind_in(store, meta, b, var)?),
        ),
        Expr::Or(a, b) => Pred::Or(
            Box::new(bind_in(store, meta, a, var)?),
            Box::new(bind_in(store, meta, b, var)?),
        ),
        Expr::Not(a) => Pred::Not(Box::new(bind_in(store, meta, a, var)?)),
        Expr::Cmp(left, op, right) => match (left, right) {
            (Operand::Path(path), Operand::Lit(lit)) => {
                let (col, kind) = bind_path(store, meta, path, var)?;
                Pred::Cmp(col, *op, lit_val(&kind, lit)?)
            }
            (Operand::Lit(lit), Operand::Path(path)) => {
                let (col, kind) = bind_path(store, meta, path, var)?;
                Pred::Cmp(col, flip(*op), lit_val(&kind, lit)?)
            }
            (Operand::Lit(a), Operand::Lit(b)) => {
                Pred::Const(lit_to_val(a).equals(&lit_to_val(b)) == (*op == Op::Eq))
            }
            (Operand::Path(_), Operand::Path(_)) => {
                return Err(DvError::bad_request(
                    "Comparing two properties is not supported.",
                ));
            }
        },
        Expr::Text(f, path, value) => {
            let (col, kind) = bind_path(store, meta, path, var)?;
            if !matches!(kind, AttrType::String(_) | AttrType::Memo(_)) {
                return Err(DvError::bad_request(format!(
                    "The function {f:?} is only supported on text columns."
                )));
            }
            Pred::Text(*f, col, value.clone())
        }
        Expr::In(name, values) => {
            let (col, kind) = bind_path(store, meta, std::slice::from_ref(name), None)?;
            let values = values
                .iter()
                .map(|lit| lit_val(&kind, lit))
                .collect::<Result<Vec<_>, _>>()?;
            Pred::In(col, values)
        }
        Expr::Lambda {
            nav,
            all,
            var: inner_var,
            body,
        } => {
            let (rel, first_side) = store
                .many_to_many_nav(&meta.logical_name, nav)
                .ok_or_else(|| DvError::unknown_property(&meta.logical_name, nav))?;
            let other = if first_side {
                &rel.entity2
            } else {
                &rel.entity1
            };
            let other_meta = &store
                .table(other)
                .ok_or_else(|| DvError::no_resource(other))?
                .meta;
            let body = match body {
                Some(b) => Some(Box::new(bind_in(store, other_meta, b, Some(inner_var))?)),
                None => None,
            };
            Pred::Lambda {
                rel: rel.clone(),
                first_side,
                all: *all,
                body,
            }
        }
    })
}

fn flip(op: Op) -> Op {
    match op {
        Op::Gt => Op::Lt,
        Op::Lt => Op::Gt,
        Op::Ge => Op::Le,
        Op::Le => Op::Ge,
        other => other,
    }
}

/// Resolve a column name as a query names it: `_x_value` for lookups, the logical name for
/// other columns.
///
/// # Errors
/// No such column.
pub fn resolve_column(meta: &EntityMeta, name: &str) -> Result<(u16, AttrType), DvError> {
    if let Some(inner) = name
        .strip_prefix('_')
        .and_then(|n| n.strip_suffix("_value"))
        && let Some(pos) = meta.position(inner)
        && let Some(attr) = meta.attribute_at(pos)
        && matches!(attr.kind, AttrType::Lookup(_))
    {
        return Ok((pos, attr.kind.clone()));
    }
    match meta
        .position(name)
        .and_then(|pos| meta.attribute_at(pos).map(|a| (pos, a)))
    {
        Some((pos, attr)) if !matches!(attr.kind, AttrType::Lookup(_)) => {
            Ok((pos, attr.kind.clone()))
        }
        _ => Err(DvError::unknown_property(&meta.logical_name, name)),
    }
}

fn bind_path(
    store: &Store,
    meta: &EntityMeta,
    path: &[String],
    var: Option<&str>,
) -> Result<(Col, AttrType), DvError> {
    let path: Vec<&str> = match (var, path.first()) {
        (Some(v), Some(first)) if first == v => path.iter().skip(1).map(String::as_str).collect(),
        _ => path.iter().map(String::as_str).collect(),
    };
    match path.as_slice() {
        [name] => {
            let (pos, kind) = resolve_column(meta, name)?;
            Ok((Col::Here(pos), kind))
        }
        [nav, name] => {
            let rel = store
                .lookup_nav(&meta.logical_name, nav)
                .ok_or_else(|| DvError::unknown_property(&meta.logical_name, nav))?;
            let lookup_pos = meta
                .position(&rel.referencing_attribute)
                .ok_or_else(|| DvError::unknown_property(&meta.logical_name, nav))?;
            let target = store
                .table(&rel.referenced_entity)
                .ok_or_else(|| DvError::no_resource(&rel.referenced_entity))?;
            let (pos, kind) = resolve_column(&target.meta, name)?;
            Ok((
                Col::Via(lookup_pos, rel.referenced_entity.clone(), pos),
                kind,
            ))
        }
        _ => Err(DvError::bad_request(format!(
            "The property path '{}' is not supported.",
            path.join("/")
        ))),
    }
}

fn lit_to_val(lit: &Lit) -> Val {
    match lit {
        Lit::Null => Val::Null,
        Lit::Bool(b) => Val::Bool(*b),
        Lit::Int(i) => Val::Int(*i),
        Lit::Dec(d) => Val::Dec(*d),
        Lit::Str(s) => Val::Str(s.as_str().into()),
        Lit::Guid(g) => Val::Guid(*g),
    }
}

fn lit_val(kind: &AttrType, lit: &Lit) -> Result<Val, DvError> {
    let val = lit_to_val(lit);
    let ok = match (kind, &val) {
        (_, Val::Null) => true,
        (AttrType::Uniqueidentifier | AttrType::Lookup(_), Val::Guid(_)) => true,
        (AttrType::Uniqueidentifier | AttrType::Lookup(_), Val::Str(s)) => {
            Uuid::parse_str(s).is_ok()
        }
        (
            AttrType::String(_) | AttrType::Memo(_) | AttrType::DateTime | AttrType::Date,
            Val::Str(_),
        ) => true,
        (AttrType::Boolean, Val::Bool(_)) => true,
        (
            AttrType::Integer
            | AttrType::BigInt
            | AttrType::Picklist(_)
            | AttrType::State(_)
            | AttrType::Status(_),
            Val::Int(_),
        ) => true,
        (AttrType::Decimal, Val::Int(_) | Val::Dec(_)) => true,
        _ => false,
    };
    if ok {
        Ok(val)
    } else {
        Err(DvError::bad_request(format!(
            "A binary operator with incompatible types was detected. Found operand types '{}' and '{}' for operator kind 'Equal'.",
            kind.edm(),
            match val {
                Val::Str(_) => "Edm.String",
                Val::Guid(_) => "Edm.Guid",
                Val::Bool(_) => "Edm.Boolean",
                Val::Int(_) => "Edm.Int32",
                Val::Dec(_) => "Edm.Decimal",
                Val::Null => "null",
            }
        )))
    }
}

/// Evaluate a bound filter on one row.
#[must_use]
pub fn eval(store: &Store, id: Uuid, row: &Row, pred: &Pred) -> bool {
    match pred {
        Pred::And(a, b) => eval(store, id, row, a) && eval(store, id, row, b),
        Pred::Or(a, b) => eval(store, id, row, a) || eval(store, id, row, b),
        Pred::Not(a) => !eval(store, id, row, a),
        Pred::Const(b) => *b,
        Pred::Cmp(col, op, value) => {
            with_value(store, row, col, |actual| compare(actual, *op, value)).unwrap_or(false)
        }
        Pred::Text(f, col, needle) => match with_value(store, row, col, |v| match v {
            Val::Str(s) => Some(s.clone()),
            _ => None,
        })
        .flatten()
        {
            Some(s) => {
                let hay = s.to_lowercase();
                let needle = needle.to_lowercase();
                match f {
                    TextFn::Contains => hay.contains(&needle),
                    TextFn::StartsWith => hay.starts_with(&needle),
                    TextFn::EndsWith => hay.ends_with(&needle),
                }
            }
            _ => false,
        },
        Pred::In(col, values) => {
            with_value(store, row, col, |v| values.iter().any(|x| v.equals(x))).unwrap_or(false)
        }
        Pred::Lambda {
            rel,
            first_side,
            all,
            body,
        } => {
            let other_table = if *first_side {
                &rel.entity2
            } else {
                &rel.entity1
            };
            let linked = store.linked(rel, *first_side, id);
            let Some(body) = body else {
                return !linked.is_empty();
            };
            let test = |other: &Uuid| {
                store
                    .get(other_table, *other)
                    .is_some_and(|r| eval(store, *other, r, body))
            };
            if *all {
                linked.iter().all(test)
            } else {
                linked.iter().any(test)
            }
        }
    }
}

fn with_value<R>(store: &Store, row: &Row, col: &Col, f: impl FnOnce(&Val) -> R) -> Option<R> {
    match col {
        Col::Here(pos) => Some(f(row.get(*pos))),
        Col::Via(lookup, table, pos) => match row.get(*lookup) {
            Val::Guid(target) => store.get(table, *target).map(|r| f(r.get(*pos))),
            _ => Some(f(&Val::Null)),
        },
    }
}

fn compare(actual: &Val, op: Op, expected: &Val) -> bool {
    if expected.is_null() || actual.is_null() {
        let both = expected.is_null() && actual.is_null();
        return match op {
            Op::Eq => both,
            Op::Ne => !both,
            _ => false,
        };
    }
    let Some(ord) = actual.compare(expected) else {
        return op == Op::Ne;
    };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
    }
}

/// Ids the filter can only match among (an index shortcut), or `None` for a full scan.
#[must_use]
pub fn candidates(store: &Store, table: &Table, pred: &Pred) -> Option<Vec<Uuid>> {
    let pk = table.meta.primary_id_pos();
    match pred {
        Pred::And(a, b) => candidates(store, table, a).or_else(|| candidates(store, table, b)),
        Pred::Cmp(Col::Here(pos), Op::Eq, Val::Guid(id)) if *pos == pk => Some(vec![*id]),
        Pred::Cmp(Col::Here(pos), Op::Eq, Val::Str(text)) if is_text(table, *pos) => {
            Some(store.lookup_text(&table.meta.logical_name, *pos, &[text]))
        }
        Pred::In(Col::Here(pos), values)
            if is_text(table, *pos) && values.iter().all(|v| matches!(v, Val::Str(_))) =>
        {
            let texts: Vec<&str> = values
                .iter()
                .filter_map(|v| match v {
                    Val::Str(s) => Some(&**s),
                    _ => None,
                })
                .collect();
            Some(store.lookup_text(&table.meta.logical_name, *pos, &texts))
        }
        Pred::Or(a, b) => {
            let mut left = candidates(store, table, a)?;
            left.extend(candidates(store, table, b)?);
            Some(left)
        }
        Pred::In(Col::Here(pos), values) if *pos == pk => Some(
            values
                .iter()
                .filter_map(|v| match v {
                    Val::Guid(g) => Some(*g),
                    Val::Str(s) => Uuid::parse_str(s).ok(),
                    _ => None,
                })
                .collect(),
        ),
        Pred::Lambda { .. } => {
            // `nav/any(x: x/<other pk> eq <id>)`: the rows linked to that one id.
            let (rel, side, id) = linked_to_one(store, pred)?;
            Some(store.linked(rel, side, id))
        }
        Pred::Cmp(Col::Here(pos), Op::Eq, Val::Guid(list))
            if table.meta.logical_name == "listmember" =>
        {
            let list_pos = table.meta.position("listid")?;
            if *pos != list_pos {
                return None;
            }
            let rel = store.many_to_many.iter().find(|r| r.list_backed)?;
            let links = store.links(rel)?;
            Some(
                links
                    .from_first(*list)
                    .filter_map(|member| store.list_member_id(*list, member))
                    .collect(),
            )
        }
        _ => None,
    }
}

fn is_text(table: &Table, pos: u16) -> bool {
    table
        .meta
        .attribute_at(pos)
        .is_some_and(|a| matches!(a.kind, AttrType::String(_)))
}

/// One page of a query.
#[derive(Debug)]
pub struct Page<'a> {
    /// Matching rows of this page (borrowed from the store: only the projection is rendered).
    pub rows: Vec<(Uuid, &'a Row)>,
    /// The token of the next page, if there is one.
    pub next: Option<String>,
    /// `@odata.count` (capped at 5000), when asked.
    pub count: Option<usize>,
}

/// Run a query over a table, or over the given restricted ids (a navigation collection).
///
/// # Errors
/// A bad `$orderby` column.
pub fn run<'a>(
    store: &Store,
    table: &'a Table,
    scope: Option<Vec<Uuid>>,
    options: &QueryOptions,
    pred: Option<&Pred>,
    page_size: usize,
) -> Result<Page<'a>, DvError> {
    let meta = &table.meta;
    let order: Vec<(u16, bool)> = options
        .orderby
        .iter()
        .map(|(name, desc)| resolve_column(meta, name).map(|(pos, _)| (pos, *desc)))
        .collect::<Result<_, _>>()?;
    let limit = options.top.map_or(page_size, |top| top.min(MAX_PAGE));
    let top_only = options.top.is_some();
    let (after, page_number) = options.skiptoken.unwrap_or((None, 1));
    // A page of a list's members or of a row's N:N links is a range of a sorted index.
    let ranged = match (&scope, pred) {
        (None, Some(p)) if order.is_empty() && !options.count => {
            sorted_after(store, table, p, after)
        }
        _ => None,
    };
    // The rows of an unordered page, one more than the limit to tell whether a next page exists.
    let mut rows = Vec::with_capacity(limit.min(1024) + 1);
    if let Some((ids, rest)) = ranged {
        for id in ids {
            if let Some(row) = table.rows.get(&id)
                && rest.iter().all(|p| eval(store, id, row, p))
            {
                rows.push((id, row));
                if rows.len() > limit {
                    break;
                }
            }
        }
        return Ok(unordered_page(
            meta,
            rows,
            limit,
            top_only,
            page_number,
            None,
        ));
    }
    let matches = |id: &Uuid, row: &Row| pred.is_none_or(|p| eval(store, *id, row, p));
    let mut collect = |id: &Uuid, row: &'a Row| {
        if matches(id, row) {
            rows.push((*id, row));
        }
        rows.len() > limit
    };
    let scope = match (scope, pred) {
        (Some(ids), _) => Some(ids),
        (None, Some(p)) => candidates(store, table, p),
        (None, None) => None,
    };
    let count = if options.count {
        let n = match &scope {
            Some(ids) => ids
                .iter()
                .filter(|id| table.rows.get(id).is_some_and(|r| matches(id, r)))
                .count(),
            None => table.rows.iter().filter(|(id, r)| matches(id, r)).count(),
        };
        Some(n.min(MAX_PAGE))
    } else {
        None
    };
    if order.is_empty() {
        match scope {
            Some(mut ids) => {
                ids.sort_unstable();
                ids.dedup();
                for id in ids.iter().filter(|id| after.is_none_or(|a| **id > a)) {
                    if let Some(row) = table.rows.get(id)
                        && collect(id, row)
                    {
                        break;
                    }
                }
            }
            None => {
                let range = match after {
                    Some(a) => table
                        .rows
                        .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                    None => table.rows.range(..),
                };
                for (id, row) in range {
                    if collect(id, row) {
                        break;
                    }
                }
            }
        }
        return Ok(unordered_page(
            meta,
            rows,
            limit,
            top_only,
            page_number,
            count,
        ));
    }
    let mut all: Vec<(Uuid, &Row)> = match scope {
        Some(ids) => {
            let unique: HashSet<Uuid> = ids.into_iter().collect();
            unique
                .into_iter()
                .filter_map(|id| table.rows.get(&id).map(|r| (id, r)))
                .filter(|(id, r)| matches(id, r))
                .collect()
        }
        None => table
            .rows
            .iter()
            .filter(|(id, r)| matches(id, r))
            .map(|(id, r)| (*id, r))
            .collect(),
    };
    all.sort_by(|(ida, a), (idb, b)| {
        for (pos, desc) in &order {
            let ord = match (a.get(*pos), b.get(*pos)) {
                (Val::Str(x), Val::Str(y)) => cmp_ci(x, y),
                (x, y) => x.compare(y).unwrap_or(Ordering::Equal),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        ida.cmp(idb)
    });
    let start = (page_number.saturating_sub(1)).saturating_mul(limit);
    let more = all.len() > start.saturating_add(limit);
    let rows: Vec<(Uuid, &Row)> = all.into_iter().skip(start).take(limit).collect();
    let next = if more && !top_only {
        match (rows.first(), rows.last()) {
            (Some((first, _)), Some((last, _))) => Some(
                make_skiptoken(&meta.primary_id, *last, *first, page_number)
                    .replace("last=", "ordered=\"true\" last="),
            ),
            _ => None,
        }
    } else {
        None
    };
    Ok(Page { rows, next, count })
}

/// Which columns a response shows.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Positions shown (always includes the primary id).
    pub positions: Vec<u16>,
}

/// Bind `$select` (empty = every column).
///
/// # Errors
/// Unknown column.
pub fn projection(meta: &EntityMeta, select: &[String]) -> Result<Projection, DvError> {
    let mut positions = vec![meta.primary_id_pos()];
    if select.is_empty() {
        positions = (0..u16::try_from(meta.attributes.len()).unwrap_or(u16::MAX)).collect();
    } else {
        for name in select {
            let (pos, _) = resolve_column(meta, name)?;
            if !positions.contains(&pos) {
                positions.push(pos);
            }
        }
    }
    Ok(Projection { positions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn unsupported_options_are_errors() {
        assert!(parse_options(&pairs(&[("$skip", "10")])).is_err());
        assert!(parse_options(&pairs(&[("$search", "x")])).is_err());
        assert!(parse_options(&pairs(&[("$expand", "a($filter=x eq 1)")])).is_err());
        let o = parse_options(&pairs(&[
            ("$select", "a,b"),
            ("$orderby", "a desc,b"),
            ("$top", "3"),
        ]))
        .unwrap();
        assert_eq!(o.select, ["a", "b"]);
        assert_eq!(o.orderby, [("a".to_owned(), true), ("b".to_owned(), false)]);
    }

    #[test]
    fn skiptoken_round_trips() {
        let last = Uuid::new_v4();
        let token = make_skiptoken("contactid", last, Uuid::new_v4(), 1);
        let (got, page) = parse_skiptoken(&token).unwrap();
        assert_eq!((got, page), (Some(last), 2));
    }

    #[test]
    fn filters_bind_and_evaluate_against_the_store() {
        let mut store = Store::new(Some(&crate::dataverse::tool_schema::fixture()));
        let email = store
            .table("contact")
            .unwrap()
            .meta
            .position("emailaddress1")
            .unwrap();
        let mut row = Row::default();
        row.set(email, Val::Str("Ann@X.com".into()));
        let id = store.create("contact", None, row).unwrap();
        let table = store.table("contact").unwrap();
        let expr = filter::parse(
            "emailaddress1 eq 'ann@x.com' and statecode eq 0",
            &HashMap::new(),
        )
        .unwrap();
        let pred = bind(&store, &table.meta, &expr).unwrap();
        assert!(eval(&store, id, table.rows.get(&id).unwrap(), &pred));
        let bad = filter::parse("nosuch eq 1", &HashMap::new()).unwrap();
        assert_eq!(bind(&store, &table.meta, &bad).unwrap_err().status, 400);
        let wrong_type = filter::parse("statecode eq 'x'", &HashMap::new()).unwrap();
        assert!(bind(&store, &table.meta, &wrong_type).is_err());
    }
}
