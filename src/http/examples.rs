//! Example pages served in development mode with `serve --sandbox`:
//! `/examples/petition`, a petition form in plain HTML and `fetch` that signs a demo
//! page of the sandbox through `submitAction`, shows each field error next to its
//! input, and the confirmation. Above the form, a thermometer that moves live (the
//! `pageProgress` subscription over WebSocket, `graphql-transport-ws` spoken by a few
//! lines of the page's own script, since the page loads nothing from elsewhere), and a
//! greeting for a visitor whose link carries an AKID (`?akid=…`, `pageContext`).
//!
//! The page holds a `submit` key made at start for this process only, limited to the
//! demo page (a real form holds its own `submit` key the same way: such keys live in
//! public pages). Its one script and one style block are allowed by their SHA-256 in
//! the Content-Security-Policy; nothing is loaded from another host.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::graphiql::{document_start, page_headers};
use super::AppState;

/// The sandbox page the example signs.
pub const DEMO_PAGE: &str = "save-the-bees";
/// Its title in the sandbox's seed data.
pub const DEMO_PAGE_TITLE: &str = "Save the Bees: Ban Neonicotinoids";
/// The name of the demo `submit` key.
pub const DEMO_KEY_NAME: &str = "demo-petition-form";

/// The petition example, built once at start.
pub struct PetitionExample {
    html: String,
    csp: HeaderValue,
}

fn json(s: &str) -> String {
    // `</` cannot end the script early once escaped.
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace("</", "<\\/")
}

fn sha256(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
}

const STYLE: &str = r#"
body { font: 16px/1.45 system-ui, sans-serif; margin: 0; background: #f6f4ee; color: #1d1d1b; }
main { max-width: 34rem; margin: 2rem auto; background: #fff; padding: 1.5rem 2rem 2rem; border-radius: 8px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
p.lede { margin: 0 0 1.25rem; color: #555; }
label { display: block; font-weight: 600; margin-top: .9rem; }
input { box-sizing: border-box; width: 100%; font: inherit; padding: .45rem .55rem; border: 1px solid #aaa; border-radius: 4px; margin-top: .2rem; }
input[aria-invalid="true"] { border-color: #b00020; background: #fff6f7; }
.error { color: #b00020; font-size: .9rem; margin: .2rem 0 0; min-height: 0; }
.error:empty { display: none; }
.row { display: flex; gap: 1rem; }
.row > div { flex: 1; }
button { margin-top: 1.4rem; font: inherit; font-weight: 600; padding: .6rem 1.4rem; border: 0; border-radius: 4px; background: #2d6a2e; color: #fff; cursor: pointer; }
button[disabled] { opacity: .6; cursor: wait; }
#form-error { margin-top: 1rem; }
#confirmation { padding: 1rem 1.2rem; background: #eaf5ea; border: 1px solid #2d6a2e; border-radius: 6px; }
#confirmation[hidden], form[hidden] { display: none; }
#meter { margin: 0 0 1rem; }
#meter .track { height: 14px; background: #e4e1d8; border-radius: 7px; overflow: hidden; }
#meter .bar { height: 100%; width: 0; background: #2d6a2e; transition: width .4s ease; }
#meter p { margin: .3rem 0 0; font-size: .95rem; }
#greeting { margin: 0 0 1rem; font-weight: 600; }
#greeting:empty { display: none; }
small { color: #666; }
"#;

/// The page's one script: reads the form, calls `submitAction`, shows the answer.
fn script(key: &str, page: &str) -> String {
    format!(
        r#"
(function () {{
  'use strict';
  var KEY = {key};
  var PAGE = {page};
  var MUTATION =
    'mutation Sign($input: SubmitActionInput!) {{' +
    ' submitAction(input: $input) {{' +
    '  status submissionId redirectUrl' +
    '  fieldErrors {{ field code message }}' +
    '  action {{ id type createdAt }}' +
    ' }} }}';
  var CONTEXT =
    'query Context($page: String!, $akid: String) {{' +
    ' pageContext(page: $page, akid: $akid) {{ recognized firstName missingFields' +
    '  page {{ title progress {{ current goal percent }} }} }} }}';
  var PROGRESS =
    'subscription Progress($page: String!) {{ pageProgress(page: $page) {{ current goal percent asOf }} }}';
  var meterBar = document.querySelector('#meter .bar');
  var meterText = document.getElementById('meter-text');
  var greeting = document.getElementById('greeting');

  function showProgress(p) {{
    if (!p) return;
    var current = Math.round(p.current);
    meterText.setAttribute('data-count', String(current));
    meterText.textContent = p.goal
      ? current.toLocaleString('en-US') + ' of ' + p.goal.toLocaleString('en-US') + ' signatures'
      : current.toLocaleString('en-US') + ' signatures';
    meterBar.style.width = Math.min(100, p.percent || 0) + '%';
  }}
  // One GraphQL operation over HTTP with the page's key; the answer as it came.
  function post(query, variables, name) {{
    return fetch('/graphql', {{
      method: 'POST',
      headers: {{
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json;q=0.9',
        authorization: 'Bearer ' + KEY,
      }},
      body: JSON.stringify({{ query: query, variables: variables, operationName: name }}),
    }});
  }}
  function graphql(query, variables, name) {{
    return post(query, variables, name).then(function (res) {{ return res.json(); }});
  }}
  // The visitor's context: the page's count, and a greeting when the link's AKID
  // names a member.
  var akid = new URLSearchParams(location.search).get('akid');
  graphql(CONTEXT, {{ page: PAGE, akid: akid }}, 'Context').then(function (body) {{
    var ctx = body && body.data && body.data.pageContext;
    if (!ctx) return;
    showProgress(ctx.page.progress);
    if (ctx.recognized && ctx.firstName) {{
      greeting.textContent = 'Welcome back, ' + ctx.firstName + '!';
      greeting.setAttribute('data-recognized', 'true');
      var email = document.getElementById('email');
      if (email && ctx.missingFields.indexOf('email') < 0) {{
        email.closest('div').hidden = true;
        form.setAttribute('data-akid', akid);
      }}
    }}
  }}).catch(function () {{}});
  // Live progress: graphql-transport-ws over one WebSocket, reconnecting when closed.
  function live() {{
    var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql', 'graphql-transport-ws');
    ws.onopen = function () {{
      ws.send(JSON.stringify({{ type: 'connection_init', payload: {{ authorization: 'Bearer ' + KEY }} }}));
    }};
    ws.onmessage = function (event) {{
      var msg = JSON.parse(event.data);
      if (msg.type === 'connection_ack') {{
        ws.send(JSON.stringify({{ id: '1', type: 'subscribe', payload: {{ query: PROGRESS, variables: {{ page: PAGE }}, operationName: 'Progress' }} }}));
      }} else if (msg.type === 'ping') {{
        ws.send(JSON.stringify({{ type: 'pong' }}));
      }} else if (msg.type === 'next' && msg.payload && msg.payload.data) {{
        showProgress(msg.payload.data.pageProgress);
        document.getElementById('meter').setAttribute('data-live', 'true');
      }}
    }};
    ws.onclose = function () {{ setTimeout(live, 3000); }};
  }}
  if (window.WebSocket) live();

  var form = document.getElementById('petition');
  var button = form.querySelector('button');
  var formError = document.getElementById('form-error');
  var confirmation = document.getElementById('confirmation');
  var nonce = Math.random().toString(36).slice(2) + Date.now().toString(36);

  function inputs() {{
    return Array.prototype.slice.call(form.querySelectorAll('input[name]'));
  }}
  function clearErrors() {{
    formError.textContent = '';
    inputs().forEach(function (el) {{
      el.removeAttribute('aria-invalid');
      var slot = document.getElementById('error-' + el.name);
      if (slot) slot.textContent = '';
    }});
  }}
  function showFieldError(err) {{
    var el = form.querySelector('input[name="' + err.field + '"]');
    var slot = el && document.getElementById('error-' + err.field);
    if (!slot) {{
      formError.textContent = (formError.textContent ? formError.textContent + ' ' : '') + err.message;
      return;
    }}
    el.setAttribute('aria-invalid', 'true');
    slot.textContent = slot.textContent ? slot.textContent + ' ' + err.message : err.message;
  }}
  // The same form content within one page view gets the same idempotency key, so a
  // double click or a retry after a lost answer makes one signature.
  function idempotencyKey(values) {{
    var text = nonce + '|' + JSON.stringify(values);
    if (window.crypto && crypto.subtle && window.TextEncoder) {{
      return crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)).then(function (buf) {{
        return Array.prototype.map.call(new Uint8Array(buf), function (b) {{
          return ('0' + b.toString(16)).slice(-2);
        }}).join('');
      }});
    }}
    return Promise.resolve(nonce + '-' + Math.random().toString(36).slice(2));
  }}

  form.addEventListener('submit', function (event) {{
    event.preventDefault();
    clearErrors();
    var input = {{ page: PAGE }};
    inputs().forEach(function (el) {{
      if (el.value.trim() !== '' && !el.closest('div').hidden) input[el.name] = el.value;
    }});
    if (form.getAttribute('data-akid')) input.akid = form.getAttribute('data-akid');
    button.disabled = true;
    idempotencyKey(input).then(function (k) {{
      input.idempotencyKey = k;
      return post(MUTATION, {{ input: input }}, 'Sign');
    }}).then(function (res) {{
      return res.json().catch(function () {{ return {{ errors: [{{ message: 'HTTP ' + res.status }}] }}; }});
    }}).then(function (body) {{
      var result = body && body.data && body.data.submitAction;
      if (!result) {{
        var msg = (body && body.errors && body.errors[0] && body.errors[0].message) || 'Something went wrong.';
        formError.textContent = 'Your signature was not sent: ' + msg;
        return;
      }}
      if (result.status === 'FAILED') {{
        result.fieldErrors.forEach(showFieldError);
        var first = form.querySelector('[aria-invalid="true"]');
        if (first) first.focus();
        return;
      }}
      var name = (input.firstName || '').trim();
      document.getElementById('thanks-name').textContent = name ? ', ' + name : '';
      document.getElementById('confirmation-detail').textContent = result.status === 'PROCESSED'
        ? 'Your signature is counted (action ' + result.action.id + ').'
        : 'Your signature is received and will be counted in a moment (submission ' + result.submissionId + ').';
      confirmation.setAttribute('data-status', result.status);
      form.hidden = true;
      confirmation.hidden = false;
      confirmation.focus();
    }}).catch(function (e) {{
      formError.textContent = 'Your signature was not sent (' + e.message + '); please try again.';
    }}).then(function () {{
      button.disabled = false;
    }});
  }});
}})();
"#,
        key = json(key),
        page = json(page),
    )
}

fn field(name: &str, label: &str, ty: &str, autocomplete: &str, hint: &str) -> String {
    let hint = if hint.is_empty() {
        String::new()
    } else {
        format!(" <small>{hint}</small>")
    };
    format!(
        r#"<div><label for="{name}">{label}{hint}</label>
<input id="{name}" name="{name}" type="{ty}" autocomplete="{autocomplete}" aria-describedby="error-{name}">
<p class="error" id="error-{name}" role="alert"></p></div>"#
    )
}

impl PetitionExample {
    /// The page for `key` (a `submit` key allowed on `page`).
    pub fn new(key: &str, page: &str, title: &str) -> PetitionExample {
        let script = script(key, page);
        let csp = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self' data:; form-action 'none'; \
             base-uri 'none'; frame-ancestors 'none'",
            sha256(&script),
            sha256(STYLE)
        );
        let title = title
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let html = format!(
            r##"{start}<style>{STYLE}</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="lede">Neonicotinoid pesticides are killing bees. Add your name.</p>
<div id="meter" aria-live="polite"><div class="track"><div class="bar"></div></div><p id="meter-text"></p></div>
<p id="greeting"></p>
<form id="petition" novalidate>
{email}
<div class="row">{first}{last}</div>
<div class="row">{zip}{phone}</div>
<p class="error" id="form-error" role="alert"></p>
<button type="submit">Sign the petition</button>
</form>
<div id="confirmation" tabindex="-1" hidden>
<h2>Thank you<span id="thanks-name"></span>!</h2>
<p id="confirmation-detail"></p>
</div>
<p><small>An example of <code>submitAction</code> served by actionkit-graphql in development mode; it signs the sandbox page <code>{page}</code>.</small></p>
</main>
<script>{script}</script>
</body>
</html>
"##,
            email = field("email", "Email", "email", "email", ""),
            first = field("firstName", "First name", "text", "given-name", ""),
            last = field("lastName", "Last name", "text", "family-name", ""),
            zip = field("zip", "Zip code", "text", "postal-code", ""),
            phone = field("phone", "Phone", "tel", "tel", "(optional)"),
            start = document_start(&format!("{title} · example petition")),
            page = page,
        );
        PetitionExample {
            html,
            csp: HeaderValue::from_str(&csp)
                .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
        }
    }
}

/// `GET /examples/petition`.
pub async fn petition(State(state): State<Arc<AppState>>) -> Response {
    let Some(page) = state.examples.as_deref() else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    (
        page_headers(page.csp.clone()),
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(page.html.clone()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_allows_exactly_the_inline_script_and_style() {
        let page = PetitionExample::new("akg_demo</script>", DEMO_PAGE, DEMO_PAGE_TITLE);
        let csp = page.csp.to_str().unwrap_or_default().to_owned();
        let script = script("akg_demo</script>", DEMO_PAGE);
        assert!(page.html.contains(&format!("<script>{script}</script>")));
        assert!(
            csp.contains(&format!("'sha256-{}'", sha256(&script))),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src 'sha256-{}'", sha256(STYLE))),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert!(
            !page.html.contains("https://"),
            "a third-party URL in the page"
        );
        // The key cannot close the script element.
        assert_eq!(page.html.matches("</script>").count(), 1);
        for name in ["email", "firstName", "lastName", "zip", "phone"] {
            assert!(
                page.html.contains(&format!(r#"id="error-{name}""#)),
                "{name}"
            );
        }
    }
}
