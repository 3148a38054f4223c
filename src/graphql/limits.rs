//! Operation limits that async-graphql does not have built in, checked on the
//! document itself before anything walks it with fragments expanded: tokens (counted
//! before the document is parsed), then one pass over the parsed document that
//! computes each fragment's size **once** (memoised, saturating) and from it the
//! operation's expanded fields (`__typename` included), fragment spreads, depth
//! (introspection subtrees left out: GraphiQL's standard `__schema` query is 15
//! levels deep; introspection is off in production), aliases and directives.
//!
//! Why before everything: `{ ...F0 } fragment F0 on Query { ...F1 ...F1 } ...
//! fragment F24 on Query { __typename }` is under 1 KB and expands to 2^24 fields.
//! async-graphql's own passes (its recursion-depth check, validation, execution) all
//! walk spreads expanded, so the HTTP handler runs [`check_tokens`] and
//! [`check_document`] on the parsed document before handing it to the schema; the
//! extension of [`super::subscription_checks`] applies them to subscriptions, which
//! reach the schema through the WebSocket endpoint (the HTTP handler's schema has no
//! extensions).
//! After them every later pass is bounded by `max_fields` + `max_fragment_spreads`.
//!
//! Complexity uses async-graphql's own validation (`limit_complexity`; list fields
//! weighted by their length through [`list_cost`]); `__typename`, which that pass
//! skips, is counted by `upstream_cost.rs`. Every refusal happens before execution,
//! so it costs no upstream call and is answered as a request error.
//!
//! In production the messages name the rule, never the configured number.

use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ErrorExtensionValues, ServerError};

use super::error::ErrorCode;

/// The limits an operation must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fields nested in one another, introspection subtrees not counted.
    pub max_depth: usize,
    pub max_tokens: usize,
    pub max_aliases: usize,
    pub max_directives: usize,
    /// Fields of the document with fragments expanded, `__typename` included.
    pub max_fields: usize,
    /// Fragment spreads of the document with fragments expanded.
    pub max_fragment_spreads: usize,
    /// Whether messages may say the configured number (development).
    pub expose: bool,
}

impl Default for Limits {
    /// GraphQL Armor's defaults (tokens 1000, aliases 15, directives 50), and room for
    /// any document of 1000 tokens that does not multiply itself through fragments.
    fn default() -> Self {
        Limits {
            max_depth: 8,
            max_tokens: 1000,
            max_aliases: 15,
            max_directives: 50,
            max_fields: 2000,
            max_fragment_spreads: 500,
            expose: false,
        }
    }
}

/// What the HTTP handler checks before it hands an operation to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationLimits {
    /// The document's own limits ([`check_tokens`], [`check_document`]).
    pub document: Limits,
    /// Fields resolved, lists multiplied, `__typename` included
    /// (`upstream_cost.rs`); the same number as async-graphql's complexity limit.
    pub max_complexity: u64,
    /// ActionKit calls the operation may cause, estimated (`upstream_cost.rs`).
    pub max_upstream_calls: u64,
}

impl Default for OperationLimits {
    fn default() -> Self {
        OperationLimits {
            document: Limits::default(),
            max_complexity: 10_000,
            max_upstream_calls: 200,
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

/// Why a document is refused before it runs: a limit (named in
/// `extensions.limit`), or a fragment that spreads itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// The rule, when a limit refused the document.
    pub limit: Option<&'static str>,
}

impl Refusal {
    fn limit(rule: &'static str, limit: usize, expose: bool) -> Refusal {
        let message = if expose {
            format!("the operation exceeds the {rule} limit ({limit})")
        } else {
            format!("the operation exceeds the {rule} limit")
        };
        Refusal {
            message,
            limit: Some(rule),
        }
    }

    /// A limit other than the ones of [`Limits`] (complexity, upstream calls).
    pub fn over(rule: &'static str, limit: u64, expose: bool) -> Refusal {
        Refusal::limit(rule, usize::try_from(limit).unwrap_or(usize::MAX), expose)
    }

    /// As a GraphQL error: code `BAD_USER_INPUT`, no location (the limit is the
    /// document's, not a place in it).
    pub fn into_server_error(self) -> ServerError {
        let mut err = ServerError::new(self.message, None);
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", ErrorCode::BadUserInput.as_str());
        if let Some(rule) = self.limit {
            ext.set("limit", rule);
        }
        err.extensions = Some(ext);
        err
    }
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

/// The size of a selection set (or of a whole document) with fragments expanded.
/// Every count saturates: a document that would overflow is simply over every limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Size {
    /// Fields, `__typename` and introspection included.
    pub fields: u64,
    /// Fragment spreads.
    pub spreads: u64,
    /// Fields nested in one another, introspection subtrees left out.
    pub depth: u64,
    pub aliases: u64,
    pub directives: u64,
}

impl Size {
    /// Adds a sibling's size (counts add up, depth is the deeper one).
    fn add(&mut self, other: Size) {
        self.fields = self.fields.saturating_add(other.fields);
        self.spreads = self.spreads.saturating_add(other.spreads);
        self.depth = self.depth.max(other.depth);
        self.aliases = self.aliases.saturating_add(other.aliases);
        self.directives = self.directives.saturating_add(other.directives);
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Sizes selection sets, each fragment once.
struct Sizer<'a> {
    doc: &'a ExecutableDocument,
    memo: HashMap<&'a str, Size>,
    /// Fragments being sized, to find cycles.
    visiting: Vec<&'a str>,
}

impl<'a> Sizer<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<Size, Refusal> {
        let mut size = Size::default();
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    let f = &f.node;
                    let inner = self.selection_set(&f.selection_set.node)?;
                    let name = f.name.node.as_str();
                    let depth = if name == "__schema" || name == "__type" {
                        0
                    } else {
                        inner.depth.saturating_add(1)
                    };
                    size.add(Size {
                        fields: inner.fields.saturating_add(1),
                        spreads: inner.spreads,
                        depth,
                        aliases: inner.aliases.saturating_add(u64::from(f.alias.is_some())),
                        directives: inner.directives.saturating_add(count(f.directives.len())),
                    });
                }
                Selection::InlineFragment(f) => {
                    let mut inner = self.selection_set(&f.node.selection_set.node)?;
                    inner.directives = inner
                        .directives
                        .saturating_add(count(f.node.directives.len()));
                    size.add(inner);
                }
                Selection::FragmentSpread(s) => {
                    let mut inner = self.fragment(s.node.fragment_name.node.as_str())?;
                    inner.spreads = inner.spreads.saturating_add(1);
                    inner.directives = inner
                        .directives
                        .saturating_add(count(s.node.directives.len()));
                    size.add(inner);
                }
            }
        }
        Ok(size)
    }

    /// A fragment's size, computed the first time it is spread and remembered. An
    /// unknown fragment counts as empty (validation reports it).
    fn fragment(&mut self, name: &'a str) -> Result<Size, Refusal> {
        if let Some(size) = self.memo.get(name) {
            return Ok(*size);
        }
        if self.visiting.contains(&name) {
            return Err(Refusal {
                message: format!("Cannot spread fragment \"{name}\" within itself."),
                limit: None,
            });
        }
        let Some((key, def)) = self.doc.fragments.get_key_value(name) else {
            return Ok(Size::default());
        };
        self.visiting.push(key.as_str());
        let mut size = self.selection_set(&def.node.selection_set.node)?;
        self.visiting.pop();
        size.directives = size
            .directives
            .saturating_add(count(def.node.directives.len()));
        self.memo.insert(key.as_str(), size);
        Ok(size)
    }
}

/// The size of a document's operations, fragments expanded: fields and spreads summed
/// over the operations (what a pass over the whole document visits), depth, aliases
/// and directives of the largest operation. `Err` for a fragment cycle.
pub fn document_size(doc: &ExecutableDocument) -> Result<Size, Refusal> {
    let mut sizer = Sizer {
        doc,
        memo: HashMap::new(),
        visiting: Vec::new(),
    };
    let mut total = Size::default();
    for (_, op) in doc.operations.iter() {
        let op = &op.node;
        let mut size = sizer.selection_set(&op.selection_set.node)?;
        let declared = op.directives.len()
            + op.variable_definitions
                .iter()
                .map(|v| v.node.directives.len())
                .sum::<usize>();
        size.directives = size.directives.saturating_add(count(declared));
        total.fields = total.fields.saturating_add(size.fields);
        total.spreads = total.spreads.saturating_add(size.spreads);
        total.depth = total.depth.max(size.depth);
        total.aliases = total.aliases.max(size.aliases);
        total.directives = total.directives.max(size.directives);
    }
    Ok(total)
}

/// Checks a document's text against the token limit (before parsing).
pub fn check_tokens(limits: &Limits, query: &str) -> Result<(), Refusal> {
    if count_tokens(query, limits.max_tokens) > limits.max_tokens {
        return Err(Refusal::limit("tokens", limits.max_tokens, limits.expose));
    }
    Ok(())
}

/// Checks a parsed document against the limits, in time linear in its text.
pub fn check_document(limits: &Limits, doc: &ExecutableDocument) -> Result<Size, Refusal> {
    let size = document_size(doc)?;
    let over = |value: u64, limit: usize| value > count(limit);
    let checks = [
        ("depth", size.depth, limits.max_depth),
        ("aliases", size.aliases, limits.max_aliases),
        ("directives", size.directives, limits.max_directives),
        ("fields", size.fields, limits.max_fields),
        (
            "fragment spreads",
            size.spreads,
            limits.max_fragment_spreads,
        ),
    ];
    for (rule, value, limit) in checks {
        if over(value, limit) {
            return Err(Refusal::limit(rule, limit, limits.expose));
        }
    }
    Ok(size)
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
        let size = document_size(&d).unwrap();
        assert_eq!((size.aliases, size.directives), (4, 2));
        assert_eq!((size.fields, size.spreads), (4, 2));
    }

    #[test]
    fn fragment_cycles_are_refused_not_followed() {
        let d = doc("{ ...A } fragment A on Q { a: x ...B } fragment B on Q { ...A }");
        let err = document_size(&d).unwrap_err();
        assert!(err.message.contains("within itself"), "{}", err.message);
        assert_eq!(err.limit, None);
    }

    /// `{ ...F0 }` with `F<i> { ...F<i+1> ...F<i+1> }` down to `F<n> { __typename }`.
    fn fan_out(levels: usize) -> String {
        let mut q = String::from("{ ...F0 }\n");
        for i in 0..levels {
            q += &format!("fragment F{i} on Query {{ ...F{n} ...F{n} }}\n", n = i + 1);
        }
        q += &format!("fragment F{levels} on Query {{ __typename }}\n");
        q
    }

    #[test]
    fn fragment_fan_out_is_sized_once_per_fragment() {
        let q = fan_out(24);
        assert!(q.len() < 1024, "{} bytes", q.len());
        let started = std::time::Instant::now();
        let size = document_size(&doc(&q)).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
        assert_eq!(size.fields, 1 << 24, "__typename counts");
        assert_eq!(size.spreads, (1 << 25) - 1);
        let err = check_document(&Limits::default(), &doc(&q)).unwrap_err();
        assert_eq!(err.limit, Some("fields"));
        // Deep enough to overflow u64 if it were not saturating.
        let size = document_size(&doc(&fan_out(200))).unwrap();
        assert_eq!(size.fields, u64::MAX);
        // With the field limit out of the way, the spread limit still holds.
        let only_spreads = "{ ...A } fragment A on Query { ...B ...B ...B } \
             fragment B on Query { ...C ...C ...C } fragment C on Query { ...D ...D ...D } \
             fragment D on Query { ...E ...E ...E } fragment E on Query { ...G ...G ...G } \
             fragment G on Query { ...H ...H ...H } fragment H on Query { __typename }";
        let limits = Limits {
            max_fields: usize::MAX,
            ..Limits::default()
        };
        let err = check_document(&limits, &doc(only_spreads)).unwrap_err();
        assert_eq!(err.limit, Some("fragment spreads"));
    }

    #[test]
    fn limit_refusals_carry_no_location() {
        let err = Refusal::limit("fields", 2, false).into_server_error();
        assert!(err.locations.is_empty());
        let ext = serde_json::to_value(&err).unwrap();
        assert_eq!(ext["extensions"]["code"], "BAD_USER_INPUT");
        assert_eq!(ext["extensions"]["limit"], "fields");
        assert!(ext.get("locations").is_none(), "{ext}");
    }

    #[test]
    fn depth_passes_through_fragments_and_skips_introspection() {
        let depth = |q: &str| document_size(&doc(q)).unwrap().depth;
        assert_eq!(depth("{ a { b { c } } }"), 3);
        assert_eq!(depth("{ a { ...F } } fragment F on T { b { c } }"), 3);
        assert_eq!(depth("{ a { ... on T { b } } }"), 2);
        assert_eq!(
            depth("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }"),
            0
        );
        assert_eq!(depth("{ a __type(name: \"X\") { fields { name } } }"), 1);
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
