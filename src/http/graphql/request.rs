//! The request side of GraphQL over HTTP: the parameters of a POST body or a GET
//! query string, checked for type as the spec requires; which operation a document
//! selects; the variable coercion async-graphql leaves to execution time.

use async_graphql::parser::types::OperationDefinition;
use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};

use crate::http::errors::{APPLICATION_JSON, GRAPHQL_RESPONSE_JSON};

/// The GraphQL parameters of one request, checked for type as the spec requires.
pub(super) struct Params {
    /// The document; `None` only when `extensions.persistedQuery` names it by hash
    /// (automatic persisted queries, `http/apq.rs`).
    pub(super) query: Option<String>,
    pub(super) operation_name: Option<String>,
    pub(super) variables: Option<Map<String, Value>>,
    pub(super) extensions: Option<Map<String, Value>>,
}

pub(super) fn params_from_json(value: Value) -> Result<Params, &'static str> {
    let Value::Object(mut obj) = value else {
        return Err("the request body must be a JSON object");
    };
    let persisted = obj
        .get("extensions")
        .and_then(|e| e.get("persistedQuery"))
        .is_some();
    let query = match obj.remove("query") {
        Some(Value::String(q)) => Some(q),
        Some(_) => return Err("`query` must be a string"),
        None if persisted => None,
        None => return Err("`query` is required"),
    };
    let operation_name = match obj.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err("`operationName` must be a string"),
    };
    let variables = match obj.remove("variables") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("`variables` must be an object"),
    };
    let extensions = match obj.remove("extensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => return Err("`extensions` must be an object"),
    };
    Ok(Params {
        query,
        operation_name,
        variables,
        extensions,
    })
}

pub(super) fn params_from_query_string(raw: &str) -> Result<Params, &'static str> {
    let mut obj = Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let value = match k.as_ref() {
            "variables" | "extensions" => {
                if v.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&v)
                        .map_err(|_| "`variables` and `extensions` must be JSON")?
                }
            }
            _ => Value::String(v.into_owned()),
        };
        obj.insert(k.into_owned(), value);
    }
    params_from_json(Value::Object(obj))
}

/// How the request came: GET may only run queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
}

/// Variable coercion, the part async-graphql leaves to execution time: a variable of
/// non-null type must not be null, and must be given unless it has a default. async-graphql checks
/// the values that are given during validation, but a missing required variable only
/// fails in the resolver, as a field error with `data` present; the spec makes it a
/// request error (no `data`, 400 under graphql-response+json).
pub(super) fn variable_coercion_error(
    op: &OperationDefinition,
    variables: Option<&Map<String, Value>>,
) -> Option<String> {
    for def in &op.variable_definitions {
        let def = &def.node;
        if def.var_type.node.nullable {
            continue;
        }
        let name = def.name.node.as_str();
        match variables.and_then(|v| v.get(name)) {
            None if def.default_value.is_some() => {}
            None => {
                return Some(format!(
                    "Variable \"${name}\" of required type \"{}\" was not provided.",
                    def.var_type.node
                ))
            }
            Some(Value::Null) => {
                return Some(format!(
                    "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                    def.var_type.node
                ))
            }
            Some(_) => {}
        }
    }
    None
}

pub(super) fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == APPLICATION_JSON || media == GRAPHQL_RESPONSE_JSON
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::access::selected_operation;
    use async_graphql::parser::types::OperationType;
    use serde_json::json;

    #[test]
    fn parameters_are_type_checked() {
        assert!(params_from_json(json!({"query": "{a}"})).is_ok());
        assert!(params_from_json(json!({"query": 1})).is_err());
        assert!(params_from_json(json!({})).is_err());
        // Without a document only when a persisted query names one.
        let hashed = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "00"}}});
        assert!(params_from_json(hashed).is_ok_and(|p| p.query.is_none()));
        assert!(params_from_json(json!({"extensions": {}})).is_err());
        assert!(params_from_json(json!({"query": "{a}", "variables": "x"})).is_err());
        assert!(params_from_json(json!({"query": "{a}", "operationName": 3})).is_err());
        assert!(params_from_json(json!([])).is_err());
        assert!(params_from_query_string("query=%7Ba%7D&variables=%7B%7D").is_ok());
        assert!(params_from_query_string("query=%7Ba%7D&variables=nope").is_err());
    }

    fn operation_type(query: &str, name: Option<&str>) -> Option<OperationType> {
        let doc = async_graphql::parser::parse_query(query).ok()?;
        selected_operation(&doc, name).map(|op| op.ty)
    }

    fn coercion_error(query: &str, variables: Value) -> Option<String> {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        let op = selected_operation(&doc, None).expect("one operation");
        variable_coercion_error(op, variables.as_object())
    }

    #[test]
    fn required_variables_must_be_given_and_not_null() {
        let q = "query Q($id: ID!, $n: Int, $d: Int! = 3) { a }";
        assert_eq!(coercion_error(q, json!({"id": "1"})), None);
        assert_eq!(
            coercion_error(q, json!({"id": "1", "d": 4, "n": null})),
            None
        );
        assert_eq!(
            coercion_error(q, json!({})).as_deref(),
            Some("Variable \"$id\" of required type \"ID!\" was not provided.")
        );
        assert_eq!(
            coercion_error(q, json!({"id": null})).as_deref(),
            Some("Variable \"$id\" of non-null type \"ID!\" must not be null.")
        );
        assert!(coercion_error(q, json!({"id": "1", "d": null})).is_some());
        assert!(coercion_error("query Q($l: [ID!]!) { a }", Value::Null).is_some());
    }

    #[test]
    fn operation_type_is_found_by_name() {
        assert_eq!(operation_type("{a}", None), Some(OperationType::Query));
        assert_eq!(
            operation_type("query A {a} mutation B {b}", Some("B")),
            Some(OperationType::Mutation)
        );
        assert_eq!(operation_type("query A {a} mutation B {b}", None), None);
        assert_eq!(operation_type("{", None), None);
    }
}
