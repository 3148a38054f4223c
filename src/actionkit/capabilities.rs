//! Which filters an instance allows, read from `GET /rest/v1/<resource>/schema/`.
//!
//! ActionKit's schema says per field what may be filtered: `"all"`, `"all with
//! relations"`, or a list of operators (stock Tastypie sends the integers 1 and 2 for
//! the first two; both spellings are read). The client batches with `__in` and
//! traverses `page__name` only where the schema allows it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Which filters the instance allows, learned from `/rest/v1/<res>/schema/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `GET /rest/v1/user/?id__in=1,2,3`.
    pub user_id_in: bool,
    /// `GET /rest/v1/action/?id__in=1,2,3`.
    pub action_id_in: bool,
    /// `GET /rest/v1/action/?user__in=1,2,3`.
    pub action_user_in: bool,
    /// `GET /rest/v1/page/?id__in=1,2,3`.
    pub page_id_in: bool,
    /// `GET /rest/v1/action/?page__name=<name>` (`page` is "all with relations" on the
    /// action schema and `name` is filterable on the page schema).
    pub action_page_name: bool,
    /// False when the probe failed (in part) and conservative defaults are in force.
    pub probed: bool,
}

/// How one field may be filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldFilter {
    All,
    AllWithRelations,
    Ops(Vec<String>),
}

impl FieldFilter {
    pub(crate) fn allows(&self, op: &str) -> bool {
        match self {
            FieldFilter::All | FieldFilter::AllWithRelations => true,
            FieldFilter::Ops(ops) => ops.iter().any(|o| o == op),
        }
    }
}

impl<'de> Deserialize<'de> for FieldFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        Ok(match Value::deserialize(d)? {
            Value::String(s) if s == "all" => FieldFilter::All,
            Value::String(s) if s == "all with relations" => FieldFilter::AllWithRelations,
            Value::Number(n) if n.as_u64() == Some(1) => FieldFilter::All,
            Value::Number(n) if n.as_u64() == Some(2) => FieldFilter::AllWithRelations,
            Value::Array(items) => FieldFilter::Ops(
                items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            // Something unexpected: allow nothing rather than guess.
            _ => FieldFilter::Ops(Vec::new()),
        })
    }
}

/// The part of a resource schema the client reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Schema {
    #[serde(default)]
    pub filtering: BTreeMap<String, FieldFilter>,
}

impl Schema {
    pub(crate) fn allows(&self, field: &str, op: &str) -> bool {
        self.filtering.get(field).is_some_and(|f| f.allows(op))
    }

    pub(crate) fn traverses(&self, field: &str) -> bool {
        self.filtering.get(field) == Some(&FieldFilter::AllWithRelations)
    }
}

impl Capabilities {
    /// Capabilities from the schemas that could be read (`None`: that probe failed).
    pub(crate) fn from_schemas(
        user: Option<&Schema>,
        action: Option<&Schema>,
        page: Option<&Schema>,
    ) -> Capabilities {
        Capabilities {
            user_id_in: user.is_some_and(|s| s.allows("id", "in")),
            action_id_in: action.is_some_and(|s| s.allows("id", "in")),
            action_user_in: action.is_some_and(|s| s.allows("user", "in")),
            page_id_in: page.is_some_and(|s| s.allows("id", "in")),
            action_page_name: action.is_some_and(|s| s.traverses("page"))
                && page.is_some_and(|s| s.allows("name", "exact")),
            probed: user.is_some() && action.is_some() && page.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(json: &str) -> Schema {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn documented_2012_user_schema_allows_no_id_in() {
        let user = schema(
            r#"{"fields": {}, "filtering": {"country": "all", "email": ["exact"],
                "language": "all with relations", "last_name": "all", "source": "all",
                "state": "all", "subscription_status": ["exact", "in"], "zip": "all"}}"#,
        );
        let caps = Capabilities::from_schemas(Some(&user), None, None);
        assert!(!caps.user_id_in);
        assert!(!caps.probed);
    }

    #[test]
    fn each_spelling_of_filtering_is_understood() {
        let action = schema(
            r#"{"filtering": {"id": ["exact", "in"], "user": "all", "page": "all with relations"}}"#,
        );
        let page = schema(r#"{"filtering": {"id": 1, "name": ["exact"]}}"#);
        let user = schema(r#"{"filtering": {"id": ["exact"]}}"#);
        let caps = Capabilities::from_schemas(Some(&user), Some(&action), Some(&page));
        assert_eq!(
            caps,
            Capabilities {
                user_id_in: false,
                action_id_in: true,
                action_user_in: true,
                page_id_in: true,
                action_page_name: true,
                probed: true,
            }
        );
        // `page: "all"` allows operators on page, not traversal into it.
        let action = schema(r#"{"filtering": {"page": "all", "user": ["exact"]}}"#);
        let caps = Capabilities::from_schemas(Some(&user), Some(&action), Some(&page));
        assert!(!caps.action_page_name);
        assert!(!caps.action_user_in);
    }
}
