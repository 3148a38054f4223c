//! `GET /progress/?page=<name>` (also `/progress/<name>/`): a page's count toward its
//! goal, public as on ActionKit (reference `actionkit-processing.md` §2): `{"goal",
//! "goal_type", "total": {"actions", "dollars", "money"}}`, or JSONP with
//! `callback=<identifier>`. Actions are the page's actions not deleted; `dollars` and
//! `money` the sum of its donation amounts. An unknown page: 404, empty body.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::respond::{empty, json_resp, to_json_bytes};
use super::App;
use crate::sandbox::query;

pub(super) fn answer(app: &App, path: &str, raw_query: Option<&str>) -> Response {
    let pairs = query::parse_pairs(raw_query);
    let from_path = path
        .trim_start_matches("/progress")
        .trim_matches('/')
        .to_string();
    let name = match pairs.iter().find(|(k, _)| k == "page") {
        Some((_, v)) => v.clone(),
        None => percent_encoding::percent_decode_str(&from_path)
            .decode_utf8_lossy()
            .into_owned(),
    };
    let st = app.read();
    let Some(&page_id) = st.page_name_index.get(name.as_str()) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let Some(page) = st.page(page_id) else {
        return empty(StatusCode::NOT_FOUND);
    };
    let mut actions = 0u64;
    let mut cents = 0u64;
    for &id in st
        .page_actions
        .get((page_id as usize).wrapping_sub(1))
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(a) = st.action(id) {
            if !a.deleted {
                actions += 1;
                cents += u64::from(a.amount_cents);
            }
        }
    }
    let dollars = cents as f64 / 100.0;
    let body = json!({
        "goal": page.goal,
        "goal_type": st.sym(page.goal_type),
        "total": {"actions": actions, "dollars": dollars, "money": dollars},
    });
    match pairs.iter().find(|(k, _)| k == "callback") {
        Some((_, cb))
            if !cb.is_empty()
                && cb.len() <= 64
                && cb
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'$') =>
        {
            let mut out = cb.as_bytes().to_vec();
            out.push(b'(');
            out.extend(to_json_bytes(&body));
            out.extend(b");");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/javascript")],
                out,
            )
                .into_response()
        }
        _ => json_resp(StatusCode::OK, &body),
    }
}
