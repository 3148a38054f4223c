//! The `filtering` and `ordering` tables per resource and filter mode, and the schema
//! (`GET /rest/v1/<res>/schema/`) that shows them.

use serde_json::{json, Map, Value};

use super::{fields, Kind, Res};
use crate::sandbox::FilterMode;

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
