//! Resource names, their fields, filter/ordering tables, and JSON representations.

use serde_json::{json, Map, Value};

use super::store::*;
use super::FilterMode;

/// A resource the sandbox serves. `None` type = the generic resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Res {
    User,
    Action(Option<PageType>),
    Page(Option<PageType>),
    ActionField,
    Tag,
    Language,
    Phone,
    AllowedUserField,
    Order,
}

impl Res {
    pub fn parse(name: &str) -> Option<Res> {
        Some(match name {
            "user" => Res::User,
            "action" => Res::Action(None),
            "page" => Res::Page(None),
            "actionfield" => Res::ActionField,
            "tag" => Res::Tag,
            "language" => Res::Language,
            "phone" => Res::Phone,
            "alloweduserfield" => Res::AllowedUserField,
            "order" => Res::Order,
            _ => {
                if let Some(t) = name.strip_suffix("action").and_then(PageType::from_slug) {
                    Res::Action(Some(t))
                } else if let Some(t) = name.strip_suffix("page").and_then(PageType::from_slug) {
                    Res::Page(Some(t))
                } else {
                    return None;
                }
            }
        })
    }

    pub fn name(self) -> String {
        match self {
            Res::User => "user".into(),
            Res::Action(None) => "action".into(),
            Res::Action(Some(t)) => format!("{}action", t.slug()),
            Res::Page(None) => "page".into(),
            Res::Page(Some(t)) => format!("{}page", t.slug()),
            Res::ActionField => "actionfield".into(),
            Res::Tag => "tag".into(),
            Res::Language => "language".into(),
            Res::Phone => "phone".into(),
            Res::AllowedUserField => "alloweduserfield".into(),
            Res::Order => "order".into(),
        }
    }

    /// Every resource, in the root listing's order.
    pub fn all() -> Vec<Res> {
        let mut v = vec![
            Res::User,
            Res::Action(None),
            Res::Page(None),
            Res::ActionField,
        ];
        v.extend(PageType::ALL.iter().map(|t| Res::Action(Some(*t))));
        v.extend(PageType::ALL.iter().map(|t| Res::Page(Some(*t))));
        v.extend([
            Res::Tag,
            Res::Language,
            Res::Phone,
            Res::AllowedUserField,
            Res::Order,
        ]);
        v
    }

    pub fn list_methods(self) -> &'static [&'static str] {
        match self {
            Res::User => &["get", "post"],
            Res::Action(None) => &["get", "post"],
            Res::Action(Some(_)) => &["get"],
            Res::Page(None) => &["get"],
            Res::Page(Some(_)) => &["get", "post"],
            Res::ActionField => &["get", "post"],
            _ => &["get"],
        }
    }

    pub fn detail_methods(self) -> &'static [&'static str] {
        match self {
            Res::User => &["get", "put", "patch"],
            Res::Action(_) => &["get", "put", "patch", "delete"],
            Res::Page(None) => &["get"],
            Res::Page(Some(_)) => &["get", "put", "patch"],
            Res::ActionField => &["get", "put", "patch", "delete"],
            _ => &["get"],
        }
    }
}

/// The type of a field, for filter values and the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Str,
    Bool,
    Time,
    Rel(Res),
    /// Shown in the schema, not filterable.
    Other(&'static str),
}

impl Kind {
    fn schema_type(self) -> &'static str {
        match self {
            Kind::Int => "integer",
            Kind::Str => "string",
            Kind::Bool => "boolean",
            Kind::Time => "datetime",
            Kind::Rel(_) => "related",
            Kind::Other(t) => t,
        }
    }
}

/// The fields of a resource with their kinds (schema `fields`, filter targets).
pub fn fields(res: Res) -> Vec<(&'static str, Kind)> {
    use Kind::*;
    let mut v: Vec<(&'static str, Kind)> = match res {
        Res::User => {
            let mut v = vec![
                ("id", Int),
                ("email", Str),
                ("created_at", Time),
                ("updated_at", Time),
                ("rand_id", Int),
                ("token", Str),
                ("lang", Rel(Res::Language)),
                ("language", Rel(Res::Language)),
                ("fields", Other("dict")),
                ("phones", Other("list")),
                ("actions", Other("string")),
            ];
            v.extend(USER_STR_FIELDS.iter().map(|f| (*f, Str)));
            v
        }
        Res::Action(t) => {
            let mut v = vec![
                ("id", Int),
                ("user", Rel(Res::User)),
                ("page", Rel(Res::Page(None))),
                ("created_at", Time),
                ("updated_at", Time),
                ("status", Str),
                ("source", Str),
                ("type", Str),
                ("ip_address", Str),
                ("mailing", Int),
                ("referring_user", Rel(Res::User)),
                ("referring_mailing", Int),
                ("link", Int),
                ("opq_id", Str),
                ("akid", Str),
                ("is_forwarded", Bool),
                ("created_user", Bool),
                ("subscribed_user", Bool),
                ("taf_emails_sent", Int),
                ("fields", Other("dict")),
            ];
            match t {
                Some(PageType::Donation) => v.push(("order", Rel(Res::Order))),
                Some(PageType::EventCreate) => v.push(("event", Other("related"))),
                Some(PageType::EventSignup) => v.push(("signup", Other("related"))),
                _ => {}
            }
            v
        }
        Res::Page(_) => vec![
            ("id", Int),
            ("name", Str),
            ("title", Str),
            ("type", Str),
            ("hidden", Bool),
            ("status", Str),
            ("url", Str),
            ("goal", Int),
            ("goal_type", Str),
            ("recognize", Str),
            ("allow_multiple_responses", Bool),
            ("created_at", Time),
            ("updated_at", Time),
            ("language", Rel(Res::Language)),
            ("list", Other("related")),
            ("tags", Other("related")),
            ("fields", Other("dict")),
        ],
        Res::ActionField => vec![
            ("id", Int),
            ("parent", Rel(Res::Action(None))),
            ("name", Str),
            ("value", Str),
        ],
        Res::Tag => vec![("id", Int), ("name", Str)],
        Res::Language => vec![
            ("id", Int),
            ("iso_code", Str),
            ("name", Str),
            ("hidden", Bool),
        ],
        Res::Phone => vec![
            ("id", Int),
            ("user", Rel(Res::User)),
            ("phone", Str),
            ("normalized_phone", Str),
            ("type", Str),
            ("source", Str),
            ("created_at", Time),
        ],
        Res::AllowedUserField => vec![
            ("name", Str),
            ("display_name", Str),
            ("field_type", Str),
            ("allow_multiple", Bool),
        ],
        Res::Order => vec![
            ("id", Int),
            ("user", Rel(Res::User)),
            ("action", Rel(Res::Action(None))),
            ("status", Str),
            ("total", Str),
            ("currency", Str),
            ("created_at", Time),
        ],
    };
    v.sort_by_key(|(n, _)| *n);
    v
}

pub fn field_kind(res: Res, name: &str) -> Option<Kind> {
    fields(res)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k)
}

/// A `filtering` entry, rendered as ActionKit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    All,
    AllWithRelations,
    Ops(&'static [&'static str]),
}

impl Spec {
    pub fn to_json(self) -> Value {
        match self {
            Spec::All => json!("all"),
            Spec::AllWithRelations => json!("all with relations"),
            Spec::Ops(ops) => json!(ops),
        }
    }
}

const EXACT: &[&str] = &["exact"];
const EXACT_IN: &[&str] = &["exact", "in"];
const ID_PERMISSIVE: &[&str] = &["exact", "in", "gt", "gte", "lt", "lte"];

/// The `filtering` table of a resource in a mode. A key `rel__field` (e.g. `page__name`)
/// allows that one traversal with the listed operators, for instances that allow a
/// traversal without `"all with relations"` on the relation.
pub fn filtering(res: Res, mode: FilterMode) -> Vec<(&'static str, Spec)> {
    let permissive = mode == FilterMode::Permissive;
    let mut v: Vec<(&'static str, Spec)> = match res {
        Res::User => {
            let mut v = vec![
                ("country", Spec::All),
                ("email", Spec::Ops(EXACT)),
                ("language", Spec::AllWithRelations),
                ("last_name", Spec::All),
                ("source", Spec::All),
                ("state", Spec::All),
                ("subscription_status", Spec::Ops(EXACT_IN)),
                ("zip", Spec::All),
            ];
            if permissive {
                v.push(("id", Spec::Ops(ID_PERMISSIVE)));
            }
            v
        }
        Res::Action(_) => {
            let mut v = vec![
                ("created_at", Spec::All),
                ("updated_at", Spec::All),
                ("status", Spec::All),
                ("source", Spec::All),
            ];
            if permissive {
                v.extend([
                    ("id", Spec::Ops(ID_PERMISSIVE)),
                    ("user", Spec::AllWithRelations),
                    ("page", Spec::AllWithRelations),
                ]);
            } else {
                v.extend([
                    ("id", Spec::Ops(EXACT)),
                    ("user", Spec::Ops(EXACT)),
                    ("page", Spec::Ops(EXACT)),
                    ("page__name", Spec::Ops(EXACT)),
                ]);
            }
            v
        }
        Res::Page(_) => vec![
            (
                "id",
                Spec::Ops(if permissive { ID_PERMISSIVE } else { EXACT }),
            ),
            ("name", Spec::All),
            ("title", Spec::All),
            ("type", Spec::All),
            ("hidden", Spec::All),
            ("status", Spec::All),
            ("created_at", Spec::All),
            ("updated_at", Spec::All),
        ],
        Res::ActionField => vec![
            ("id", Spec::Ops(EXACT_IN)),
            ("parent", Spec::Ops(EXACT_IN)),
            ("name", Spec::All),
        ],
        Res::Tag => vec![("id", Spec::Ops(EXACT_IN)), ("name", Spec::All)],
        Res::Language => vec![
            ("id", Spec::Ops(EXACT_IN)),
            ("iso_code", Spec::All),
            ("name", Spec::All),
        ],
        Res::Phone => vec![("user", Spec::Ops(EXACT_IN)), ("type", Spec::All)],
        Res::AllowedUserField => vec![("name", Spec::All)],
        Res::Order => vec![
            ("id", Spec::Ops(EXACT_IN)),
            ("user", Spec::AllWithRelations),
            ("status", Spec::All),
            ("created_at", Spec::All),
        ],
    };
    v.sort_by_key(|(n, _)| *n);
    v
}

/// Fields allowed in `order_by`.
pub fn ordering(res: Res) -> &'static [&'static str] {
    match res {
        Res::User => &["created_at", "email", "id", "last_name", "updated_at"],
        Res::Action(_) => &["created_at", "id", "page", "updated_at", "user"],
        Res::Page(_) => &["created_at", "id", "name", "title", "type", "updated_at"],
        Res::ActionField => &["id", "name"],
        Res::Tag => &["id", "name"],
        Res::Language => &["id", "name"],
        Res::Phone => &["id"],
        Res::AllowedUserField => &["name"],
        Res::Order => &["created_at", "id"],
    }
}

pub fn schema(res: Res, mode: FilterMode) -> Value {
    let mut f = Map::new();
    for (name, kind) in fields(res) {
        let readonly = matches!(name, "id" | "resource_uri" | "token" | "actions" | "type");
        f.insert(
            name.to_string(),
            json!({
                "blank": false,
                "default": "",
                "help_text": format!("{name} ({})", kind.schema_type()),
                "nullable": matches!(kind, Kind::Rel(_)) && name != "user" && name != "page" && name != "parent",
                "readonly": readonly,
                "type": kind.schema_type(),
                "unique": name == "id" || (res == Res::User && name == "email") || (matches!(res, Res::Page(_)) && name == "name"),
            }),
        );
    }
    f.insert(
        "resource_uri".into(),
        json!({"blank": false, "default": "", "help_text": "URI of this object", "nullable": false,
               "readonly": true, "type": "string", "unique": false}),
    );
    let filt: Map<String, Value> = filtering(res, mode)
        .into_iter()
        .map(|(k, s)| (k.to_string(), s.to_json()))
        .collect();
    json!({
        "allowed_detail_http_methods": res.detail_methods(),
        "allowed_list_http_methods": res.list_methods(),
        "default_format": "application/json",
        "default_limit": 20,
        "fields": f,
        "filtering": filt,
        "ordering": ordering(res),
    })
}

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

// ---- representations ------------------------------------------------------

fn uri(res: &str, id: impl std::fmt::Display) -> String {
    format!("/rest/v1/{res}/{id}/")
}

fn opt_uri(res: &str, id: Option<u32>) -> Value {
    id.map(|i| Value::String(uri(res, i)))
        .unwrap_or(Value::Null)
}

/// Custom fields as ActionKit renders them: one row -> string, several -> array (row order).
pub fn render_fields(st: &Store, rows: impl Iterator<Item = (Sym, Sym)>) -> Value {
    let mut m: Map<String, Value> = Map::new();
    for (n, v) in rows {
        let name = st.sym(n).to_string();
        let val = Value::String(st.sym(v).to_string());
        match m.get_mut(&name) {
            None => {
                m.insert(name, val);
            }
            Some(Value::Array(a)) => a.push(val),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, val]);
            }
        }
    }
    Value::Object(m)
}

/// Renders an object of `res` (which must exist).
pub fn render(st: &Store, res: Res, id: u32) -> Value {
    match res {
        Res::User => render_user(st, id),
        Res::Action(t) => render_action(st, id, t.is_some()),
        Res::Page(t) => render_page(st, id, t.is_some()),
        Res::ActionField => match st.actionfield(id) {
            Some(f) => {
                let ptype = st
                    .action(f.parent)
                    .map(|a| st.action_type(a))
                    .unwrap_or(PageType::Petition);
                json!({
                    "id": id,
                    "name": st.sym(f.name),
                    "parent": uri(&format!("{}action", ptype.slug()), f.parent),
                    "resource_uri": uri("actionfield", id),
                    "value": st.sym(f.value),
                })
            }
            None => Value::Null,
        },
        Res::Tag => match st.tags.get((id as usize).wrapping_sub(1)) {
            Some(t) => json!({"name": &*t.name, "resource_uri": uri("tag", id)}),
            None => Value::Null,
        },
        Res::Language => match LANGUAGES.iter().find(|l| l.id == id) {
            Some(l) => json!({
                "created_at": "2010-01-26T11:34:42",
                "hidden": false,
                "id": l.id,
                "iso_code": l.iso_code,
                "name": l.name,
                "ordering": 0,
                "resource_uri": uri("language", l.id),
                "translations": "{}",
                "updated_at": "2014-10-02T01:02:18",
            }),
            None => Value::Null,
        },
        Res::Phone => match st.phones.get((id as usize).wrapping_sub(1)) {
            Some(p) => json!({
                "created_at": fmt_secs(p.created_at),
                "id": id,
                "normalized_phone": &*p.phone,
                "phone": &*p.phone,
                "resource_uri": uri("phone", id),
                "source": st.sym(p.source),
                "type": st.sym(p.kind),
                "updated_at": fmt_secs(p.created_at),
                "user": uri("user", p.user),
            }),
            None => Value::Null,
        },
        Res::AllowedUserField => match st.allowed_user_fields.get((id as usize).wrapping_sub(1)) {
            Some(f) => json!({
                "allow_multiple": f.allow_multiple,
                "always_show": false,
                "choices": [],
                "created_at": fmt_secs(f.created_at),
                "description": "",
                "display_name": f.display_name,
                "field_choices": "",
                "field_default": "",
                "field_length": null,
                "field_regex": "",
                "field_type": f.field_type,
                "hidden": false,
                "name": f.name,
                "order_index": 0,
                "required": false,
                "resource_uri": uri("alloweduserfield", f.name),
                "updated_at": fmt_secs(f.created_at),
            }),
            None => Value::Null,
        },
        Res::Order => {
            let mut o = render_order(st, id);
            if let Value::Object(m) = &mut o {
                m.insert(
                    "reverse".into(),
                    json!(format!("/rest/v1/order/{id}/reverse/")),
                );
            }
            o
        }
    }
}

pub fn render_user(st: &Store, id: u32) -> Value {
    let Some(u) = st.user(id) else {
        return Value::Null;
    };
    let mut m = Map::new();
    for (i, f) in USER_STR_FIELDS.iter().enumerate() {
        m.insert((*f).into(), json!(st.sym(u.s[i])));
    }
    let list = |r: &str| json!(format!("/rest/v1/{r}/?user={id}"));
    m.insert("actions".into(), list("action"));
    m.insert("events".into(), list("event"));
    m.insert("eventsignups".into(), list("eventsignup"));
    m.insert("orderrecurrings".into(), list("orderrecurring"));
    m.insert("orders".into(), list("order"));
    m.insert("subscriptionhistory".into(), list("subscriptionhistory"));
    m.insert("subscriptions".into(), list("subscription"));
    m.insert("usergeofields".into(), list("usergeofield"));
    m.insert("usermailings".into(), list("usermailing"));
    m.insert("created_at".into(), json!(fmt_secs(u.created_at)));
    m.insert("updated_at".into(), json!(fmt_secs(u.updated_at)));
    m.insert("email".into(), json!(&*u.email));
    m.insert("fields".into(), render_fields(st, u.fields.iter().copied()));
    m.insert("id".into(), json!(id));
    m.insert("lang".into(), opt_uri("language", u.lang));
    m.insert("location".into(), json!(uri("location", id)));
    m.insert("useroriginal".into(), json!(uri("useroriginal", id)));
    m.insert(
        "phones".into(),
        Value::Array(u.phones.iter().map(|p| json!(uri("phone", p))).collect()),
    );
    m.insert("rand_id".into(), json!(u.rand_id));
    m.insert("resource_uri".into(), json!(uri("user", id)));
    m.insert("token".into(), json!(st.token(id)));
    Value::Object(m)
}

/// The limited view of `GET /rest/v1/userpublic/<akid>/` (fields UNCONFIRMED; chosen
/// to identify the person without contact details).
pub fn render_userpublic(st: &Store, id: u32, akid: &str) -> Value {
    let Some(u) = st.user(id) else {
        return Value::Null;
    };
    let g = |f: &str| user_str_index(f).map(|i| st.sym(u.s[i])).unwrap_or("");
    json!({
        "akid": akid,
        "city": g("city"),
        "country": g("country"),
        "first_name": g("first_name"),
        "id": id,
        "last_name": g("last_name"),
        "resource_uri": uri("userpublic", akid),
        "state": g("state"),
        "token": st.token(id),
        "zip": g("zip"),
    })
}

pub fn action_akid(st: &Store, a: &Action) -> String {
    let clear = match a.mailing {
        Some(m) => format!("{m}.{}", a.user),
        None => format!(".{}", a.user),
    };
    format!("{clear}.{}", akid_hash(&st.akid_secret, &clear))
}

/// An action; `typed` adds the type-specific extras (`order`, `event`, `signup`).
/// `resource_uri` and `page` are typed URIs in both cases.
pub fn render_action(st: &Store, id: u32, typed: bool) -> Value {
    let Some(a) = st.action(id) else {
        return Value::Null;
    };
    let t = st.action_type(a);
    let action_res = format!("{}action", t.slug());
    let page_res = format!("{}page", t.slug());
    let mut m = Map::new();
    m.insert("akid".into(), json!(action_akid(st, a)));
    m.insert("created_at".into(), json!(fmt_micros(a.created_at)));
    m.insert("updated_at".into(), json!(fmt_micros(a.updated_at)));
    m.insert(
        "created_user".into(),
        json!(a.flags & FLAG_CREATED_USER != 0),
    );
    m.insert(
        "subscribed_user".into(),
        json!(a.flags & FLAG_SUBSCRIBED_USER != 0),
    );
    m.insert(
        "is_forwarded".into(),
        json!(a.flags & FLAG_IS_FORWARDED != 0),
    );
    m.insert(
        "fields".into(),
        render_fields(
            st,
            a.fields
                .iter()
                .filter_map(|f| st.actionfield(*f).map(|r| (r.name, r.value))),
        ),
    );
    m.insert("id".into(), json!(id));
    m.insert(
        "ip_address".into(),
        a.ip_address
            .render(st)
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    m.insert("link".into(), Value::Null);
    m.insert("mailing".into(), opt_uri("mailing", a.mailing));
    m.insert("opq_id".into(), json!(""));
    m.insert("page".into(), json!(uri(&page_res, a.page)));
    m.insert("referring_mailing".into(), Value::Null);
    m.insert("referring_user".into(), opt_uri("user", a.referring_user));
    m.insert("resource_uri".into(), json!(uri(&action_res, id)));
    m.insert("source".into(), json!(st.sym(a.source)));
    m.insert("status".into(), json!(st.sym(a.status)));
    m.insert("taf_emails_sent".into(), json!(a.taf_emails_sent));
    m.insert("type".into(), json!(t.name()));
    m.insert("user".into(), json!(uri("user", a.user)));
    if typed {
        match t {
            PageType::Donation => {
                m.insert("order".into(), render_order(st, id));
            }
            PageType::EventCreate => {
                m.insert("event".into(), json!(uri("event", id)));
            }
            PageType::EventSignup => {
                m.insert("signup".into(), json!(uri("eventsignup", id)));
            }
            _ => {}
        }
    }
    Value::Object(m)
}

/// The order of a donation action, embedded as in a donationpush response. Order ids
/// equal their donation action's id.
pub fn render_order(st: &Store, id: u32) -> Value {
    let Some(a) = st.action(id) else {
        return Value::Null;
    };
    let total = money(a.amount_cents);
    json!({
        "account": "Default Import Stub",
        "action": uri("donationaction", id),
        "card_num_last_four": "1111",
        "created_at": fmt_micros(a.created_at),
        "currency": "USD",
        "id": id,
        "import_id": "",
        "orderdetails": [],
        "orderrecurrings": [],
        "payment_method": "cc",
        "resource_uri": uri("order", id),
        "shipping_address": null,
        "status": "completed",
        "total": total,
        "total_converted": total,
        "transactions": [uri("transaction", id)],
        "updated_at": fmt_micros(a.updated_at),
        "user": uri("user", a.user),
        "user_detail": uri("orderuserdetail", id),
    })
}

/// A page; `typed` adds the type-specific keys of the typed resource.
pub fn render_page(st: &Store, id: u32, typed: bool) -> Value {
    let Some(p) = st.page(id) else {
        return Value::Null;
    };
    let t = p.ptype;
    let page_uri = uri(&format!("{}page", t.slug()), id);
    let event = matches!(t, PageType::EventCreate | PageType::EventSignup);
    let mut m = Map::new();
    m.insert(
        "actions".into(),
        json!(format!("/rest/v1/{}action/?page={id}", t.slug())),
    );
    m.insert(
        "allow_multiple_responses".into(),
        json!(p.allow_multiple_responses),
    );
    if !event && p.cms_form {
        m.insert(
            "cms_form".into(),
            json!(uri(&format!("{}form", t.slug()), 1)),
        );
    }
    m.insert("created_at".into(), json!(fmt_secs(p.created_at)));
    m.insert("updated_at".into(), json!(fmt_secs(p.updated_at)));
    m.insert("fields".into(), render_fields(st, p.fields.iter().copied()));
    let followup = if event {
        Value::Null
    } else {
        json!({
            "email_body": "<p>Dear {{user.first_name}},</p>\r\n<p>Thank you!</p>",
            "email_custom_from": "",
            "email_from_line": "/rest/v1/fromline/1/",
            "email_subject": format!("Thanks: {}", p.title),
            "email_wrapper": "/rest/v1/emailwrapper/1/",
            "id": id,
            "notifications": [],
            "page": page_uri,
            "resource_uri": uri("pagefollowup", id),
            "send_email": true,
            "send_notifications": false,
            "send_pushes": false,
            "send_taf": false,
            "taf_body": "",
            "taf_subject": "",
            "url": format!("/cms/thanks/{}/", p.name),
        })
    };
    m.insert("followup".into(), followup);
    m.insert("goal".into(), json!(p.goal));
    m.insert("goal_type".into(), json!(st.sym(p.goal_type)));
    m.insert("hidden".into(), json!(p.hidden));
    m.insert("hosted_with".into(), json!(uri("hostingplatform", 1)));
    m.insert("id".into(), json!(id));
    m.insert("language".into(), opt_uri("language", p.lang));
    m.insert("list".into(), json!(uri("list", p.list)));
    m.insert("multilingual_campaign".into(), Value::Null);
    m.insert("name".into(), json!(&*p.name));
    m.insert("recognize".into(), json!(st.sym(p.recognize)));
    m.insert("required_fields".into(), json!([]));
    m.insert("resource_uri".into(), json!(page_uri));
    m.insert("status".into(), json!(st.sym(p.status)));
    m.insert(
        "tags".into(),
        Value::Array(
            p.tags
                .iter()
                .filter_map(|t| {
                    st.tags
                        .get((*t as usize).wrapping_sub(1))
                        .map(|tag| json!({"name": &*tag.name, "resource_uri": uri("tag", t)}))
                })
                .collect(),
        ),
    );
    m.insert("title".into(), json!(&*p.title));
    m.insert("type".into(), json!(t.name()));
    m.insert("url".into(), json!(&*p.url));
    if typed {
        match t {
            PageType::Petition => {
                for (k, v) in [
                    ("delivery_template", json!("")),
                    ("immediate_email_subject", json!("")),
                    ("one_click", json!(false)),
                    ("send_immediate_email", json!(false)),
                    ("send_immediate_email_override_limit", json!(false)),
                    ("send_immediate_fax", json!(false)),
                ] {
                    m.insert(k.into(), v);
                }
            }
            PageType::EventCreate | PageType::EventSignup => {
                m.insert("campaign".into(), json!(uri("campaign", 1)));
                if t == PageType::EventCreate {
                    m.insert("campaign_title".into(), json!(""));
                    m.insert("eventcreateform".into(), Value::Null);
                } else {
                    m.insert("eventsignupform".into(), Value::Null);
                }
                m.insert("never_spam_check".into(), json!(false));
                m.insert("notes".into(), json!(""));
                m.insert("real_actions".into(), json!(true));
            }
            _ => {}
        }
    }
    Value::Object(m)
}
