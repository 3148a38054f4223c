//! Routing a `/rest/v1/` request that passed the checks to its resource: the root
//! listing, schemas, lists, details, `userpublic`, and the writes.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::pages::page_write;
use super::respond::{bad_request, empty, json_resp, not_allowed};
use super::writes::{create, delete, update};
use super::Ctx;
use crate::sandbox::query;
use crate::sandbox::resources::{self, Res};

pub(super) fn dispatch(
    ctx: &Ctx,
    method: &Method,
    segs: &[String],
    pairs: &[(String, String)],
    body: &[u8],
) -> Response {
    let segs: Vec<&str> = segs.iter().map(|s| s.as_str()).collect();
    // HEAD is answered as GET (hyper sends no body for it).
    let method = if *method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    if segs.is_empty() {
        if method != Method::GET {
            return not_allowed(&["get"]);
        }
        let mut m = Map::new();
        for r in Res::all() {
            let n = r.name();
            m.insert(
                n.clone(),
                json!({"list_endpoint": format!("/rest/v1/{n}/"), "schema": format!("/rest/v1/{n}/schema/")}),
            );
        }
        m.insert(
            "userpublic".into(),
            json!({"list_endpoint": "/rest/v1/userpublic/", "schema": "/rest/v1/userpublic/schema/"}),
        );
        return json_resp(StatusCode::OK, &Value::Object(m));
    }
    if segs[0] == "userpublic" {
        return userpublic(ctx, method, &segs);
    }
    let Some(res) = Res::parse(segs[0]) else {
        return empty(StatusCode::NOT_FOUND);
    };
    match segs.len() {
        1 => {
            let m = method.as_str().to_ascii_lowercase();
            if !res.list_methods().contains(&m.as_str()) {
                return not_allowed(res.list_methods());
            }
            match *method {
                Method::GET => list(ctx, res, pairs),
                Method::POST => create(ctx, res, body),
                _ => not_allowed(res.list_methods()),
            }
        }
        2 if segs[1] == "schema" => {
            if method != Method::GET {
                return not_allowed(&["get"]);
            }
            json_resp(
                StatusCode::OK,
                &resources::schema(res, ctx.app.config.filters),
            )
        }
        2 => {
            let st = ctx.app.read();
            let id = match res {
                Res::AllowedUserField => st
                    .allowed_user_fields
                    .iter()
                    .position(|f| f.name == segs[1])
                    .map(|i| i as u32 + 1),
                _ => segs[1].parse::<u32>().ok(),
            };
            drop(st);
            let m = method.as_str().to_ascii_lowercase();
            if !res.detail_methods().contains(&m.as_str()) {
                return not_allowed(res.detail_methods());
            }
            let Some(id) = id else {
                // PUT to a page id that does not exist is a create (Tastypie), see `page_write`.
                if matches!(res, Res::Page(Some(_))) && *method == Method::PUT {
                    return page_write(ctx, res, None, body, true);
                }
                return empty(StatusCode::NOT_FOUND);
            };
            match *method {
                Method::GET => {
                    let st = ctx.app.read();
                    if !resources::exists(&st, res, id) {
                        return empty(StatusCode::NOT_FOUND);
                    }
                    json_resp(StatusCode::OK, &resources::render(&st, res, id))
                }
                Method::PUT | Method::PATCH => update(ctx, res, id, *method == Method::PUT, body),
                Method::DELETE => delete(ctx, res, id),
                _ => not_allowed(res.detail_methods()),
            }
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

pub(super) fn list(ctx: &Ctx, res: Res, pairs: &[(String, String)]) -> Response {
    let q = match query::parse_list_query(res, ctx.app.config.filters, pairs) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let st = ctx.app.read();
    let (ids, total) = query::run(&st, res, &q);
    let objects = ids
        .iter()
        .map(|id| resources::render(&st, res, *id))
        .collect();
    json_resp(StatusCode::OK, &query::envelope(res, &q, total, objects))
}

pub(super) fn userpublic(ctx: &Ctx, method: &Method, segs: &[&str]) -> Response {
    if method != Method::GET {
        return not_allowed(&["get"]);
    }
    let [_, akid] = segs else {
        return empty(StatusCode::NOT_FOUND);
    };
    let st = ctx.app.read();
    match st.verify_akid(akid) {
        Some((_, user)) => json_resp(
            StatusCode::OK,
            &resources::render_userpublic(&st, user, akid),
        ),
        None => empty(StatusCode::NOT_FOUND),
    }
}
