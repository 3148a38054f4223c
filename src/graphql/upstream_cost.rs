//! What an operation would cost, estimated from its document before it runs: the
//! ActionKit calls its plan makes, and the fields it resolves.
//!
//! The calls: `users(ids:)` reads its ids in batches of 100 (one call per id on an
//! instance without `id__in`), each user's `actions` window is one call, `action`,
//! `page` and `user` one call each (`user(akid:)` two), `Action.user` batches like
//! `users`, `Action.page` one call per 100 actions (pages are few and cached
//! process-wide), a mutation three (read, write, read back) plus one for a `self`
//! caller's ownership check. Aliases repeat a field, so they add up; lists multiply
//! what is under them: 15 aliases of `users(ids: [20 ids]) { actions(first: 1) }`
//! count 15 × (1 + 20) = 315. It is an upper bound of what the loaders send (they
//! share batches across aliases and sweep windows with `user__in` where they can).
//! The HTTP handler refuses an operation whose estimate passes
//! `graphql.max_upstream_calls`.
//!
//! The fields: every field once per object it is resolved on, `__typename` included
//! (async-graphql's complexity skips `__typename`, so `users(ids: [100 ids]) {
//! actions(first: 50) { nodes { __typename __typename ... } } }` would otherwise pass
//! at any size). The handler holds it to `graphql.max_complexity`.
//!
//! The walk expands fragments; it runs after `limits::check_document` has bounded the
//! expanded size. **When a field that calls ActionKit is added to the schema, give it
//! its cost in [`Walker::field`]**; a test fails until every object-typed field of the
//! schema is either costed here or listed as free (`FREE`, in the tests).

use async_graphql::parser::types::{
    ExecutableDocument, Field, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::Value as GqlValue;
use serde_json::{Map, Value};

use super::loaders::MAX_BATCH;
use super::query::MAX_USERS;
use super::types::user::{DEFAULT_FIRST, MAX_FIRST};
use crate::actionkit::Capabilities;

/// Calls of one mutation: read the action, write, read it back, and a `self+write`
/// caller's ownership read.
const WRITE_CALLS: u64 = 4;

/// Which reads the instance lets the client batch (from the capability probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    pub users: bool,
    pub actions: bool,
}

impl Batching {
    pub fn of(c: &Capabilities) -> Batching {
        Batching {
            users: c.user_id_in,
            actions: c.action_id_in,
        }
    }
}

/// The estimate of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// ActionKit calls, at most.
    pub calls: u64,
    /// Fields resolved, `__typename` included, lists multiplied.
    pub fields: u64,
}

/// The types the walk tells apart; everything else is `Other` (no calls below it
/// unless a fragment's type condition names a known type again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Query,
    Mutation,
    User,
    Connection {
        first: u64,
    },
    Edge,
    Action,
    Page,
    /// `SubmitActionPayload` and `Submission`: a stored submission and its action.
    Submission,
    Subscription,
    /// `PageContext`: a page's form and a visitor.
    Context,
    /// `PageProgress`: a reading, no calls below it.
    Progress,
    Other,
}

/// The type a type condition names, `None` when the walk does not know it.
fn named(name: &str, current: Ty) -> Option<Ty> {
    Some(match name {
        "Query" => Ty::Query,
        "Mutation" => Ty::Mutation,
        "User" => Ty::User,
        "ActionConnection" => match current {
            Ty::Connection { .. } => current,
            _ => Ty::Connection {
                first: DEFAULT_FIRST as u64,
            },
        },
        "ActionEdge" => Ty::Edge,
        "Page" => Ty::Page,
        "Subscription" => Ty::Subscription,
        "PageContext" => Ty::Context,
        "PageProgress" => Ty::Progress,
        "SubmitActionPayload" | "Submission" => Ty::Submission,
        n if n == "Action" || n.ends_with("Action") => Ty::Action,
        _ => return None,
    })
}

/// Estimates the operation `op` of `doc` with its variables.
pub fn estimate(
    doc: &ExecutableDocument,
    op: &OperationDefinition,
    variables: Option<&Map<String, Value>>,
    batching: Batching,
) -> Estimate {
    let root = match op.ty {
        OperationType::Query => Ty::Query,
        OperationType::Mutation => Ty::Mutation,
        OperationType::Subscription => Ty::Subscription,
    };
    let mut walker = Walker {
        doc,
        op,
        variables,
        batching,
        estimate: Estimate::default(),
        visiting: Vec::new(),
    };
    walker.selection_set(&op.selection_set.node, root, 1);
    walker.estimate
}

struct Walker<'a> {
    doc: &'a ExecutableDocument,
    op: &'a OperationDefinition,
    variables: Option<&'a Map<String, Value>>,
    batching: Batching,
    estimate: Estimate,
    visiting: Vec<&'a str>,
}

fn batched(batching: bool, n: u64) -> u64 {
    if batching {
        n.div_ceil(MAX_BATCH as u64)
    } else {
        n
    }
}

impl<'a> Walker<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, ty: Ty, objects: u64) {
        if objects == 0 {
            return;
        }
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    self.estimate.fields = self.estimate.fields.saturating_add(objects);
                    let (calls, inner, inner_objects) = self.field(ty, f, objects);
                    self.estimate.calls = self.estimate.calls.saturating_add(calls);
                    self.selection_set(&f.selection_set.node, inner, inner_objects);
                }
                Selection::InlineFragment(f) => {
                    let ty = f
                        .node
                        .type_condition
                        .as_ref()
                        .and_then(|c| named(c.node.on.node.as_str(), ty))
                        .unwrap_or(ty);
                    self.selection_set(&f.node.selection_set.node, ty, objects);
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    if self.visiting.contains(&name) {
                        continue;
                    }
                    let Some(def) = self.doc.fragments.get(name) else {
                        continue;
                    };
                    let ty = named(def.node.type_condition.node.on.node.as_str(), ty).unwrap_or(ty);
                    self.visiting.push(name);
                    self.selection_set(&def.node.selection_set.node, ty, objects);
                    self.visiting.pop();
                }
            }
        }
    }

    /// `(calls, type of the field, objects it resolves to)` for `field` selected on
    /// `objects` objects of type `ty`.
    fn field(&self, ty: Ty, field: &Field, objects: u64) -> (u64, Ty, u64) {
        let m = objects;
        match (ty, field.name.node.as_str()) {
            (Ty::Query, "user") => {
                let per = if self.argument(field, "akid").is_some() {
                    2
                } else {
                    1
                };
                (m.saturating_mul(per), Ty::User, m)
            }
            (Ty::Query, "users") => {
                let ids = self.list_len(field, "ids");
                if ids > MAX_USERS as u64 {
                    // Refused by the resolver before any call.
                    return (0, Ty::User, 0);
                }
                let users = m.saturating_mul(ids);
                (batched(self.batching.users, users), Ty::User, users)
            }
            (Ty::Query, "action") => (batched(self.batching.actions, m), Ty::Action, m),
            (Ty::Query, "page") => (m, Ty::Page, m),
            (Ty::Mutation, "setActionCustomFields" | "clearActionCustomFields") => {
                (m.saturating_mul(WRITE_CALLS), Ty::Action, m)
            }
            // The page's form (when not cached), the POST, and the action read back when
            // the instance answers with its short form.
            (Ty::Mutation, "submitAction") => (m.saturating_mul(3), Ty::Submission, m),
            // A stored submission is read from the gateway's own store.
            (Ty::Query, "submission") => (0, Ty::Submission, m),
            (Ty::Submission, "action") => (batched(self.batching.actions, m), Ty::Action, m),
            // A mutation this walk does not know yet: a write's usual cost.
            (Ty::Mutation, _) => (m.saturating_mul(WRITE_CALLS), Ty::Other, m),
            (Ty::User, "actions") => {
                let first = self.int(field, "first").unwrap_or(i64::from(DEFAULT_FIRST));
                if !(0..=i64::from(MAX_FIRST)).contains(&first) {
                    return (0, Ty::Other, 0);
                }
                // One window per user; `first: 0` still reads one row.
                let first = u64::try_from(first).unwrap_or(0);
                (m, Ty::Connection { first }, m)
            }
            (Ty::Connection { first }, "nodes") => (0, Ty::Action, m.saturating_mul(first)),
            (Ty::Connection { first }, "edges") => (0, Ty::Edge, m.saturating_mul(first)),
            (Ty::Edge, "node") => (0, Ty::Action, m),
            (Ty::Action, "user") => (batched(self.batching.users, m), Ty::User, m),
            (Ty::Action, "page") => (batched(true, m), Ty::Page, m),
            // The page's form (cached with submitAction's), and the AKID's member (two
            // calls without the AKID secret).
            (Ty::Query, "pageContext") => (m.saturating_mul(3), Ty::Context, m),
            (Ty::Context, "page") => (0, Ty::Page, m),
            // A reading: one call per cache period (`/progress/`), two where the
            // instance lacks the endpoint; shared by every caller of the period.
            (Ty::Page, "progress") | (Ty::Subscription, "pageProgress") => {
                (m.saturating_mul(2), Ty::Progress, m)
            }
            _ => (0, Ty::Other, m),
        }
    }

    /// An argument's value, variables resolved (to their default when not given).
    fn argument(&self, field: &Field, name: &str) -> Option<Value> {
        let value = field.get_argument(name)?.node.clone();
        let resolved = value
            .into_const_with(|var| -> Result<GqlValue, ()> {
                if let Some(given) = self.variables.and_then(|v| v.get(var.as_str())) {
                    return Ok(GqlValue::from_json(given.clone()).unwrap_or(GqlValue::Null));
                }
                Ok(self
                    .op
                    .variable_definitions
                    .iter()
                    .find(|d| d.node.name.node == var)
                    .and_then(|d| d.node.default_value.as_ref())
                    .map(|d| d.node.clone())
                    .unwrap_or(GqlValue::Null))
            })
            .ok()?;
        let json = resolved.into_json().ok()?;
        (!json.is_null()).then_some(json)
    }

    /// The length of a list argument (a single value counts as a list of one).
    fn list_len(&self, field: &Field, name: &str) -> u64 {
        match self.argument(field, name) {
            None => 0,
            Some(Value::Array(items)) => items.len() as u64,
            Some(_) => 1,
        }
    }

    fn int(&self, field: &Field, name: &str) -> Option<i64> {
        self.argument(field, name)?.as_i64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};
    use serde_json::json;

    /// Object-typed fields that cost no call and lead to no costed field.
    const FREE: &[(&str, &str)] = &[
        ("User", "customFields"),
        ("Action", "customFields"),
        ("Action", "customField"),
        ("Action", "order"),
        ("ActionConnection", "pageInfo"),
        ("SubmitActionPayload", "fieldErrors"),
        ("Submission", "fieldErrors"),
    ];

    const BATCHING: Batching = Batching {
        users: true,
        actions: true,
    };
    const STRICT: Batching = Batching {
        users: false,
        actions: false,
    };

    fn run(q: &str, vars: Value, batching: Batching) -> Estimate {
        let doc = async_graphql::parser::parse_query(q).unwrap();
        let op = doc.operations.iter().next().unwrap().1.node.clone();
        estimate(&doc, &op, vars.as_object(), batching)
    }

    #[test]
    fn the_amplification_of_the_report_is_counted() {
        // 15 aliases of `users` with 20 ids and `actions(first: 1)`.
        let ids: Vec<String> = (1..=20).map(|i| format!("\"{i}\"")).collect();
        let one = format!(
            "users(ids: [{}]) {{ actions(first: 1) {{ totalCount }} }}",
            ids.join(",")
        );
        let q = format!(
            "{{ {} }}",
            (0..15)
                .map(|i| format!("u{i}: {one}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let e = run(&q, json!({}), BATCHING);
        assert_eq!(e.calls, 15 * (1 + 20));
        assert_eq!(run(&q, json!({}), STRICT).calls, 15 * (20 + 20));
    }

    #[test]
    fn ordinary_operations_cost_what_the_loaders_send() {
        let canonical = r#"query($id: ID) { user(id: $id) { firstName actions(first: 10) {
            totalCount nodes { type page { title } customFields { name value } } } } }"#;
        let e = run(canonical, json!({"id": "1"}), BATCHING);
        assert_eq!(e.calls, 3, "user, window, pages");
        let batch50 = "query($ids: [ID!]!) { users(ids: $ids) { actions(first: 20) { \
                       nodes { page { name } customFields { name } } } } }";
        let ids: Vec<String> = (10..60).map(|i| i.to_string()).collect();
        let e = run(batch50, json!({"ids": ids}), STRICT);
        assert_eq!(e.calls, 50 + 50 + 10);
        assert!(e.fields < 10_000, "{e:?}");
        let m =
            r#"mutation { setActionCustomFields(actionId: "1", fields: []) { id user { id } } }"#;
        assert_eq!(run(m, json!({}), BATCHING).calls, WRITE_CALLS + 1);
    }

    #[test]
    fn fragments_variables_and_defaults_are_followed() {
        let q = "query($n: Int = 5, $ids: [ID!]! = [\"1\", \"2\"]) { ...Q } \
                 fragment Q on Query { users(ids: $ids) { ...U } } \
                 fragment U on User { actions(first: $n) { edges { node { ... on PetitionAction { user { id } } } } } }";
        let e = run(q, json!({}), STRICT);
        // 2 users, 2 windows, 10 actions' users one by one.
        assert_eq!(e.calls, 2 + 2 + 10);
        let e = run(q, json!({"n": 1, "ids": ["1"]}), STRICT);
        assert_eq!(e.calls, 1 + 1 + 1);
    }

    #[test]
    fn typename_is_counted_per_object() {
        let typenames = vec!["__typename"; 100].join(" ");
        let ids: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
        let q = format!(
            "query($ids: [ID!]!) {{ users(ids: $ids) {{ actions(first: 50) {{ nodes {{ {typenames} }} }} }} }}"
        );
        let e = run(&q, json!({"ids": ids}), BATCHING);
        assert!(e.fields >= 100 * 50 * 100, "{e:?}");
        // Refused arguments cost nothing: the resolver refuses them before any call.
        let many: Vec<String> = (1..=101).map(|i| i.to_string()).collect();
        let e = run(
            "query($ids: [ID!]!) { users(ids: $ids) { id } }",
            json!({"ids": many}),
            STRICT,
        );
        assert_eq!(e.calls, 0);
    }

    /// Every field of the schema that returns an object is costed by the walk or
    /// declared free: a new field that calls ActionKit cannot slip past the estimate.
    #[test]
    fn every_object_field_of_the_schema_is_known() {
        let sdl = crate::graphql::sdl();
        let doc = async_graphql::parser::parse_schema(&sdl).unwrap();
        let mut objects = std::collections::HashSet::new();
        let mut fields = Vec::new();
        for def in &doc.definitions {
            if let TypeSystemDefinition::Type(t) = def {
                let name = t.node.name.node.to_string();
                match &t.node.kind {
                    TypeKind::Object(o) => {
                        objects.insert(name.clone());
                        for f in &o.fields {
                            fields.push((name.clone(), f.node.clone()));
                        }
                    }
                    TypeKind::Interface(i) => {
                        objects.insert(name.clone());
                        for f in &i.fields {
                            fields.push((name.clone(), f.node.clone()));
                        }
                    }
                    _ => {}
                }
            }
        }
        let empty = async_graphql::parser::parse_query("{ a }").unwrap();
        let op = empty.operations.iter().next().unwrap().1.node.clone();
        let walker = Walker {
            doc: &empty,
            op: &op,
            variables: None,
            batching: BATCHING,
            estimate: Estimate::default(),
            visiting: Vec::new(),
        };
        for (parent, f) in fields {
            let mut base = &f.ty.node.base;
            while let BaseType::List(inner) = base {
                base = &inner.base;
            }
            let BaseType::Named(ty) = base else { continue };
            if !objects.contains(ty.as_str()) || f.name.node.starts_with("__") {
                continue;
            }
            let parent_ty = named(&parent, Ty::Other).unwrap_or(Ty::Other);
            let generic = match parent_ty {
                Ty::Action => "Action",
                Ty::Connection { .. } => "ActionConnection",
                _ => parent.as_str(),
            };
            if FREE.contains(&(generic, f.name.node.as_str())) {
                continue;
            }
            let one = async_graphql::parser::parse_query(format!("{{ {} }}", f.name.node)).unwrap();
            let (_, op) = one.operations.iter().next().unwrap();
            let Selection::Field(field) = &op.node.selection_set.node.items[0].node else {
                unreachable!()
            };
            let (_, inner, _) = walker.field(parent_ty, &field.node, 1);
            assert_ne!(
                inner,
                Ty::Other,
                "{parent}.{}: say what it costs in upstream_cost.rs (or list it in FREE)",
                f.name.node
            );
        }
    }
}
