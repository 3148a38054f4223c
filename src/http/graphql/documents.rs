//! Parsed documents by text, so that a document the gateway has seen is not lexed,
//! parsed and sized again: most traffic is a few documents with varying variables.
//! Only documents that parsed and passed the document limits are kept; a hit hands
//! async-graphql a copy of the parsed tree (cheaper than parsing: names are shared
//! `Arc<str>`s). Bounded by the bytes of document text (least recently used out).
//!
//! Each document also remembers the shapes of variables (see [`variable_shape`]) it
//! passed async-graphql's full validation with. Validation reads the document, the
//! schema and, through the variables' values, nothing but what the shape keeps; a
//! request whose document and shape passed before runs on the schema that skips the
//! repeated rules (`GatewaySchemas::validated`), which was a tenth of the CPU of a
//! query. A shape is kept as a keyed hash: values of variables (an input with a
//! member's email) are not held past their request.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, LazyLock, Mutex};

use async_graphql::parser::types::{BaseType, ExecutableDocument, OperationDefinition};
use serde_json::{Map, Value};

/// Bytes of document text the cache holds at most; the parsed trees take several
/// times that.
const MAX_TEXT_BYTES: u64 = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct DocumentCache {
    cache: moka::sync::Cache<String, Arc<Document>>,
}

/// A parsed document, and the variable shapes it passed full validation with.
pub(crate) struct Document {
    pub(crate) parsed: Arc<ExecutableDocument>,
    validated: Mutex<Vec<Shape>>,
}

/// What validation reads of a request's variables ([`variable_shape`]), hashed with a
/// key drawn at start, so that no value is kept and none can be chosen to collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape(u64);

static SHAPE_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// Shapes kept per document at most; a document sent with more shapes than that is
/// validated in full for the others, as before.
const MAX_SHAPES: usize = 16;

impl Document {
    /// Whether the document passed full validation with variables of this shape.
    pub(crate) fn passed(&self, shape: Shape) -> bool {
        self.validated
            .lock()
            .is_ok_and(|shapes| shapes.contains(&shape))
    }

    /// Records that the document passed full validation with variables of this shape.
    pub(crate) fn record_pass(&self, shape: Shape) {
        if let Ok(mut shapes) = self.validated.lock() {
            if shapes.len() < MAX_SHAPES && !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
    }
}

impl Default for DocumentCache {
    fn default() -> Self {
        DocumentCache {
            cache: moka::sync::Cache::builder()
                .weigher(|text: &String, _| u32::try_from(text.len() + 64).unwrap_or(u32::MAX))
                .max_capacity(MAX_TEXT_BYTES)
                .build(),
        }
    }
}

impl DocumentCache {
    pub(crate) fn get(&self, text: &str) -> Option<Arc<Document>> {
        self.cache.get(text)
    }

    /// Keeps `doc`, the parsed `text`, which passed the document limits.
    pub(crate) fn insert(&self, text: String, doc: ExecutableDocument) -> Arc<Document> {
        let doc = Arc::new(Document {
            parsed: Arc::new(doc),
            validated: Mutex::new(Vec::new()),
        });
        self.cache.insert(text, doc.clone());
        doc
    }
}

/// What async-graphql's validation can see of a request's variables, for operation
/// `op` (named `name` in the request): per declared variable, in order, the kind of
/// its value where the declared type is a built-in scalar (validity of a built-in
/// scalar's value depends on its kind alone: a string, a boolean, an integer that fits
/// 32 bits, a larger one, a fraction, null, absent), and the value itself for every
/// other type (an enum, a custom scalar, an input object, a list), whose validity
/// depends on the value. Variables the operation does not declare are not read by
/// validation and are left out.
pub(crate) fn variable_shape(
    name: Option<&str>,
    op: &OperationDefinition,
    variables: Option<&Map<String, Value>>,
) -> Shape {
    let mut shape = String::from(name.unwrap_or_default());
    for def in &op.variable_definitions {
        let def = &def.node;
        shape.push('\0');
        let value = variables.and_then(|v| v.get(def.name.node.as_str()));
        let built_in = match &def.var_type.node.base {
            BaseType::Named(named) => {
                matches!(
                    named.as_str(),
                    "ID" | "String" | "Int" | "Float" | "Boolean"
                )
            }
            BaseType::List(_) => false,
        };
        let kind = match value {
            None => "-",
            Some(Value::Null) => "n",
            Some(Value::Bool(_)) if built_in => "b",
            Some(Value::String(_)) if built_in => "s",
            Some(Value::Number(n)) if built_in => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => "i",
                Some(_) => "l",
                None if n.is_u64() => "l",
                None => "f",
            },
            Some(other) => {
                shape.push('=');
                shape.push_str(&other.to_string());
                continue;
            }
        };
        shape.push_str(kind);
    }
    Shape(SHAPE_KEY.hash_one(&shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(name: Option<&str>, doc: &str, variables: Value) -> Shape {
        let doc = async_graphql::parser::parse_query(doc).unwrap();
        let op = crate::graphql::access::selected_operation(&doc, name).unwrap();
        variable_shape(name, op, variables.as_object())
    }

    #[test]
    fn shapes_keep_kinds_of_built_in_scalars_and_values_of_other_types() {
        let doc = "query Q($id: ID!, $n: Int, $t: ActionType, $ids: [ID!]) { __typename }";
        let of = |v: Value| shape(Some("Q"), doc, v);
        let base = of(json!({"id": "1", "n": 5, "t": "PETITION", "ids": ["1"]}));
        // Another value of the same kind of a built-in scalar: the same shape.
        assert_eq!(
            base,
            of(json!({"id": "2", "n": -7, "t": "PETITION", "ids": ["1"]}))
        );
        // Undeclared variables are not read.
        assert_eq!(
            base,
            of(json!({"id": "1", "n": 5, "t": "PETITION", "ids": ["1"], "x": true}))
        );
        // Everything validity depends on makes another shape.
        for other in [
            json!({"id": 1, "n": 5, "t": "PETITION", "ids": ["1"]}),
            json!({"id": true, "n": 5, "t": "PETITION", "ids": ["1"]}),
            json!({"id": "1", "n": 5_000_000_000u64, "t": "PETITION", "ids": ["1"]}),
            json!({"id": "1", "n": 1.5, "t": "PETITION", "ids": ["1"]}),
            json!({"id": "1", "n": null, "t": "PETITION", "ids": ["1"]}),
            json!({"id": "1", "t": "PETITION", "ids": ["1"]}),
            json!({"id": "1", "n": 5, "t": "SIGNUP", "ids": ["1"]}),
            json!({"id": "1", "n": 5, "t": "PETITION", "ids": [true]}),
            json!({"id": ["1"], "n": 5, "t": "PETITION", "ids": ["1"]}),
        ] {
            assert_ne!(base, of(other.clone()), "{other}");
        }
        // The operation's name is part of it.
        let two = "query A($n: Int) { __typename } query B($n: Int) { __typename }";
        assert_ne!(
            shape(Some("A"), two, json!({"n": 1})),
            shape(Some("B"), two, json!({"n": 1}))
        );
    }

    #[test]
    fn a_document_remembers_the_shapes_it_passed_with_up_to_a_bound() {
        let cache = DocumentCache::default();
        let doc = cache.insert(
            "{ __typename }".into(),
            async_graphql::parser::parse_query("{ __typename }").unwrap(),
        );
        let of = |n: usize| Shape(n as u64);
        assert!(!doc.passed(of(1)));
        doc.record_pass(of(1));
        assert!(doc.passed(of(1)));
        assert!(!doc.passed(of(2)));
        assert!(cache.get("{ __typename }").is_some_and(|d| d.passed(of(1))));
        for i in 0..2 * MAX_SHAPES {
            doc.record_pass(of(i));
        }
        assert!(doc.passed(of(0)));
        assert!(!doc.passed(of(2 * MAX_SHAPES - 1)));
    }
}
