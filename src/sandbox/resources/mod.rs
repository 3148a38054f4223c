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
pub enum Resource {
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

impl Resource {
    pub fn parse(name: &str) -> Option<Resource> {
        Some(match name {
            "user" => Resource::User,
            "action" => Resource::Action(None),
            "page" => Resource::Page(None),
            "actionfield" => Resource::ActionField,
            "tag" => Resource::Tag,
            "language" => Resource::Language,
            "phone" => Resource::Phone,
            "alloweduserfield" => Resource::AllowedUserField,
            "order" => Resource::Order,
            _ => {
                if let Some(t) = name.strip_suffix("action").and_then(PageType::from_slug) {
                    Resource::Action(Some(t))
                } else if let Some(t) = name.strip_suffix("page").and_then(PageType::from_slug) {
                    Resource::Page(Some(t))
                } else {
                    return None;
                }
            }
        })
    }

    pub fn name(self) -> String {
        match self {
            Resource::User => "user".into(),
            Resource::Action(None) => "action".into(),
            Resource::Action(Some(t)) => format!("{}action", t.slug()),
            Resource::Page(None) => "page".into(),
            Resource::Page(Some(t)) => format!("{}page", t.slug()),
            Resource::ActionField => "actionfield".into(),
            Resource::Tag => "tag".into(),
            Resource::Language => "language".into(),
            Resource::Phone => "phone".into(),
            Resource::AllowedUserField => "alloweduserfield".into(),
            Resource::Order => "order".into(),
        }
    }

    /// Every resource, in the root listing's order.
    pub fn all() -> Vec<Resource> {
        let mut v = vec![
            Resource::User,
            Resource::Action(None),
            Resource::Page(None),
            Resource::ActionField,
        ];
        v.extend(PageType::ALL.iter().map(|t| Resource::Action(Some(*t))));
        v.extend(PageType::ALL.iter().map(|t| Resource::Page(Some(*t))));
        v.extend([
            Resource::Tag,
            Resource::Language,
            Resource::Phone,
            Resource::AllowedUserField,
            Resource::Order,
        ]);
        v
    }

    pub fn list_methods(self) -> &'static [&'static str] {
        match self {
            Resource::User => &["get", "post"],
            Resource::Action(None) => &["get", "post"],
            Resource::Action(Some(_)) => &["get"],
            Resource::Page(None) => &["get"],
            Resource::Page(Some(_)) => &["get", "post"],
            Resource::ActionField => &["get", "post"],
            _ => &["get"],
        }
    }

    pub fn detail_methods(self) -> &'static [&'static str] {
        match self {
            Resource::User => &["get", "put", "patch"],
            Resource::Action(_) => &["get", "put", "patch", "delete"],
            Resource::Page(None) => &["get"],
            Resource::Page(Some(_)) => &["get", "put", "patch"],
            Resource::ActionField => &["get", "put", "patch", "delete"],
            _ => &["get"],
        }
    }
}

/// The type of a field, for filter values and the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Int,
    Str,
    Bool,
    Time,
    Rel(Resource),
    /// Shown in the schema, not filterable.
    Other(&'static str),
}

impl FieldKind {
    fn schema_type(self) -> &'static str {
        match self {
            FieldKind::Int => "integer",
            FieldKind::Str => "string",
            FieldKind::Bool => "boolean",
            FieldKind::Time => "datetime",
            FieldKind::Rel(_) => "related",
            FieldKind::Other(t) => t,
        }
    }
}

/// The fields of a resource with their kinds (schema `fields`, filter targets).
pub fn fields(res: Resource) -> Vec<(&'static str, FieldKind)> {
    use FieldKind::*;
    let mut v: Vec<(&'static str, FieldKind)> = match res {
        Resource::User => {
            let mut v = vec![
                ("id", Int),
                ("email", Str),
                ("created_at", Time),
                ("updated_at", Time),
                ("rand_id", Int),
                ("token", Str),
                ("lang", Rel(Resource::Language)),
                ("language", Rel(Resource::Language)),
                ("fields", Other("dict")),
                ("phones", Other("list")),
                ("actions", Other("string")),
            ];
            v.extend(USER_STR_FIELDS.iter().map(|f| (*f, Str)));
            v
        }
        Resource::Action(t) => {
            let mut v = vec![
                ("id", Int),
                ("user", Rel(Resource::User)),
                ("page", Rel(Resource::Page(None))),
                ("created_at", Time),
                ("updated_at", Time),
                ("status", Str),
                ("source", Str),
                ("type", Str),
                ("ip_address", Str),
                ("mailing", Int),
                ("referring_user", Rel(Resource::User)),
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
                Some(PageType::Donation) => v.push(("order", Rel(Resource::Order))),
                Some(PageType::EventCreate) => v.push(("event", Other("related"))),
                Some(PageType::EventSignup) => v.push(("signup", Other("related"))),
                _ => {}
            }
            v
        }
        Resource::Page(_) => vec![
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
            ("language", Rel(Resource::Language)),
            ("list", Other("related")),
            ("tags", Other("related")),
            ("fields", Other("dict")),
        ],
        Resource::ActionField => vec![
            ("id", Int),
            ("parent", Rel(Resource::Action(None))),
            ("name", Str),
            ("value", Str),
        ],
        Resource::Tag => vec![("id", Int), ("name", Str)],
        Resource::Language => vec![
            ("id", Int),
            ("iso_code", Str),
            ("name", Str),
            ("hidden", Bool),
        ],
        Resource::Phone => vec![
            ("id", Int),
            ("user", Rel(Resource::User)),
            ("phone", Str),
            ("normalized_phone", Str),
            ("type", Str),
            ("source", Str),
            ("created_at", Time),
        ],
        Resource::AllowedUserField => vec![
            ("name", Str),
            ("display_name", Str),
            ("field_type", Str),
            ("allow_multiple", Bool),
        ],
        Resource::Order => vec![
            ("id", Int),
            ("user", Rel(Resource::User)),
            ("action", Rel(Resource::Action(None))),
            ("status", Str),
            ("total", Str),
            ("currency", Str),
            ("created_at", Time),
        ],
    };
    v.sort_by_key(|(n, _)| *n);
    v
}

pub fn field_kind(res: Resource, name: &str) -> Option<FieldKind> {
    fields(res)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| k)
}
