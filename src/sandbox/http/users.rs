//! Users: `POST /user/`, PUT/PATCH `/user/<id>/`, and email syntax.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::body::{parse_body, parse_fields, string_of};
use super::respond::{empty, json_resp, validation, with_location, write_answer};
use super::RequestFacts;
use crate::sandbox::store::*;

pub(super) fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((l, d)) => {
            !l.is_empty()
                && d.contains('.')
                && !d.starts_with('.')
                && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// PUT/PATCH `/user/<id>/` (`id` Some) or POST `/user/` (`id` None).
pub(super) fn user_write(ctx: &RequestFacts, id: Option<u32>, body: &[u8], put: bool) -> Response {
    let r = "user";
    if let Some(id) = id {
        if ctx.app.read().user(id).is_none() {
            return empty(StatusCode::NOT_FOUND);
        }
    }
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let mut strs: Vec<(usize, String)> = Vec::new();
    for (k, v) in &m {
        if let Some(i) = user_str_index(k) {
            match string_of(r, k, v) {
                Ok(s) => strs.push((i, s)),
                Err(resp) => return resp,
            }
        }
    }
    let email = match m.get("email") {
        Some(v) => match string_of(r, "email", v) {
            Ok(e) if valid_email(&e) => Some(e),
            Ok(_) => return validation(r, "email", "Enter a valid email address."),
            Err(resp) => return resp,
        },
        None if id.is_none() => return validation(r, "email", "This field is required."),
        None => None,
    };
    let fields = match m.get("fields") {
        Some(v) => match parse_fields(r, v) {
            Ok(f) => Some(f),
            Err(resp) => return resp,
        },
        None => None,
    };
    let mut st = ctx.app.write();
    if let Some(e) = &email {
        if let Some(owner) = st.user_by_email(e) {
            if Some(owner) != id {
                let resp = json_resp(
                    StatusCode::CONFLICT,
                    &json!({"errors": {"email": [format!("Conflict on unique key 'email' for value '{e}'")]}}),
                );
                return with_location(resp, &format!("{}/rest/v1/user/{owner}/", ctx.base));
            }
        }
    }
    let now = now_micros() / 1_000_000;
    let uid = match id {
        Some(id) => id,
        None => {
            let empty_sym = st.strings.intern("");
            let subscribed = st.strings.intern("subscribed");
            let mut s = [empty_sym; 16];
            if let Some(i) = user_str_index("subscription_status") {
                s[i] = subscribed;
            }
            st.push_user(User::created(
                email.clone().unwrap_or_default().into(),
                s,
                now,
            ))
        }
    };
    let syms: Vec<(usize, Sym)> = strs
        .iter()
        .map(|(i, s)| (*i, st.strings.intern(s)))
        .collect();
    let field_syms: Option<Vec<(Sym, Vec<Sym>)>> = fields.map(|f| {
        f.iter()
            .map(|(n, vs)| {
                (
                    st.strings.intern(n),
                    vs.iter().map(|v| st.strings.intern(v)).collect(),
                )
            })
            .collect()
    });
    if let Some(e) = &email {
        let old = st.user(uid).map(|u| u.email.to_ascii_lowercase());
        if let Some(old) = old {
            st.email_index.remove(old.as_str());
        }
        st.email_index
            .insert(e.to_ascii_lowercase().into_boxed_str(), uid);
    }
    if let Some(u) = uid
        .checked_sub(1)
        .and_then(|i| st.users.get_mut(i as usize))
    {
        for (i, s) in syms {
            u.s[i] = s;
        }
        if let Some(e) = email {
            u.email = e.into();
        }
        // Custom user fields: the named fields are set, others kept.
        if let Some(fs) = field_syms {
            for (n, vs) in fs {
                u.fields.retain(|(fname, _)| *fname != n);
                u.fields.extend(vs.into_iter().map(|v| (n, v)));
            }
        }
        u.updated_at = now;
    }
    write_answer(
        id.is_some(),
        put,
        &format!("{}/rest/v1/user/{uid}/", ctx.base),
    )
}
