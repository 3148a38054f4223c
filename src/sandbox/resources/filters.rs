//! The `filtering` and `ordering` tables per resource and filter mode, and the schema
//! (`GET /rest/v1/<res>/schema/`) that shows them.

use serde_json::{json, Map, Value};

use super::{fields, FieldKind, Resource};
use crate::sandbox::FilterMode;

/// A `filtering` entry, rendered as ActionKit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSpec {
    All,
    AllWithRelations,
    Ops(&'static [&'static str]),
}

impl FilterSpec {
    pub fn to_json(self) -> Value {
        match self {
            FilterSpec::All => json!("all"),
            FilterSpec::AllWithRelations => json!("all with relations"),
            FilterSpec::Ops(ops) => json!(ops),
        }
    }
}

const EXACT: &[&str] = &["exact"];
const EXACT_IN: &[&str] = &["exact", "in"];
const ID_PERMISSIVE: &[&str] = &["exact", "in", "gt", "gte", "lt", "lte"];

/// The `filtering` table of a resource in a mode. A key `rel__field` (e.g. `page__name`)
/// allows that one traversal with the listed operators, for instances that allow a
/// traversal without `"all with relations"` on the relation.
pub fn filtering(res: Resource, mode: FilterMode) -> Vec<(&'static str, FilterSpec)> {
    let permissive = mode == FilterMode::Permissive;
    let mut v: Vec<(&'static str, FilterSpec)> = match res {
        Resource::User => {
            let mut v = vec![
                ("country", FilterSpec::All),
                ("email", FilterSpec::Ops(EXACT)),
                ("language", FilterSpec::AllWithRelations),
                ("last_name", FilterSpec::All),
                ("source", FilterSpec::All),
                ("state", FilterSpec::All),
                ("subscription_status", FilterSpec::Ops(EXACT_IN)),
                ("zip", FilterSpec::All),
            ];
            if permissive {
                v.push(("id", FilterSpec::Ops(ID_PERMISSIVE)));
            }
            v
        }
        Resource::Action(_) => {
            let mut v = vec![
                ("created_at", FilterSpec::All),
                ("updated_at", FilterSpec::All),
                ("status", FilterSpec::All),
                ("source", FilterSpec::All),
            ];
            if permissive {
                v.extend([
                    ("id", FilterSpec::Ops(ID_PERMISSIVE)),
                    ("user", FilterSpec::AllWithRelations),
                    ("page", FilterSpec::AllWithRelations),
                ]);
            } else {
                v.extend([
                    ("id", FilterSpec::Ops(EXACT)),
                    ("user", FilterSpec::Ops(EXACT)),
                    ("page", FilterSpec::Ops(EXACT)),
                    ("page__name", FilterSpec::Ops(EXACT)),
                ]);
            }
            v
        }
        Resource::Page(_) => vec![
            (
                "id",
                FilterSpec::Ops(if permissive { ID_PERMISSIVE } else { EXACT }),
            ),
            ("name", FilterSpec::All),
            ("title", FilterSpec::All),
            ("type", FilterSpec::All),
            ("hidden", FilterSpec::All),
            ("status", FilterSpec::All),
            ("created_at", FilterSpec::All),
            ("updated_at", FilterSpec::All),
        ],
        Resource::ActionField => vec![
            ("id", FilterSpec::Ops(EXACT_IN)),
            ("parent", FilterSpec::Ops(EXACT_IN)),
            ("name", FilterSpec::All),
        ],
        Resource::Tag => vec![("id", FilterSpec::Ops(EXACT_IN)), ("name", FilterSpec::All)],
        Resource::Language => vec![
            ("id", FilterSpec::Ops(EXACT_IN)),
            ("iso_code", FilterSpec::All),
            ("name", FilterSpec::All),
        ],
        Resource::Phone => vec![
            ("user", FilterSpec::Ops(EXACT_IN)),
            ("type", FilterSpec::All),
        ],
        Resource::AllowedUserField => vec![("name", FilterSpec::All)],
        Resource::Order => vec![
            ("id", FilterSpec::Ops(EXACT_IN)),
            ("user", FilterSpec::AllWithRelations),
            ("status", FilterSpec::All),
            ("created_at", FilterSpec::All),
        ],
    };
    v.sort_by_key(|(n, _)| *n);
    v
}

/// Fields allowed in `order_by`.
pub fn ordering(res: Resource) -> &'static [&'static str] {
    match res {
        Resource::User => &["created_at", "email", "id", "last_name", "updated_at"],
        Resource::Action(_) => &["created_at", "id", "page", "updated_at", "user"],
        Resource::Page(_) => &["created_at", "id", "name", "title", "type", "updated_at"],
        Resource::ActionField => &["id", "name"],
        Resource::Tag => &["id", "name"],
        Resource::Language => &["id", "name"],
        Resource::Phone => &["id"],
        Resource::AllowedUserField => &["name"],
        Resource::Order => &["created_at", "id"],
    }
}

pub fn schema(res: Resource, mode: FilterMode) -> Value {
    let mut f = Map::new();
    for (name, kind) in fields(res) {
        let readonly = matches!(name, "id" | "resource_uri" | "token" | "actions" | "type");
        f.insert(
            name.to_string(),
            json!({
                "blank": false,
                "default": "",
                "help_text": format!("{name} ({})", kind.schema_type()),
                "nullable": matches!(kind, FieldKind::Rel(_)) && name != "user" && name != "page" && name != "parent",
                "readonly": readonly,
                "type": kind.schema_type(),
                "unique": name == "id" || (res == Resource::User && name == "email") || (matches!(res, Resource::Page(_)) && name == "name"),
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
