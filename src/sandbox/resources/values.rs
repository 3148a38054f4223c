//! The value of one field of one object, for filters and ordering; which objects exist.

use super::Res;
use crate::sandbox::store::*;

/// A value of a field of one object, for filtering and ordering.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Null,
    Int(i64),
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    /// Microseconds.
    Time(i64),
}

fn s<'a>(x: &'a str) -> Val<'a> {
    Val::Str(std::borrow::Cow::Borrowed(x))
}

fn opt_int(x: Option<u32>) -> Val<'static> {
    x.map(|v| Val::Int(v as i64)).unwrap_or(Val::Null)
}

/// Does an object with this id exist in this resource?
pub fn exists(st: &Store, res: Res, id: u32) -> bool {
    match res {
        Res::User => st.user(id).is_some(),
        Res::Action(t) => st
            .action(id)
            .is_some_and(|a| t.is_none_or(|t| st.action_type(a) == t)),
        Res::Page(t) => st.page(id).is_some_and(|p| t.is_none_or(|t| p.ptype == t)),
        Res::ActionField => st.actionfield(id).is_some(),
        Res::Tag => id >= 1 && (id as usize) <= st.tags.len(),
        Res::Language => LANGUAGES.iter().any(|l| l.id == id),
        Res::Phone => id >= 1 && (id as usize) <= st.phones.len(),
        Res::AllowedUserField => id >= 1 && (id as usize) <= st.allowed_user_fields.len(),
        Res::Order => st
            .action(id)
            .is_some_and(|a| st.action_type(a) == PageType::Donation),
    }
}

/// All ids of a resource, ascending.
pub fn all_ids(st: &Store, res: Res) -> Vec<u32> {
    let n = match res {
        Res::User => st.users.len(),
        Res::Action(_) | Res::Order => st.actions.len(),
        Res::Page(_) => st.pages.len(),
        Res::ActionField => st.actionfields.len(),
        Res::Tag => st.tags.len(),
        Res::Language => return LANGUAGES.iter().map(|l| l.id).collect(),
        Res::Phone => st.phones.len(),
        Res::AllowedUserField => st.allowed_user_fields.len(),
    } as u32;
    match res {
        Res::Action(None) => (1..=n).filter(|i| st.action(*i).is_some()).collect(),
        Res::Action(Some(_)) | Res::Order | Res::ActionField | Res::Page(Some(_)) => {
            (1..=n).filter(|i| exists(st, res, *i)).collect()
        }
        _ => (1..=n).collect(),
    }
}

/// The value of `field` on object `id` (assumed to exist); `None` if no such field.
pub fn value<'a>(st: &'a Store, res: Res, id: u32, field: &str) -> Option<Val<'a>> {
    if field == "id" && res != Res::AllowedUserField {
        return Some(Val::Int(id as i64));
    }
    Some(match res {
        Res::User => {
            let u = st.user(id)?;
            match field {
                "email" => s(&u.email),
                "created_at" => Val::Time(u.created_at * 1_000_000),
                "updated_at" => Val::Time(u.updated_at * 1_000_000),
                "rand_id" => Val::Int(u.rand_id as i64),
                "lang" | "language" => opt_int(u.lang),
                f => s(st.sym(u.s[user_str_index(f)?])),
            }
        }
        Res::Action(_) | Res::Order => {
            let a = st.action(id)?;
            match field {
                "user" => Val::Int(a.user as i64),
                "page" => Val::Int(a.page as i64),
                "action" => Val::Int(id as i64),
                "created_at" => Val::Time(a.created_at),
                "updated_at" => Val::Time(a.updated_at),
                "status" if res == Res::Order => s("completed"),
                "status" => s(st.sym(a.status)),
                "source" => s(st.sym(a.source)),
                "type" => s(st.action_type(a).name()),
                "ip_address" => a
                    .ip_address
                    .render(st)
                    .map(|x| Val::Str(x.into()))
                    .unwrap_or(Val::Null),
                "mailing" => opt_int(a.mailing),
                "referring_user" => opt_int(a.referring_user),
                "taf_emails_sent" => opt_int(a.taf_emails_sent),
                "is_forwarded" => Val::Bool(a.flags & FLAG_IS_FORWARDED != 0),
                "created_user" => Val::Bool(a.flags & FLAG_CREATED_USER != 0),
                "subscribed_user" => Val::Bool(a.flags & FLAG_SUBSCRIBED_USER != 0),
                "total" => Val::Str(money(a.amount_cents).into()),
                "currency" => s("USD"),
                _ => return None,
            }
        }
        Res::Page(_) => {
            let p = st.page(id)?;
            match field {
                "name" => s(&p.name),
                "title" => s(&p.title),
                "type" => s(p.ptype.name()),
                "hidden" => Val::Bool(p.hidden),
                "status" => s(st.sym(p.status)),
                "url" => s(&p.url),
                "goal" => opt_int(p.goal),
                "goal_type" => s(st.sym(p.goal_type)),
                "recognize" => s(st.sym(p.recognize)),
                "allow_multiple_responses" => Val::Bool(p.allow_multiple_responses),
                "created_at" => Val::Time(p.created_at * 1_000_000),
                "updated_at" => Val::Time(p.updated_at * 1_000_000),
                "language" => opt_int(p.lang),
                _ => return None,
            }
        }
        Res::ActionField => {
            let f = st.actionfield(id)?;
            match field {
                "parent" => Val::Int(f.parent as i64),
                "name" => s(st.sym(f.name)),
                "value" => s(st.sym(f.value)),
                _ => return None,
            }
        }
        Res::Tag => match field {
            "name" => s(&st.tags.get((id as usize).wrapping_sub(1))?.name),
            _ => return None,
        },
        Res::Language => {
            let l = LANGUAGES.iter().find(|l| l.id == id)?;
            match field {
                "iso_code" => s(l.iso_code),
                "name" => s(l.name),
                "hidden" => Val::Bool(false),
                _ => return None,
            }
        }
        Res::Phone => {
            let p = st.phones.get((id as usize).wrapping_sub(1))?;
            match field {
                "user" => Val::Int(p.user as i64),
                "phone" | "normalized_phone" => s(&p.phone),
                "type" => s(st.sym(p.kind)),
                "source" => s(st.sym(p.source)),
                "created_at" => Val::Time(p.created_at * 1_000_000),
                _ => return None,
            }
        }
        Res::AllowedUserField => {
            let f = st.allowed_user_fields.get((id as usize).wrapping_sub(1))?;
            match field {
                "name" => s(f.name),
                "display_name" => s(f.display_name),
                "field_type" => s(f.field_type),
                "allow_multiple" => Val::Bool(f.allow_multiple),
                _ => return None,
            }
        }
    })
}

pub fn money(cents: u32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}
