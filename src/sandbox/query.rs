//! List queries: Django-style filters checked against the `filtering` table,
//! `order_by`, `_limit`/`_offset` paging and the `meta` links.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::resources::{self, FieldKind, FieldValue, FilterSpec, Resource};
use super::store::{parse_time, Store};
use super::FilterMode;

/// Every lookup of Django's "all" set; `regex`, `iregex` and `search` are accepted by the
/// table but answered 400 by the sandbox (no regex engine).
pub const LOOKUPS: [&str; 22] = [
    "exact",
    "iexact",
    "contains",
    "icontains",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "range",
    "year",
    "month",
    "day",
    "week_day",
    "isnull",
    "search",
    "regex",
    "iregex",
];

/// A literal from the query string, typed after the field it is compared with.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Int(i64),
    Str(String),
    Bool(bool),
    Time(i64),
}

#[derive(Debug, Clone)]
pub struct Condition {
    /// `[field]` or `[relation, field]`.
    pub path: Vec<String>,
    /// The resource of the last path element.
    pub target: Resource,
    pub op: &'static str,
    pub lits: Vec<Literal>,
}

#[derive(Debug)]
pub struct ListQuery {
    pub limit: usize,
    pub offset: usize,
    pub conds: Vec<Condition>,
    pub order: Vec<(String, bool)>,
    /// Other params, in request order, for the `next`/`previous` links.
    pub carry: Vec<(String, String)>,
}

/// A 400 with `{"error": msg}`.
#[derive(Debug)]
pub struct BadRequest(pub String);

fn bad<T>(msg: impl Into<String>) -> Result<T, BadRequest> {
    Err(BadRequest(msg.into()))
}

pub fn parse_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn parse_count(name: &str, v: &str) -> Result<usize, BadRequest> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n as usize),
        Ok(_) => bad(format!(
            "Invalid {name} '{v}' provided. Please provide a positive integer >= 0."
        )),
        Err(_) => bad(format!(
            "Invalid {name} '{v}' provided. Please provide a positive integer."
        )),
    }
}

pub fn parse_list_query(
    res: Resource,
    mode: FilterMode,
    pairs: &[(String, String)],
) -> Result<ListQuery, BadRequest> {
    let mut limit = 20usize;
    let mut offset = 0usize;
    let mut order = Vec::new();
    let mut carry = Vec::new();
    // key -> values (repeated params merged, first-seen order)
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "_limit" => {
                let n = parse_count("limit", v)?;
                limit = if n == 0 || n > 100 { 100 } else { n };
            }
            "_offset" => offset = parse_count("offset", v)?,
            "format" => {
                if v != "json" {
                    return bad(format!("Unsupported format '{v}'."));
                }
                carry.push((k.clone(), v.clone()));
            }
            "order_by" => {
                let (desc, f) = match v.strip_prefix('-') {
                    Some(f) => (true, f),
                    None => (false, v.as_str()),
                };
                if resources::field_kind(res, f).is_none() && f != "resource_uri" {
                    return bad(format!("No matching '{f}' field for ordering on."));
                }
                if !resources::ordering(res).contains(&f) {
                    return bad(format!("The '{f}' field does not allow ordering."));
                }
                order.push((f.to_string(), desc));
                carry.push((k.clone(), v.clone()));
            }
            _ => {
                match filters.iter_mut().find(|(fk, _)| fk == k) {
                    Some((_, vs)) => vs.push(v.clone()),
                    None => filters.push((k.clone(), vec![v.clone()])),
                }
                carry.push((k.clone(), v.clone()));
            }
        }
    }
    let table = resources::filtering(res, mode);
    let mut conds = Vec::new();
    for (key, values) in filters {
        conds.push(compile(res, &table, &key, &values)?);
    }
    Ok(ListQuery {
        limit,
        offset,
        conds,
        order,
        carry,
    })
}

fn spec_allows(spec: FilterSpec, op: &str) -> bool {
    match spec {
        FilterSpec::All | FilterSpec::AllWithRelations => true,
        FilterSpec::Ops(ops) => ops.contains(&op),
    }
}

fn compile(
    res: Resource,
    table: &[(&'static str, FilterSpec)],
    key: &str,
    values: &[String],
) -> Result<Condition, BadRequest> {
    let mut parts: Vec<&str> = key.split("__").collect();
    let op: &'static str = match parts.last().and_then(|l| LOOKUPS.iter().find(|o| *o == l)) {
        Some(op) if parts.len() > 1 => {
            parts.pop();
            op
        }
        _ => "exact",
    };
    let lookup = |name: &str| table.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    let (target, kind) = match parts.as_slice() {
        [field] => {
            let Some(spec) = lookup(field) else {
                return bad(format!("The '{field}' field does not allow filtering."));
            };
            if !spec_allows(spec, op) {
                return bad(format!(
                    "'{op}' is not an allowed filter on the '{field}' field."
                ));
            }
            let Some(kind) = resources::field_kind(res, field) else {
                return bad(format!("The '{field}' field does not allow filtering."));
            };
            (res, kind)
        }
        [rel, field] => {
            let joined = format!("{rel}__{field}");
            let Some(FieldKind::Rel(to)) = resources::field_kind(res, rel) else {
                return bad(format!("The '{rel}' field does not allow filtering."));
            };
            if let Some(spec) = lookup(&joined) {
                if !spec_allows(spec, op) {
                    return bad(format!(
                        "'{op}' is not an allowed filter on the '{joined}' field."
                    ));
                }
            } else {
                match lookup(rel) {
                    Some(FilterSpec::AllWithRelations) => {}
                    Some(_) => {
                        return bad(format!(
                            "Lookups are not allowed more than one level deep on the '{rel}' field."
                        ))
                    }
                    None => return bad(format!("The '{rel}' field does not allow filtering.")),
                }
            }
            let Some(kind) = resources::field_kind(to, field) else {
                return bad(format!(
                    "No matching '{field}' field on the '{rel}' resource."
                ));
            };
            if matches!(kind, FieldKind::Rel(_) | FieldKind::Other(_)) {
                return bad(format!(
                    "Lookups are not allowed more than one level deep on the '{field}' field."
                ));
            }
            (to, kind)
        }
        _ => {
            return bad(format!(
                "Lookups are not allowed more than one level deep on the '{}' field.",
                parts.first().copied().unwrap_or("")
            ))
        }
    };
    if matches!(kind, FieldKind::Other(_)) {
        return bad(format!("The '{key}' field does not allow filtering."));
    }
    if matches!(op, "regex" | "iregex" | "search") {
        return bad(format!(
            "The '{op}' lookup is not supported by the sandbox."
        ));
    }
    // Values: `in`/`range` split on commas, repeated params merged; others: the last one.
    let raw: Vec<String> = if matches!(op, "in" | "range") {
        values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|s| s.to_string())
            .collect()
    } else {
        values.last().cloned().into_iter().collect()
    };
    if op == "range" && raw.len() != 2 {
        return bad(format!(
            "'range' on '{key}' needs two comma-separated values."
        ));
    }
    let mut lits = Vec::with_capacity(raw.len());
    for r in &raw {
        lits.push(
            literal(kind, op, r).ok_or_else(|| {
                BadRequest(format!("Invalid value '{r}' for the '{key}' filter."))
            })?,
        );
    }
    Ok(Condition {
        path: parts.iter().map(|s| s.to_string()).collect(),
        target,
        op,
        lits,
    })
}

fn literal(kind: FieldKind, op: &str, raw: &str) -> Option<Literal> {
    if op == "isnull" {
        return match raw {
            "true" | "True" | "1" => Some(Literal::Bool(true)),
            "false" | "False" | "0" => Some(Literal::Bool(false)),
            _ => None,
        };
    }
    if matches!(raw, "none" | "None" | "nil") {
        return Some(Literal::Null);
    }
    if matches!(op, "year" | "month" | "day" | "week_day") {
        return raw.trim().parse().ok().map(Literal::Int);
    }
    if matches!(
        op,
        "contains"
            | "icontains"
            | "startswith"
            | "istartswith"
            | "endswith"
            | "iendswith"
            | "iexact"
    ) {
        return Some(Literal::Str(raw.to_string()));
    }
    match kind {
        FieldKind::Int => raw.trim().parse().ok().map(Literal::Int),
        FieldKind::Rel(_) => {
            let t = raw.trim().trim_end_matches('/');
            let last = t.rsplit('/').next().unwrap_or(t);
            last.parse().ok().map(Literal::Int)
        }
        FieldKind::Bool => match raw {
            "true" | "True" | "1" => Some(Literal::Bool(true)),
            "false" | "False" | "0" => Some(Literal::Bool(false)),
            _ => None,
        },
        FieldKind::Time => parse_time(raw).map(Literal::Time),
        FieldKind::Str | FieldKind::Other(_) => Some(Literal::Str(raw.to_string())),
    }
}

fn val_str(v: &FieldValue) -> String {
    match v {
        FieldValue::Null => String::new(),
        FieldValue::Int(i) | FieldValue::Time(i) => i.to_string(),
        FieldValue::Str(s) => s.to_string(),
        FieldValue::Bool(b) => b.to_string(),
    }
}

fn cmp_lit(v: &FieldValue, l: &Literal) -> Option<Ordering> {
    match (v, l) {
        (FieldValue::Int(a), Literal::Int(b)) | (FieldValue::Time(a), Literal::Time(b)) => {
            Some(a.cmp(b))
        }
        (FieldValue::Str(a), Literal::Str(b)) => Some(a.as_ref().cmp(b.as_str())),
        (FieldValue::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (FieldValue::Null, Literal::Null) => Some(Ordering::Equal),
        _ => None,
    }
}

fn civil(t: i64) -> (i64, i64, i64, i64) {
    let days = t.div_euclid(86_400_000_000);
    let s = super::store::fmt_secs(days * 86_400);
    let y = s[0..4].parse().unwrap_or(0);
    let m = s[5..7].parse().unwrap_or(0);
    let d = s[8..10].parse().unwrap_or(0);
    // Django week_day: 1 = Sunday .. 7 = Saturday; 1970-01-01 was a Thursday (5).
    let wd = (days + 4).rem_euclid(7) + 1;
    (y, m, d, wd)
}

fn apply(v: &FieldValue, op: &str, lits: &[Literal]) -> bool {
    let first = lits.first();
    let lower = |s: &str| s.to_lowercase();
    match op {
        "exact" => first.is_some_and(|l| cmp_lit(v, l) == Some(Ordering::Equal)),
        "in" => lits.iter().any(|l| cmp_lit(v, l) == Some(Ordering::Equal)),
        "isnull" => matches!(first, Some(Literal::Bool(b)) if *b == matches!(v, FieldValue::Null)),
        "gt" | "gte" | "lt" | "lte" => {
            first.and_then(|l| cmp_lit(v, l)).is_some_and(|o| match op {
                "gt" => o == Ordering::Greater,
                "gte" => o != Ordering::Less,
                "lt" => o == Ordering::Less,
                _ => o != Ordering::Greater,
            })
        }
        "range" => match (lits.first(), lits.get(1)) {
            (Some(a), Some(b)) => {
                cmp_lit(v, a).is_some_and(|o| o != Ordering::Less)
                    && cmp_lit(v, b).is_some_and(|o| o != Ordering::Greater)
            }
            _ => false,
        },
        "year" | "month" | "day" | "week_day" => match (v, first) {
            (FieldValue::Time(t), Some(Literal::Int(n))) => {
                let (y, m, d, wd) = civil(*t);
                *n == match op {
                    "year" => y,
                    "month" => m,
                    "day" => d,
                    _ => wd,
                }
            }
            _ => false,
        },
        _ => {
            if matches!(v, FieldValue::Null) {
                return false;
            }
            let Some(Literal::Str(pat)) = first else {
                return false;
            };
            let hay = val_str(v);
            match op {
                "iexact" => lower(&hay) == lower(pat),
                "contains" => hay.contains(pat.as_str()),
                "icontains" => lower(&hay).contains(&lower(pat)),
                "startswith" => hay.starts_with(pat.as_str()),
                "istartswith" => lower(&hay).starts_with(&lower(pat)),
                "endswith" => hay.ends_with(pat.as_str()),
                "iendswith" => lower(&hay).ends_with(&lower(pat)),
                _ => false,
            }
        }
    }
}

fn matches(st: &Store, res: Resource, id: u32, c: &Condition) -> bool {
    let Some(first) = c.path.first() else {
        return false;
    };
    let Some(v) = resources::value(st, res, id, first) else {
        return false;
    };
    let v = if let Some(sub) = c.path.get(1) {
        match v {
            FieldValue::Int(rid) if rid > 0 && rid <= u32::MAX as i64 => {
                let rid = rid as u32;
                if !resources::exists(st, c.target, rid) {
                    return false;
                }
                match resources::value(st, c.target, rid, sub) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => FieldValue::Null,
        }
    } else {
        v
    };
    apply(&v, c.op, &c.lits)
}

fn ids_of(c: &Condition) -> Option<Vec<u32>> {
    if c.path.len() != 1 || !matches!(c.op, "exact" | "in") {
        return None;
    }
    Some(
        c.lits
            .iter()
            .filter_map(|l| match l {
                Literal::Int(i) if *i > 0 && *i <= u32::MAX as i64 => Some(*i as u32),
                _ => None,
            })
            .collect(),
    )
}

/// The actions of `owners` (users or pages, by id) through `index` (the store's
/// `user_actions` or `page_actions`: the ids of each owner's actions, by owner id − 1).
fn actions_of(index: &[Vec<u32>], owners: impl IntoIterator<Item = u32>) -> Vec<u32> {
    owners
        .into_iter()
        .filter_map(|o| index.get((o as usize).wrapping_sub(1)))
        .flatten()
        .copied()
        .collect()
}

/// The ids matching the filters, before ordering (ascending id).
fn candidates(st: &Store, res: Resource, conds: &[Condition]) -> Vec<u32> {
    let by = |name: &str| {
        conds
            .iter()
            .find(|c| c.path.len() == 1 && c.path[0] == name)
    };
    // An exact `rel__field=<string>` condition's value.
    let by_rel = |rel: &str, field: &str| {
        conds
            .iter()
            .find(|c| {
                c.path.len() == 2 && c.path[0] == rel && c.path[1] == field && c.op == "exact"
            })
            .and_then(|c| match c.lits.first() {
                Some(Literal::Str(s)) => Some(s.clone()),
                _ => None,
            })
    };
    let mut ids: Option<Vec<u32>> = None;
    if let Some(ids_) = by("id").and_then(ids_of) {
        ids = Some(ids_);
    } else if matches!(res, Resource::Action(_) | Resource::Order) {
        if let Some(users) = by("user").and_then(ids_of) {
            ids = Some(actions_of(&st.user_actions, users));
        } else if let Some(u) = by_rel("user", "email") {
            // `user__email=<addr>`: through the email index.
            ids = Some(actions_of(&st.user_actions, st.user_by_email(&u)));
        } else if let Some(p) = by_rel("page", "name") {
            // `page__name=<name>`: through the page-name index.
            ids = Some(actions_of(&st.page_actions, st.page_by_name(&p)));
        } else if let Some(pages) = by("page").and_then(ids_of) {
            ids = Some(actions_of(&st.page_actions, pages));
        }
    } else if res == Resource::User {
        if let Some(c) = by("email").filter(|c| c.op == "exact") {
            if let Some(Literal::Str(e)) = c.lits.first() {
                ids = Some(st.user_by_email(e).into_iter().collect());
            }
        }
    }
    let mut ids = match ids {
        Some(mut v) => {
            v.sort_unstable();
            v.dedup();
            v.retain(|i| resources::exists(st, res, *i));
            v
        }
        None => resources::all_ids(st, res),
    };
    ids.retain(|id| conds.iter().all(|c| matches(st, res, *id, c)));
    ids
}

fn cmp_val(a: &Option<FieldValue>, b: &Option<FieldValue>) -> Ordering {
    fn rank(v: &Option<FieldValue>) -> u8 {
        match v {
            None | Some(FieldValue::Null) => 0,
            _ => 1,
        }
    }
    match (a, b) {
        (Some(FieldValue::Int(x)), Some(FieldValue::Int(y)))
        | (Some(FieldValue::Time(x)), Some(FieldValue::Time(y))) => x.cmp(y),
        (Some(FieldValue::Str(x)), Some(FieldValue::Str(y))) => x.cmp(y),
        (Some(FieldValue::Bool(x)), Some(FieldValue::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Runs a list query; returns the page of ids and the total count.
pub fn run(st: &Store, res: Resource, q: &ListQuery) -> (Vec<u32>, usize) {
    let mut ids = candidates(st, res, &q.conds);
    if !q.order.is_empty() {
        ids.sort_by(|a, b| {
            for (f, desc) in &q.order {
                let o = cmp_val(
                    &resources::value(st, res, *a, f),
                    &resources::value(st, res, *b, f),
                );
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.cmp(b)
        });
    }
    let total = ids.len();
    let page = ids.into_iter().skip(q.offset).take(q.limit).collect();
    (page, total)
}

fn link(res: Resource, offset: usize, limit: usize, carry: &[(String, String)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("_offset", &offset.to_string());
    ser.append_pair("_limit", &limit.to_string());
    for (k, v) in carry {
        ser.append_pair(k, v);
    }
    format!("/rest/v1/{}/?{}", res.name(), ser.finish())
}

/// `{"meta": ..., "objects": [...]}`.
pub fn envelope(res: Resource, q: &ListQuery, total: usize, objects: Vec<Value>) -> Value {
    let next = if q.offset + q.limit < total {
        json!(link(res, q.offset + q.limit, q.limit, &q.carry))
    } else {
        Value::Null
    };
    let previous = if q.offset > 0 {
        json!(link(
            res,
            q.offset.saturating_sub(q.limit),
            q.limit,
            &q.carry
        ))
    } else {
        Value::Null
    };
    json!({
        "meta": {"limit": q.limit, "next": next, "offset": q.offset, "previous": previous, "total_count": total},
        "objects": objects,
    })
}
