//! Pages: `POST /<type>page/`, PUT/PATCH `/<type>page/<id>/`.

use axum::response::Response;
use serde_json::Value;

use super::body::{id_from_ref, parse_body, string_of};
use super::respond::{not_allowed, validation, write_answer};
use super::Ctx;
use crate::sandbox::resources::{self, Res};
use crate::sandbox::store::*;

pub(super) fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// POST `/<type>page/`, PUT/PATCH `/<type>page/<id>/`. A PUT to a missing id is a
/// create, as in Tastypie (hence `name` required, like the recorded 400).
pub(super) fn page_write(ctx: &Ctx, res: Res, id: Option<u32>, body: &[u8], put: bool) -> Response {
    let resname = res.name();
    let Res::Page(Some(ptype)) = res else {
        return not_allowed(res.list_methods());
    };
    let id = {
        let st = ctx.app.read();
        id.filter(|i| resources::exists(&st, res, *i))
    };
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let name =
        match m.get("name") {
            Some(v) => match string_of(&resname, "name", v) {
                Ok(n) if valid_slug(&n) => Some(n),
                Ok(_) => return validation(
                    &resname,
                    "name",
                    "Enter a valid 'slug' consisting of letters, numbers, underscores or hyphens.",
                ),
                Err(r) => return r,
            },
            None if id.is_none() => return validation(&resname, "name", "This field is required."),
            None => None,
        };
    let title = match m.get("title").map(|v| string_of(&resname, "title", v)) {
        Some(Ok(t)) => Some(t),
        Some(Err(r)) => return r,
        None => None,
    };
    let hidden = match m.get("hidden") {
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return validation(&resname, "hidden", "This field must be a boolean."),
        None => None,
    };
    let tags = match m.get("tags") {
        Some(Value::Array(a)) => {
            let ids: Option<Vec<u32>> = a.iter().map(id_from_ref).collect();
            match ids {
                Some(v) => Some(v),
                None => return validation(&resname, "tags", "Expected a list of tag URIs."),
            }
        }
        Some(_) => return validation(&resname, "tags", "Expected a list of tag URIs."),
        None => None,
    };
    let required_fields = match m.get("required_fields") {
        None => None,
        Some(v) => match required_field_ids(v) {
            Some(ids) => Some(ids),
            None => {
                return validation(
                    &resname,
                    "required_fields",
                    "Expected a list of form field URIs, ids or names.",
                )
            }
        },
    };
    let mut st = ctx.app.write();
    if let Some(t) = &tags {
        if let Some(bad) = t.iter().find(|t| **t == 0 || **t as usize > st.tags.len()) {
            return validation(
                &resname,
                "tags",
                &format!(
                    "Could not find the provided object via resource URI '/rest/v1/tag/{bad}/'."
                ),
            );
        }
    }
    if let Some(n) = &name {
        if let Some(owner) = st.page_by_name(n) {
            if Some(owner) != id {
                return validation(&resname, "name", "Page with this Name already exists.");
            }
        }
    }
    let now = now_micros() / 1_000_000;
    let pid = match id {
        Some(id) => id,
        None => {
            let active = st.strings.intern("active");
            let actions = st.strings.intern("actions");
            let once = st.strings.intern("once");
            st.push_page(Page {
                name: name.clone().unwrap_or_default().into(),
                title: "".into(),
                ptype,
                hidden: false,
                status: active,
                created_at: now,
                updated_at: now,
                tags: Vec::new(),
                goal: None,
                goal_type: actions,
                recognize: once,
                allow_multiple_responses: false,
                lang: Some(100),
                list: 1,
                url: "".into(),
                fields: Vec::new(),
                cms_form: true,
                required_fields: Vec::new(),
            })
        }
    };
    if let Some(n) = &name {
        let old = st.page(pid).map(|p| p.name.clone());
        if let Some(old) = old {
            st.page_name_index.remove(&old);
        }
        st.page_name_index.insert(n.clone().into_boxed_str(), pid);
    }
    if let Some(p) = pid
        .checked_sub(1)
        .and_then(|i| st.pages.get_mut(i as usize))
    {
        if let Some(n) = name {
            p.name = n.into();
        }
        if let Some(t) = title {
            p.title = t.into();
        }
        if let Some(h) = hidden {
            p.hidden = h;
        }
        if let Some(t) = tags {
            p.tags = t;
        }
        if let Some(f) = required_fields {
            p.required_fields = f;
        }
        p.updated_at = now;
    }
    write_answer(
        id.is_some(),
        put,
        &format!("{}/rest/v1/{resname}/{pid}/", ctx.base),
    )
}

/// `required_fields` as sent: form field URIs (`/rest/v1/formfield/2/`), ids, names
/// (`"zip"`), or the objects a GET shows (`{"id", "name", "resource_uri"}`). `None`
/// when one names no form field.
fn required_field_ids(v: &Value) -> Option<Vec<u32>> {
    let Value::Array(items) = v else { return None };
    let mut ids = Vec::new();
    for item in items {
        let item = match item {
            Value::Object(o) => o.get("resource_uri").or_else(|| o.get("name"))?,
            other => other,
        };
        let id = match item {
            Value::String(s) if form_field_id(s).is_some() => form_field_id(s),
            other => id_from_ref(other).filter(|id| form_field_name(*id).is_some()),
        }?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Some(ids)
}
