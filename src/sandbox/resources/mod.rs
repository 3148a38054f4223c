//! What the sandbox serves: resource names and methods, each resource's fields and
//! their kinds. The filter and ordering tables are in `filters.rs`, field values of one
//! object (for filters and ordering) in `values.rs`, JSON representations in
//! `render.rs`; all are re-exported here.

mod filters;
mod render;
mod values;

pub use filters::*;
pub use render::*;
pub use values::*;

use super::store::*;

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
