//! Writes to actions and their custom fields: PUT/PATCH/DELETE of an action or an
//! `actionfield` row, `POST /actionfield/`, and the create router.

use axum::http::StatusCode;
use axum::response::Response;

use super::body::{
    id_from_ref, parse_body, parse_fields, scalar_string, string_of, valid_field_name,
};
use super::pages::page_write;
use super::processing::process_action;
use super::respond::{empty, not_allowed, validation, with_location};
use super::users::user_write;
use super::Ctx;
use crate::sandbox::resources::{self, Res};
use crate::sandbox::store::*;
use crate::sandbox::FieldsPatch;

/// Sets the rows of one action field name to `values`, reusing row ids in order.
pub(super) fn set_action_field(st: &mut Store, action: u32, name: &str, values: &[String]) {
    let name_sym = st.strings.intern(name);
    let existing: Vec<u32> = st
        .action(action)
        .map(|a| {
            a.fields
                .iter()
                .copied()
                .filter(|f| st.actionfield(*f).is_some_and(|r| r.name == name_sym))
                .collect()
        })
        .unwrap_or_default();
    for (i, v) in values.iter().enumerate() {
        match existing.get(i) {
            Some(row) => {
                let vs = st.strings.intern(v);
                if let Some(r) = st.actionfields.get_mut((*row as usize).wrapping_sub(1)) {
                    r.value = vs;
                }
            }
            None => {
                st.push_actionfield(action, name, v);
            }
        }
    }
    for row in existing.iter().skip(values.len()) {
        st.delete_actionfield(*row);
    }
}

pub(super) fn apply_action_fields(
    st: &mut Store,
    action: u32,
    fields: &[(String, Vec<String>)],
    mode: FieldsPatch,
) {
    if mode == FieldsPatch::Replace {
        let keep: Vec<Sym> = fields.iter().map(|(n, _)| st.strings.intern(n)).collect();
        let drop_rows: Vec<u32> = st
            .action(action)
            .map(|a| {
                a.fields
                    .iter()
                    .copied()
                    .filter(|f| st.actionfield(*f).is_some_and(|r| !keep.contains(&r.name)))
                    .collect()
            })
            .unwrap_or_default();
        for r in drop_rows {
            st.delete_actionfield(r);
        }
    }
    for (name, vals) in fields {
        set_action_field(st, action, name, vals);
    }
}

pub(super) fn update(ctx: &Ctx, res: Res, id: u32, put: bool, body: &[u8]) -> Response {
    let ok = if put {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::ACCEPTED
    };
    let resname = res.name();
    match res {
        Res::Page(Some(_)) => {
            if !put && !resources::exists(&ctx.app.read(), res, id) {
                return empty(StatusCode::NOT_FOUND);
            }
            return page_write(ctx, res, Some(id), body, put);
        }
        Res::User => return user_write(ctx, Some(id), body, put),
        _ => {}
    }
    {
        let st = ctx.app.read();
        if !resources::exists(&st, res, id) {
            return empty(StatusCode::NOT_FOUND);
        }
    }
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    match res {
        Res::Action(_) => {
            let fields = match m.get("fields") {
                Some(v) => match parse_fields(&resname, v) {
                    Ok(f) => Some(f),
                    Err(r) => return r,
                },
                None => None,
            };
            let mut strs = Vec::new();
            for key in ["status", "source"] {
                if let Some(v) = m.get(key) {
                    match string_of(&resname, key, v) {
                        Ok(s) => strs.push((key, s)),
                        Err(r) => return r,
                    }
                }
            }
            let mut times = Vec::new();
            for key in ["created_at", "updated_at"] {
                if let Some(v) = m.get(key) {
                    match v.as_str().and_then(parse_time) {
                        Some(t) => times.push((key, t)),
                        None => {
                            return validation(
                                &resname,
                                key,
                                "Enter a valid date/time (YYYY-MM-DDTHH:MM:SS[.ffffff]).",
                            )
                        }
                    }
                }
            }
            let mut st = ctx.app.write();
            if !resources::exists(&st, res, id) {
                return empty(StatusCode::NOT_FOUND);
            }
            if let Some(f) = fields {
                apply_action_fields(&mut st, id, &f, ctx.app.config.fields_patch);
            }
            let syms: Vec<(&str, Sym)> = strs
                .iter()
                .map(|(k, s)| (*k, st.strings.intern(s)))
                .collect();
            let now = now_micros();
            if let Some(a) = st.action_mut(id) {
                for (k, s) in syms {
                    if k == "status" {
                        a.status = s;
                    } else {
                        a.source = s;
                    }
                }
                a.updated_at = now.max(a.updated_at);
                for (k, t) in times {
                    if k == "created_at" {
                        a.created_at = t;
                    } else {
                        a.updated_at = t;
                    }
                }
            }
            empty(ok)
        }
        Res::ActionField => {
            let name = match m.get("name").map(|v| string_of(&resname, "name", v)) {
                Some(Ok(n)) if valid_field_name(&n) => Some(n),
                Some(Ok(_)) => {
                    return validation(
                        &resname,
                        "name",
                        "Enter a valid name: 1-255 letters, digits or underscores.",
                    )
                }
                Some(Err(r)) => return r,
                None => None,
            };
            let value = match m.get("value").map(|v| {
                scalar_string(v)
                    .ok_or_else(|| validation(&resname, "value", "This field must be a string."))
            }) {
                Some(Ok(v)) => Some(v),
                Some(Err(r)) => return r,
                None => None,
            };
            let mut st = ctx.app.write();
            if st.actionfield(id).is_none() {
                return empty(StatusCode::NOT_FOUND);
            }
            let name = name.map(|n| st.strings.intern(&n));
            let value = value.map(|v| st.strings.intern(&v));
            if let Some(r) = st.actionfields.get_mut((id as usize).wrapping_sub(1)) {
                if let Some(n) = name {
                    r.name = n;
                }
                if let Some(v) = value {
                    r.value = v;
                }
            }
            empty(ok)
        }
        _ => not_allowed(res.detail_methods()),
    }
}

pub(super) fn delete(ctx: &Ctx, res: Res, id: u32) -> Response {
    let mut st = ctx.app.write();
    if !resources::exists(&st, res, id) {
        return empty(StatusCode::NOT_FOUND);
    }
    match res {
        Res::Action(_) => st.delete_action(id),
        Res::ActionField => st.delete_actionfield(id),
        _ => return not_allowed(res.detail_methods()),
    }
    empty(StatusCode::NO_CONTENT)
}

pub(super) fn create(ctx: &Ctx, res: Res, body: &[u8]) -> Response {
    match res {
        Res::Action(None) => process_action(ctx, body),
        Res::ActionField => create_actionfield(ctx, body),
        Res::User => user_write(ctx, None, body, false),
        Res::Page(Some(_)) => page_write(ctx, res, None, body, false),
        _ => not_allowed(res.list_methods()),
    }
}

pub(super) fn create_actionfield(ctx: &Ctx, body: &[u8]) -> Response {
    let r = "actionfield";
    let m = match parse_body(ctx, body) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let Some(parent_ref) = m.get("parent").or_else(|| m.get("action")) else {
        return validation(r, "parent", "This field is required.");
    };
    let name = match m.get("name") {
        None => return validation(r, "name", "This field is required."),
        Some(v) => match string_of(r, "name", v) {
            Ok(n) => n,
            Err(resp) => return resp,
        },
    };
    if !valid_field_name(&name) {
        return validation(
            r,
            "name",
            "Enter a valid name: 1-255 letters, digits or underscores.",
        );
    }
    let value = match m.get("value") {
        None => return validation(r, "value", "This field is required."),
        Some(v) => match scalar_string(v) {
            Some(s) => s,
            None => return validation(r, "value", "This field must be a string."),
        },
    };
    let mut st = ctx.app.write();
    let Some(parent) = id_from_ref(parent_ref).filter(|p| st.action(*p).is_some()) else {
        return validation(
            r,
            "parent",
            &format!(
                "Could not find the provided object via resource URI '{}'.",
                scalar_string(parent_ref).unwrap_or_default()
            ),
        );
    };
    let id = st.push_actionfield(parent, &name, &value);
    with_location(
        empty(StatusCode::CREATED),
        &format!("{}/rest/v1/actionfield/{id}/", ctx.base),
    )
}
