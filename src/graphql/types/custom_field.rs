//! A custom field, and the list of them that `User.customFields` and
//! `Action.customFields` answer with.
//!
//! The list is the one place a query asks for many small objects: a member's actions
//! each carry a few fields. async-graphql resolves an object by boxing a future per
//! selected field and joining them, about 3,200 instructions per `CustomField` against a
//! canonical query's 440,000 (BENCHMARKS.md, seventh and eighth rounds). A custom field
//! has nothing to wait for, so [`CustomFieldList`] answers its selection set directly:
//! the selection is read once per list, and each field becomes one map of values.
//! `CustomField` stays a derived object, for the schema and for `customField(name:)`;
//! a test holds the two answers equal.

use std::borrow::Cow;
use std::future::{ready, Future};

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection, SelectionSet, TypeCondition};
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Name, OutputType, Positioned, ServerError, ServerResult, SimpleObject,
    Value,
};

use crate::actionkit::{CustomFields, FieldValue};

/// A custom field: a name and its value(s). ActionKit keeps values as text; a field
/// can hold several values.
#[derive(SimpleObject, Clone, Debug)]
pub struct CustomField {
    /// The field's name.
    pub name: String,
    /// The value; the first one when the field holds several.
    pub value: String,
    /// Every value, in ActionKit's order.
    pub values: Vec<String>,
}

impl CustomField {
    pub(crate) fn new(name: &str, value: &FieldValue) -> Self {
        CustomField {
            name: name.to_owned(),
            value: value.first(),
            values: value.values(),
        }
    }
}

/// A member's or an action's custom fields, sorted by name, as `[CustomField!]!`.
pub struct CustomFieldList<'a>(pub &'a CustomFields);

/// What one selected field of a `CustomField` answers.
#[derive(Clone, Copy)]
enum Leaf {
    Name,
    Value,
    Values,
    Typename,
}

impl OutputType for CustomFieldList<'_> {
    fn type_name() -> Cow<'static, str> {
        <Vec<CustomField> as OutputType>::type_name()
    }

    fn qualified_type_name() -> String {
        <Vec<CustomField> as OutputType>::qualified_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Vec<CustomField> as OutputType>::create_type_info(registry)
    }

    fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> impl Future<Output = ServerResult<Value>> + Send {
        ready(self.answer(ctx))
    }
}

impl CustomFieldList<'_> {
    fn answer(&self, ctx: &ContextSelectionSet<'_>) -> ServerResult<Value> {
        let mut plan = Vec::new();
        collect(ctx, &ctx.item.node, &mut plan)?;
        let typename = <CustomField as OutputType>::type_name();
        let items = self.0.iter().map(|(name, value)| {
            let mut object = IndexMap::with_capacity(plan.len());
            for (key, leaf) in &plan {
                let answer = match leaf {
                    Leaf::Name => Value::String(name.clone()),
                    Leaf::Value => Value::String(value.first()),
                    Leaf::Values => Value::List(
                        value
                            .as_slice()
                            .iter()
                            .map(|v| Value::String(v.clone()))
                            .collect(),
                    ),
                    Leaf::Typename => Value::String(typename.clone().into_owned()),
                };
                object.insert(key.clone(), answer);
            }
            Value::Object(object)
        });
        Ok(Value::List(items.collect()))
    }
}

/// Reads a `CustomField` selection set into response keys and what each answers, in
/// the order async-graphql would write them: fragments expanded in place, and a key
/// selected twice written once, where it first appears (the map's `insert` keeps the
/// place). `@skip` and `@include` were applied to the document before execution;
/// validation has refused unknown fields, fragments and type conditions, so the errors
/// here cannot be reached by a checked document.
fn collect(
    ctx: &ContextSelectionSet<'_>,
    set: &SelectionSet,
    plan: &mut Vec<(Name, Leaf)>,
) -> ServerResult<()> {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let leaf = match field.node.name.node.as_str() {
                    "name" => Leaf::Name,
                    "value" => Leaf::Value,
                    "values" => Leaf::Values,
                    "__typename" => Leaf::Typename,
                    other => {
                        let own = <CustomField as OutputType>::type_name();
                        return Err(ServerError::new(
                            format!(r#"Cannot query field "{other}" on type "{own}"."#),
                            Some(field.pos),
                        ));
                    }
                };
                plan.push((field.node.response_key().node.clone(), leaf));
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                let Some(fragment) = ctx.query_env.fragments.get(name) else {
                    return Err(ServerError::new(
                        format!(r#"Unknown fragment "{name}"."#),
                        Some(spread.pos),
                    ));
                };
                if applies(ctx, Some(&fragment.node.type_condition)) {
                    collect(ctx, &fragment.node.selection_set.node, plan)?;
                }
            }
            Selection::InlineFragment(fragment) => {
                if applies(ctx, fragment.node.type_condition.as_ref()) {
                    collect(ctx, &fragment.node.selection_set.node, plan)?;
                }
            }
        }
    }
    Ok(())
}

/// Whether a fragment's type condition holds for a `CustomField`.
fn applies(ctx: &ContextSelectionSet<'_>, condition: Option<&Positioned<TypeCondition>>) -> bool {
    let Some(condition) = condition else {
        return true;
    };
    let on = condition.node.on.node.as_str();
    let own = <CustomField as OutputType>::type_name();
    on == own
        || ctx
            .schema_env
            .registry
            .implements
            .get(own.as_ref())
            .is_some_and(|interfaces| interfaces.contains(on))
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, Variables};
    use serde_json::json;

    use super::*;

    struct Query(CustomFields);

    #[Object]
    impl Query {
        /// The list as the gateway answers it.
        async fn fast(&self) -> CustomFieldList<'_> {
            CustomFieldList(&self.0)
        }
        /// The same fields through async-graphql's own list and object resolvers.
        async fn derived(&self) -> Vec<CustomField> {
            self.0
                .iter()
                .map(|(name, value)| CustomField::new(name, value))
                .collect()
        }
    }

    fn fields() -> CustomFields {
        [
            ("color", FieldValue::One("green".into())),
            ("empty", FieldValue::Many(vec![])),
            ("sizes", FieldValue::Many(vec!["s".into(), "m".into()])),
            ("zip", FieldValue::One(String::new())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn answer(document: &str, variables: serde_json::Value) -> (String, String) {
        let schema = Schema::new(Query(fields()), EmptyMutation, EmptySubscription);
        let selection = document.replace("LIST", "out: fast");
        let fast = schema
            .execute(
                async_graphql::Request::new(selection)
                    .variables(Variables::from_json(variables.clone())),
            )
            .await;
        let derived = schema
            .execute(
                async_graphql::Request::new(document.replace("LIST", "out: derived"))
                    .variables(Variables::from_json(variables)),
            )
            .await;
        assert!(fast.errors.is_empty(), "{document}: {:?}", fast.errors);
        assert!(
            derived.errors.is_empty(),
            "{document}: {:?}",
            derived.errors
        );
        (
            serde_json::to_string(&fast.data).unwrap(),
            serde_json::to_string(&derived.data).unwrap(),
        )
    }

    #[tokio::test]
    async fn the_list_answers_as_async_graphqls_own_resolvers_do() {
        let documents = [
            "{ LIST { name value values } }",
            "{ LIST { values name } }",
            "{ LIST { __typename t: __typename } }",
            "{ LIST { n: name v: value name n: name } }",
            "{ LIST { value ... { name } ... on CustomField { values n: name } } }",
            "{ LIST { ...F value } } fragment F on CustomField { name ...G } \
             fragment G on CustomField { values name }",
            "query($yes: Boolean!) { LIST { name @skip(if: $yes) value @include(if: $yes) \
             ... @include(if: false) { values } } }",
        ];
        for document in documents {
            let (fast, derived) = answer(document, json!({"yes": true})).await;
            assert_eq!(fast, derived, "{document}");
        }
        // Every field the schema gives `CustomField`, so that a field added to the
        // derived object and not to the list's resolver fails here.
        let schema = Schema::new(Query(fields()), EmptyMutation, EmptySubscription);
        let types = schema
            .execute(r#"{ __type(name: "CustomField") { fields { name } } }"#)
            .await
            .data
            .into_json()
            .unwrap();
        let all: Vec<&str> = types["__type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(all.len() >= 3, "{all:?}");
        let document = format!("{{ LIST {{ {} }} }}", all.join(" "));
        let (fast, derived) = answer(&document, json!({})).await;
        assert_eq!(fast, derived, "{document}");

        let (fast, _) = answer("{ LIST { n: name values } }", json!({})).await;
        assert_eq!(
            fast,
            r#"{"out":[{"n":"color","values":["green"]},{"n":"empty","values":[]},{"n":"sizes","values":["s","m"]},{"n":"zip","values":[""]}]}"#
        );
    }
}
