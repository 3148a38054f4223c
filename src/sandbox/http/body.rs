//! Request bodies: JSON or form-encoded, custom-field values and resource references.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::respond::{error, validation};
use super::Ctx;

/// A JSON object or a form-encoded body (repeated keys -> array).
pub(super) fn parse_body(ctx: &Ctx, body: &[u8]) -> Result<Map<String, Value>, Response> {
    if ctx
        .content_type
        .starts_with("application/x-www-form-urlencoded")
    {
        let mut m = Map::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            let v = Value::String(v.into_owned());
            match m.get_mut(k.as_ref()) {
                None => {
                    m.insert(k.into_owned(), v);
                }
                Some(Value::Array(a)) => a.push(v),
                Some(old) => {
                    let first = old.take();
                    *old = Value::Array(vec![first, v]);
                }
            }
        }
        return Ok(m);
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("Malformed JSON in the request body: {e}"),
        )),
    }
}

pub(super) fn valid_field_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 255 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

/// A custom-field value: string (one row), array of strings (several rows), null (none).
pub(super) fn field_values(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(a) => a.iter().map(scalar_string).collect(),
        v => scalar_string(v).map(|s| vec![s]),
    }
}

/// Parses `{"name": value, ...}` into validated rows; errors name the resource.
pub(super) fn parse_fields(
    resname: &str,
    v: &Value,
) -> Result<Vec<(String, Vec<String>)>, Response> {
    let Value::Object(m) = v else {
        return Err(validation(
            resname,
            "fields",
            "Expected an object of field names to values.",
        ));
    };
    let mut out = Vec::new();
    for (k, v) in m {
        if !valid_field_name(k) {
            return Err(validation(
                resname,
                "fields",
                &format!("Invalid field name '{k}': use 1-255 letters, digits or underscores."),
            ));
        }
        let Some(vals) = field_values(v) else {
            return Err(validation(
                resname,
                "fields",
                &format!("The value of '{k}' must be a string or a list of strings."),
            ));
        };
        out.push((k.clone(), vals));
    }
    Ok(out)
}

/// Extracts an id from a URI (`/rest/v1/petitionaction/5/`) or a bare id.
pub(super) fn id_from_ref(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let t = s.trim().trim_end_matches('/');
            t.rsplit('/').next().and_then(|x| x.parse().ok())
        }
        _ => None,
    }
}

pub(super) fn string_of(resname: &str, key: &str, v: &Value) -> Result<String, Response> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(validation(resname, key, "This field must be a string.")),
    }
}
