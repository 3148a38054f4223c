//! GraphiQL, served from files embedded in the binary (no CDN).

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// The query GraphiQL opens with: a demo user, their actions, pages and custom fields.
pub const EXAMPLE_QUERY: &str = r#"# Welcome to actionkit-graphql. Press the run button (or Ctrl-Enter).
# Open the docs (book icon, top left) to explore every type and field.
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

/// The Content-Security-Policy of the GraphiQL page: only our own scripts and styles
/// (GraphiQL sets inline styles, and the page has one inline bootstrap script).
pub const CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn page() -> Response {
    let query = serde_json::to_string(EXAMPLE_QUERY).unwrap_or_else(|_| "\"\"".into());
    let html = format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>actionkit-graphql · GraphiQL</title>
<link rel="stylesheet" href="/graphiql/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Loading GraphiQL…</div>
<script src="/graphiql/react.production.min.js"></script>
<script src="/graphiql/react-dom.production.min.js"></script>
<script src="/graphiql/graphiql.min.js"></script>
<script>
  const fetcher = GraphiQL.createFetcher({{ url: new URL('/graphql', location.href).toString() }});
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {{
      fetcher,
      defaultQuery: {query},
      defaultHeaders: JSON.stringify({{ Authorization: "Bearer <your API key, if the gateway requires one>" }}, null, 2),
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: 'headers',
    }}),
  );
</script>
</body>
</html>"##
    );
    ([(header::CONTENT_SECURITY_POLICY, CSP)], Html(html)).into_response()
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

pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}
pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}
pub async fn react() -> Response {
    asset(REACT, "text/javascript; charset=utf-8")
}
pub async fn react_dom() -> Response {
    asset(REACT_DOM, "text/javascript; charset=utf-8")
}
