//! Operation limits that async-graphql does not have built in: tokens (counted before
//! the document is parsed), aliases and directives (counted per operation, fragments
//! expanded), and depth without the introspection subtrees (async-graphql's own
//! `limit_depth` counts `__schema`, whose standard query from GraphiQL and codegen
//! tools is 15 levels deep; introspection is off in production and bounded there by
//! async-graphql's recursion limit). Complexity uses async-graphql's own validation
//! (`limit_complexity`; list fields weighted by their length through [`list_cost`]). Every refusal happens before execution, so it costs no upstream
//! call and is answered as a request error.
//!
//! In production the messages name the rule, never the configured number.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensions, ServerError, ServerResult, Variables};

use super::error::ErrorCode;

/// The limits an operation must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fields nested in one another, introspection subtrees not counted.
    pub max_depth: usize,
    pub max_tokens: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    /// Whether messages may say the configured number (development).
    pub expose: bool,
}

impl Default for Limits {
    /// GraphQL Armor's defaults (tokens 1000, aliases 15, directives 50).
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_tokens: 1000,
            max_aliases: 15,
            max_directives: 50,
            expose: false,
        }
    }
}

/// The complexity of a list field: its length times the complexity of one element
/// (async-graphql's `complexity = "..."` attribute calls this).
pub fn list_cost(len: Option<i64>, child_complexity: usize) -> usize {
    let len = len.unwrap_or(0).clamp(0, i64::from(i32::MAX)) as usize;
    len.max(1)
        .saturating_mul(child_complexity)
        .saturating_add(1)
}

fn refusal(rule: &str, limit: usize, expose: bool) -> ServerError {
    let message = if expose {
        format!("the operation exceeds the {rule} limit ({limit})")
    } else {
        format!("the operation exceeds the {rule} limit")
    };
    async_graphql::Error::new(message)
        .extend_with(|_, e| {
            e.set("code", ErrorCode::BadUserInput.as_str());
            e.set("limit", rule);
        })
        .into_server_error(async_graphql::Pos::default())
}

/// Counts the lexical tokens of a GraphQL document (punctuators, names, numbers,
/// strings), skipping whitespace, commas and comments, and stops counting past `stop`.
/// Unknown characters count as one token each (the parser will refuse them).
pub fn count_tokens(doc: &str, stop: usize) -> usize {
    let b = doc.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() && n <= stop {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            0xEF if b[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                n += 1;
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                        i += if b[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if b[i..].starts_with(b"...") => {
                n += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                n += 1;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'+' | b'-'))
                {
                    // `+`/`-` only inside exponents, `.` only inside numbers.
                    if matches!(b[i], b'+' | b'-') && !matches!(b[i - 1], b'e' | b'E') {
                        break;
                    }
                    if b[i] == b'.' && !c.is_ascii_digit() && c != b'-' {
                        break;
                    }
                    i += 1;
                }
            }
            _ => {
                n += 1;
                // One token per character, UTF-8 continuation bytes skipped.
                i += 1;
                while i < b.len() && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
            }
        }
    }
    n
}

/// Aliases and directives of a selection set, fragments expanded (each fragment's
/// counts computed once; cycles count as nothing, validation refuses them later).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub aliases: usize,
    pub directives: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
    }
}

struct Counter<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, Counts>,
    visiting: Vec<&'a str>,
}

impl<'a> Counter<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Counts {
        let mut c = Counts::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    c.aliases += usize::from(f.node.alias.is_some());
                    c.directives += f.node.directives.len();
                    c.add(self.selection_set(&f.node.selection_set.node));
                }
                Selection::InlineFragment(f) => {
                    c.directives += f.node.directives.len();
                    c.add(self.selection_set(&f.node.selection_set.node));
                }
                Selection::FragmentSpread(s) => {
                    c.directives += s.node.directives.len();
                    c.add(self.fragment(s.node.fragment_name.node.as_str()));
                }
            }
        }
        c
    }

    fn fragment(&mut self, name: &'a str) -> Counts {
        if let Some(c) = self.memo.get(name) {
            return *c;
        }
        if self.visiting.contains(&name) {
            return Counts::default();
        }
        let Some(def) = self.doc.fragments.get(name) else {
            return Counts::default();
        };
        self.visiting.push(name);
        let mut c = Counts {
            aliases: 0,
            directives: def.node.directives.len(),
        };
        c.add(self.selection_set(&def.node.selection_set.node));
        self.visiting.pop();
        self.memo.insert(name, c);
        c
    }
}

/// The depth of a selection set: fields nested in one another, fragments passed
/// through, `__schema`/`__type` subtrees left out. Cyclic fragments count as nothing
/// (validation refuses them later).
fn depth<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    visiting: &mut Vec<&'a str>,
) -> usize {
    let mut deepest = 0;
    for item in &set.items {
        let d = match &item.node {
            Selection::Field(f) => {
                let name = f.node.name.node.as_str();
                if name == "__schema" || name == "__type" {
                    0
                } else {
                    1 + depth(doc, &f.node.selection_set.node, visiting)
                }
            }
            Selection::InlineFragment(f) => depth(doc, &f.node.selection_set.node, visiting),
            Selection::FragmentSpread(s) => {
                let name = s.node.fragment_name.node.as_str();
                match doc.fragments.get(name) {
                    Some(def) if !visiting.contains(&name) => {
                        visiting.push(name);
                        let d = depth(doc, &def.node.selection_set.node, visiting);
                        visiting.pop();
                        d
                    }
                    _ => 0,
                }
            }
        };
        deepest = deepest.max(d);
    }
    deepest
}

/// The deepest operation of the document.
pub fn document_depth(doc: &ExecutableDocument) -> usize {
    doc.operations
        .iter()
        .map(|(_, op)| depth(doc, &op.node.selection_set.node, &mut Vec::new()))
        .max()
        .unwrap_or(0)
}

/// The largest alias and directive counts over the document's operations.
pub fn count_document(doc: &ExecutableDocument) -> Counts {
    let mut counter = Counter {
        doc,
        memo: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut worst = Counts::default();
    for (_, op) in doc.operations.iter() {
        let mut c = Counts {
            aliases: 0,
            directives: op.node.directives.len()
                + op.node
                    .variable_definitions
                    .iter()
                    .map(|v| v.node.directives.len())
                    .sum::<usize>(),
        };
        c.add(counter.selection_set(&op.node.selection_set.node));
        worst.aliases = worst.aliases.max(c.aliases);
        worst.directives = worst.directives.max(c.directives);
    }
    worst
}

/// Checks a document's text and parsed form against the limits.
pub fn check_tokens(limits: &Limits, query: &str) -> Result<(), ServerError> {
    if count_tokens(query, limits.max_tokens) > limits.max_tokens {
        return Err(refusal("tokens", limits.max_tokens, limits.expose));
    }
    Ok(())
}

pub fn check_document(limits: &Limits, doc: &ExecutableDocument) -> Result<(), ServerError> {
    if document_depth(doc) > limits.max_depth {
        return Err(refusal("depth", limits.max_depth, limits.expose));
    }
    let c = count_document(doc);
    if c.aliases > limits.max_aliases {
        return Err(refusal("aliases", limits.max_aliases, limits.expose));
    }
    if c.directives > limits.max_directives {
        return Err(refusal("directives", limits.max_directives, limits.expose));
    }
    Ok(())
}

/// The async-graphql extension that applies [`Limits`].
pub struct LimitsExtension(pub Limits);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(LimitsGuard(self.0))
    }
}

struct LimitsGuard(Limits);

#[async_trait::async_trait]
impl Extension for LimitsGuard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check_tokens(&self.0, query)?;
        let doc = next.run(ctx, query, variables).await?;
        check_document(&self.0, &doc)?;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(q: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(q).unwrap()
    }

    #[test]
    fn tokens_are_counted_like_the_lexer() {
        assert_eq!(count_tokens("{ a }", 100), 3);
        assert_eq!(count_tokens("{ a, b } # comment { } }", 100), 4);
        assert_eq!(count_tokens(r#"{ a(x: "s t { }", y: -1.5e+3) }"#, 100), 11);
        assert_eq!(count_tokens(r#"{ a(x: """ block "" { """) }"#, 100), 8);
        assert_eq!(count_tokens("query Q($v: [ID!]!) { ...F }", 100), 16);
        assert_eq!(count_tokens("{ a }", 1), 2, "stops counting past the limit");
    }

    #[test]
    fn aliases_and_directives_follow_fragments() {
        let d = doc("{ a: x b: y ...F ...F } fragment F on Q { c: z @skip(if: false) }");
        assert_eq!(
            count_document(&d),
            Counts {
                aliases: 4,
                directives: 2
            }
        );
        // A cycle does not hang the counter (validation reports it).
        let d = doc("{ ...A } fragment A on Q { a: x ...B } fragment B on Q { ...A }");
        assert_eq!(count_document(&d).aliases, 1);
    }

    #[test]
    fn depth_passes_through_fragments_and_skips_introspection() {
        assert_eq!(document_depth(&doc("{ a { b { c } } }")), 3);
        assert_eq!(
            document_depth(&doc("{ a { ...F } } fragment F on T { b { c } }")),
            3
        );
        assert_eq!(document_depth(&doc("{ a { ... on T { b } } }")), 2);
        assert_eq!(
            document_depth(&doc(
                "{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"
            )),
            0
        );
        assert_eq!(
            document_depth(&doc("{ a __type(name: \"X\") { fields { name } } }")),
            1
        );
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(check_document(&limits, &doc("{ a { b } }")).is_ok());
        assert!(check_document(&limits, &doc("{ a { b { c } } }")).is_err());
    }

    #[test]
    fn refusals_hide_numbers_in_production() {
        let limits = Limits {
            max_aliases: 1,
            ..Limits::default()
        };
        let d = doc("{ a: x b: y }");
        let err = check_document(&limits, &d).unwrap_err();
        assert_eq!(err.message, "the operation exceeds the aliases limit");
        let err = check_document(
            &Limits {
                expose: true,
                ..limits
            },
            &d,
        )
        .unwrap_err();
        assert!(err.message.contains("(1)"), "{}", err.message);
    }

    #[test]
    fn list_cost_saturates() {
        assert_eq!(list_cost(Some(20), 3), 61);
        assert_eq!(list_cost(Some(-5), 3), 4);
        assert_eq!(list_cost(Some(i64::MAX), usize::MAX), usize::MAX);
    }
}
