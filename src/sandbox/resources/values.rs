//! The value of one field of one object, for filters and ordering; which objects exist.

use super::Resource;
use crate::sandbox::store::*;

/// A value of a field of one object, for filtering and ordering.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Int(i64),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    /// Microseconds.
    Time(i64),
}

fn s<'a>(x: &'a str) -> FieldValue<'a> {
    FieldValue::Str(std::borrow::Cow::Borrowed(x))
}

fn opt_int(x: Option<u32>) -> FieldValue<'static> {
    x.map(|v| FieldValue::Int(v as i64))
        .unwrap_or(FieldValue::Null)
}

/// Does an object with this id exist in this resource?
pub fn exists(st: &Store, res: Resource, id: u32) -> bool {
    match res {
        Resource::User => st.user(id).is_some(),
        Resource::Action(t) => st
            .action(id)
            .is_some_and(|a| t.is_none_or(|t| st.action_type(a) == t)),
        Resource::Page(t) => st.page(id).is_some_and(|p| t.is_none_or(|t| p.ptype == t)),
        Resource::ActionField => st.actionfield(id).is_some(),
        Resource::Tag => id >= 1 && (id as usize) <= st.tags.len(),
        Resource::Language => LANGUAGES.iter().any(|l| l.id == id),
        Resource::Phone => id >= 1 && (id as usize) <= st.phones.len(),
        Resource::AllowedUserField => id >= 1 && (id as usize) <= st.allowed_user_fields.len(),
        Resource::Order => st
            .action(id)
            .is_some_and(|a| st.action_type(a) == PageType::Donation),
    }
}

/// All ids of a resource, ascending.
pub fn all_ids(st: &Store, res: Resource) -> Vec<u32> {
    let n = match res {
        Resource::User => st.users.len(),
        Resource::Action(_) | Resource::Order => st.actions.len(),
        Resource::Page(_) => st.pages.len(),
        Resource::ActionField => st.actionfields.len(),
        Resource::Tag => st.tags.len(),
        Resource::Language => return LANGUAGES.iter().map(|l| l.id).collect(),
        Resource::Phone => st.phones.len(),
        Resource::AllowedUserField => st.allowed_user_fields.len(),
    } as u32;
    match res {
        Resource::Action(None) => (1..=n).filter(|i| st.action(*i).is_some()).collect(),
        Resource::Action(Some(_))
        | Resource::Order
        | Resource::ActionField
        | Resource::Page(Some(_)) => (1..=n).filter(|i| exists(st, res, *i)).collect(),
        _ => (1..=n).collect(),
    }
}

/// The value of `field` on object `id` (assumed to exist); `None` if no such field.
pub fn value<'a>(st: &'a Store, res: Resource, id: u32, field: &str) -> Option<FieldValue<'a>> {
    if field == "id" && res != Resource::AllowedUserField {
        return Some(FieldValue::Int(id as i64));
    }
    Some(match res {
        Resource::User => {
            let u = st.user(id)?;
            match field {
                "email" => s(&u.email),
                "created_at" => FieldValue::Time(u.created_at * 1_000_000),
                "updated_at" => FieldValue::Time(u.updated_at * 1_000_000),
                "rand_id" => FieldValue::Int(u.rand_id as i64),
                "lang" | "language" => opt_int(u.lang),
                f => s(st.sym(u.s[user_str_index(f)?])),
            }
        }
        Resource::Action(_) | Resource::Order => {
            let a = st.action(id)?;
            match field {
                "user" => FieldValue::Int(a.user as i64),
                "page" => FieldValue::Int(a.page as i64),
                "action" => FieldValue::Int(id as i64),
                "created_at" => FieldValue::Time(a.created_at),
                "updated_at" => FieldValue::Time(a.updated_at),
                "status" if res == Resource::Order => s("completed"),
                "status" => s(st.sym(a.status)),
                "source" => s(st.sym(a.source)),
                "type" => s(st.action_type(a).name()),
                "ip_address" => a
                    .ip_address
                    .render(st)
                    .map(|x| FieldValue::Str(x.into()))
                    .unwrap_or(FieldValue::Null),
                "mailing" => opt_int(a.mailing),
                "referring_user" => opt_int(a.referring_user),
                "taf_emails_sent" => opt_int(a.taf_emails_sent),
                "is_forwarded" => FieldValue::Bool(a.flags & FLAG_IS_FORWARDED != 0),
                "created_user" => FieldValue::Bool(a.flags & FLAG_CREATED_USER != 0),
                "subscribed_user" => FieldValue::Bool(a.flags & FLAG_SUBSCRIBED_USER != 0),
                "total" => FieldValue::Str(money(a.amount_cents).into()),
                "currency" => s("USD"),
                _ => return None,
            }
        }
        Resource::Page(_) => {
            let p = st.page(id)?;
            match field {
                "name" => s(&p.name),
                "title" => s(&p.title),
                "type" => s(p.ptype.name()),
                "hidden" => FieldValue::Bool(p.hidden),
                "status" => s(st.sym(p.status)),
                "url" => s(&p.url),
                "goal" => opt_int(p.goal),
                "goal_type" => s(st.sym(p.goal_type)),
                "recognize" => s(st.sym(p.recognize)),
                "allow_multiple_responses" => FieldValue::Bool(p.allow_multiple_responses),
                "created_at" => FieldValue::Time(p.created_at * 1_000_000),
                "updated_at" => FieldValue::Time(p.updated_at * 1_000_000),
                "language" => opt_int(p.lang),
                _ => return None,
            }
        }
        Resource::ActionField => {
            let f = st.actionfield(id)?;
            match field {
                "parent" => FieldValue::Int(f.parent as i64),
                "name" => s(st.sym(f.name)),
                "value" => s(st.sym(f.value)),
                _ => return None,
            }
        }
        Resource::Tag => match field {
            "name" => s(&st.tags.get((id as usize).wrapping_sub(1))?.name),
            _ => return None,
        },
        Resource::Language => {
            let l = LANGUAGES.iter().find(|l| l.id == id)?;
            match field {
                "iso_code" => s(l.iso_code),
                "name" => s(l.name),
                "hidden" => FieldValue::Bool(false),
                _ => return None,
            }
        }
        Resource::Phone => {
            let p = st.phones.get((id as usize).wrapping_sub(1))?;
            match field {
                "user" => FieldValue::Int(p.user as i64),
                "phone" | "normalized_phone" => s(&p.phone),
                "type" => s(st.sym(p.kind)),
                "source" => s(st.sym(p.source)),
                "created_at" => FieldValue::Time(p.created_at * 1_000_000),
                _ => return None,
            }
        }
        Resource::AllowedUserField => {
            let f = st.allowed_user_fields.get((id as usize).wrapping_sub(1))?;
            match field {
                "name" => s(f.name),
                "display_name" => s(f.display_name),
                "field_type" => s(f.field_type),
                "allow_multiple" => FieldValue::Bool(f.allow_multiple),
                _ => return None,
            }
        }
    })
}

pub fn money(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
