//! GraphiQL, served from files embedded in the binary (no CDN).

use std::sync::OnceLock;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The query GraphiQL opens with: a demo user, their actions, pages and custom fields.
pub const EXAMPLE_QUERY: &str = r#"# Run: ▶ or Ctrl-Enter. Docs: book icon.
# API key: Headers tab below. Left as
# it is, no key is sent.
query UserWithActions {
  user(id: "1") {
    firstName
    lastName
    email
    actions(first: 5) {
      totalCount
      nodes {
        type
        createdAt
        page { name title }
        customFields { name value }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"#;

const CSS: &str = include_str!("../../assets/graphiql/graphiql.min.css");
const JS: &str = include_str!("../../assets/graphiql/graphiql.min.js");
const REACT: &str = include_str!("../../assets/graphiql/react.production.min.js");
const REACT_DOM: &str = include_str!("../../assets/graphiql/react-dom.production.min.js");

/// The introspection GraphiQL uses for its docs explorer and completion, in two steps
/// that each stay within the gateway's default depth limit (8).
///
/// GraphiQL's own query (graphql-js `getIntrospectionQuery`) is 15 fields deep, mostly
/// for type references followed through up to 9 wrappers, and the depth limit refuses
/// it. Here type references are followed 3 wrappers deep, enough for every type in our
/// schema (the deepest is `[X!]!`). Field arguments sit one level deeper than the rest
/// under `__schema { types }`, so step 1 leaves them out and step 2 asks for them per
/// type through `__type(name:)`, which is one level shallower ([`ARGS_SELECTION`],
/// a few types per request, within the alias limit). Tests check the depths against
/// the default limits and the wrappers against the schema.
pub(super) const INTROSPECTION_QUERY: &str = "query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations isRepeatable args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name } } }
}
";

/// Step 2: the arguments of one type's fields, as `tN: __type(name: "…") { … }`.
pub(super) const ARGS_SELECTION: &str =
    "fields(includeDeprecated: true) { name args { ...InputValue } }";

/// The fragments step 2 uses.
pub(super) const ARGS_FRAGMENTS: &str = "
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name } } }
}
";

/// Types per step-2 request (aliases; the gateway allows 15 by default).
const ARGS_TYPES_PER_REQUEST: usize = 10;

/// What the headers editor holds for `Authorization` until someone pastes a key.
///
/// The headers editor is plain JSON (no comments), so the slot has to be a real entry.
/// The page's fetch wrapper leaves the header out while it still holds this
/// placeholder (or nothing, or a bare `Bearer`): with no API keys configured requests
/// just work, and the placeholder never reaches the gateway as a wrong credential.
pub(super) const AUTHORIZATION_PLACEHOLDER: &str = "Bearer <your API key>";

/// The page's one inline script: the fetcher and the GraphiQL element.
fn bootstrap_script() -> String {
    // `</` cannot end the script early once escaped.
    let json = |s: &str| {
        serde_json::to_string(s)
            .unwrap_or_else(|_| "\"\"".into())
            .replace("</", "<\\/")
    };
    let headers = serde_json::to_string_pretty(
        &serde_json::json!({ "Authorization": AUTHORIZATION_PLACEHOLDER }),
    )
    .unwrap_or_else(|_| "{}".into());
    format!(
        r#"
(function () {{
  var PLACEHOLDER = {placeholder};
  var INTROSPECTION = {introspection};
  var ARGS_SELECTION = {args_selection};
  var ARGS_FRAGMENTS = {args_fragments};
  var ARGS_PER_REQUEST = {args_per_request};
  // Drops an Authorization header that is still the placeholder, empty, or a bare
  // "Bearer", so the preset slot never sends a wrong credential.
  function withoutPlaceholder(headers) {{
    var out = {{}};
    Object.keys(headers || {{}}).forEach(function (name) {{
      var value = String(headers[name]);
      if (name.toLowerCase() === 'authorization') {{
        var v = value.trim();
        if (v === '' || v === PLACEHOLDER || /^bearer$/i.test(v)) return;
      }}
      out[name] = value;
    }});
    return out;
  }}
  function gatewayFetch(url, init) {{
    return window.fetch(url, Object.assign({{}}, init, {{ headers: withoutPlaceholder(init && init.headers) }}));
  }}
  var url = new URL('/graphql', location.href).toString();
  var accept = 'application/graphql-response+json, application/json;q=0.9';
  var fetcher = GraphiQL.createFetcher({{
    url: url,
    enableIncrementalDelivery: false,
    headers: {{ accept: accept }},
    fetch: gatewayFetch,
    // GraphiQL's own introspection query is deeper than the gateway's depth limit;
    // this asks the same in two shallower steps (see INTROSPECTION_QUERY).
    schemaFetcher: function (params, opts) {{
      function post(query, operationName) {{
        return gatewayFetch(url, {{
          method: 'POST',
          headers: Object.assign({{ 'content-type': 'application/json', accept: accept }}, opts && opts.headers),
          body: JSON.stringify({{ query: query, operationName: operationName }}),
        }}).then(function (res) {{ return res.json(); }});
      }}
      return post(INTROSPECTION, 'IntrospectionQuery').then(function (result) {{
        if (!result || !result.data || result.errors) return result;
        var types = result.data.__schema.types.filter(function (t) {{ return t.fields && t.fields.length; }});
        types.forEach(function (t) {{ t.fields.forEach(function (f) {{ f.args = []; }}); }});
        var chunks = [];
        for (var i = 0; i < types.length; i += ARGS_PER_REQUEST) chunks.push(types.slice(i, i + ARGS_PER_REQUEST));
        return chunks.reduce(function (done, chunk) {{
          return done.then(function (failed) {{
            if (failed) return failed;
            var query = 'query IntrospectionArguments {{' + chunk.map(function (t, j) {{
              return ' t' + j + ': __type(name: ' + JSON.stringify(t.name) + ') {{ ' + ARGS_SELECTION + ' }}';
            }}).join('') + ' }}' + ARGS_FRAGMENTS;
            return post(query, 'IntrospectionArguments').then(function (res) {{
              if (!res || !res.data || res.errors) return res;
              chunk.forEach(function (t, j) {{
                var byName = {{}};
                ((res.data['t' + j] || {{}}).fields || []).forEach(function (f) {{ byName[f.name] = f.args; }});
                t.fields.forEach(function (f) {{ f.args = byName[f.name] || []; }});
              }});
              return null;
            }});
          }});
        }}, Promise.resolve(null)).then(function (failed) {{ return failed || result; }});
      }});
    }},
  }});
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {{
      fetcher: fetcher,
      defaultQuery: {query},
      defaultHeaders: {headers},
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers',
    }}),
  );
}})();
"#,
        placeholder = json(AUTHORIZATION_PLACEHOLDER),
        query = json(EXAMPLE_QUERY),
        headers = json(&headers),
        introspection = json(INTROSPECTION_QUERY),
        args_selection = json(ARGS_SELECTION),
        args_fragments = json(ARGS_FRAGMENTS),
        args_per_request = ARGS_TYPES_PER_REQUEST,
    )
}

/// The page and its Content-Security-Policy, built once. Scripts: our own files and
/// the one inline bootstrap script, allowed by its SHA-256 (no `'unsafe-inline'`).
/// Styles keep `'unsafe-inline'`: GraphiQL and CodeMirror set inline styles.
/// The start of a page the gateway serves, up to its own `<head>` content: doctype,
/// language, charset, viewport, `title` (HTML already) and an empty icon (no request
/// for `/favicon.ico`).
pub(super) fn document_start(title: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
"#
    )
}

/// The headers of a page the gateway serves: its Content-Security-Policy, no MIME
/// sniffing, no referrer.
pub(super) fn page_headers(csp: HeaderValue) -> [(HeaderName, HeaderValue); 3] {
    [
        (header::CONTENT_SECURITY_POLICY, csp),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ]
}

struct Page {
    html: String,
    csp: HeaderValue,
}

fn built_page() -> &'static Page {
    static PAGE: OnceLock<Page> = OnceLock::new();
    PAGE.get_or_init(|| {
        let script = bootstrap_script();
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&script));
        let csp = format!(
            "default-src 'self'; script-src 'self' 'sha256-{hash}'; \
             style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
             connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'none'"
        );
        let html = format!(
            r##"{start}<link rel="stylesheet" href="/graphiql/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/react.production.min.js"></script>
<script src="/graphiql/react-dom.production.min.js"></script>
<script src="/graphiql/graphiql.min.js"></script>
<script>{script}</script>
</body>
</html>"##,
            start = document_start("actionkit-graphql · GraphiQL"),
        );
        Page {
            html,
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
        }
    })
}

pub(super) async fn page() -> Response {
    let page = built_page();
    (page_headers(page.csp.clone()), Html(page.html.as_str())).into_response()
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}
pub(super) async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}
pub(super) async fn react() -> Response {
    asset(REACT, "text/javascript; charset=utf-8")
}
pub(super) async fn react_dom() -> Response {
    asset(REACT_DOM, "text/javascript; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The depth async-graphql's `limit_depth` measures: fields nested, fragments inlined.
    fn depth(query: &str) -> usize {
        use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
        fn walk(doc: &ExecutableDocument, set: &SelectionSet, level: usize) -> usize {
            set.items
                .iter()
                .map(|item| match &item.node {
                    Selection::Field(f) => walk(doc, &f.node.selection_set.node, level + 1),
                    Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, level),
                    Selection::FragmentSpread(s) => doc
                        .fragments
                        .get(&s.node.fragment_name.node)
                        .map_or(level, |f| walk(doc, &f.node.selection_set.node, level)),
                })
                .max()
                .unwrap_or(level)
        }
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        doc.operations
            .iter()
            .map(|(_, op)| walk(&doc, &op.node.selection_set.node, 0))
            .max()
            .unwrap_or(0)
    }

    /// Step 2 for `n` types, as the page builds it.
    fn args_query(n: usize) -> String {
        let aliases: String = (0..n)
            .map(|j| format!(" t{j}: __type(name: \"T{j}\") {{ {ARGS_SELECTION} }}"))
            .collect();
        format!("query IntrospectionArguments {{{aliases} }}{ARGS_FRAGMENTS}")
    }

    #[test]
    fn graphiql_introspection_fits_the_default_limits() {
        assert_eq!(depth("{ a { b c { d } } e }"), 3);
        let config = crate::config::Config::default();
        let settings = crate::graphql::GraphqlSettings::default();
        let limit = config.graphql.max_depth.min(settings.max_depth);
        // If this fails, the depth limit went below what GraphiQL's docs explorer needs:
        // GraphiQL gets "Query is nested too deep" and shows no schema.
        for (step, query) in [
            ("step 1", INTROSPECTION_QUERY.to_owned()),
            ("step 2", args_query(ARGS_TYPES_PER_REQUEST)),
        ] {
            assert!(
                depth(&query) <= limit,
                "GraphiQL's introspection {step} is {} deep, the default limit {limit}",
                depth(&query)
            );
            // Nor may the other document limits (fields, spreads, ...) refuse it.
            let doc = async_graphql::parser::parse_query(&query).expect("parses");
            let limits = crate::graphql::limits::Limits {
                max_depth: limit,
                ..settings.limits
            };
            if let Err(e) = crate::graphql::limits::check_document(&limits, &doc) {
                panic!("GraphiQL's introspection {step} is refused: {}", e.message);
            }
        }
        assert!(ARGS_TYPES_PER_REQUEST <= settings.limits.max_aliases);
        let q = args_query(ARGS_TYPES_PER_REQUEST);
        assert!(async_graphql::parser::parse_query(&q).is_ok(), "{q}");
    }

    #[test]
    fn the_csp_allows_exactly_the_inline_script() {
        let page = built_page();
        let script = bootstrap_script();
        assert!(page.html.contains(&format!("<script>{script}</script>")));
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&script));
        let csp = page.csp.to_str().expect("ascii");
        assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
        assert!(
            !page.html.contains("https://"),
            "a third-party URL in the page"
        );
    }
}
