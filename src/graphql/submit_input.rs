//! Checking a submission before anything is sent upstream: the input of
//! `submitAction` becomes an [`ActionSubmission`] or a list of [`Problem`]s, each
//! naming the input field a form shows it next to.
//!
//! Field names in problems are the GraphQL input's (`email`, `firstName`, `zip`, ...);
//! custom fields are `user_<name>` and `action_<name>`, as ActionKit's own forms name
//! their inputs. Codes are stable (see [`Code`]); messages are for people.
//!
//! Everything here is pure: no upstream call, no clock. The page's own rules (does it
//! exist, which fields it requires) and the instance's allowed user fields are checked
//! by the caller with [`required_fields`] and [`unknown_fields`].

use std::collections::BTreeSet;

use async_graphql::{InputObject, ID};

use super::mutation::CustomFieldInput;
use crate::actionkit::{ActionSubmission, MAX_FIELD_VALUE_BYTES};

/// The stable codes of field errors found by the gateway. (Failures reported by
/// ActionKit later come with the outbox's codes: `REQUIRED`, `INVALID`, `REFUSED`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    /// A field the page (or ActionKit) requires is missing or empty.
    Required,
    /// Not an email address.
    InvalidEmail,
    /// Not a US zip code (`12345` or `12345-6789`) where the country is the US.
    InvalidZip,
    /// Not a US phone number (10 digits, an optional leading 1) where the country is
    /// the US.
    InvalidPhone,
    /// Not an AKID (`<mailing>.<user>.<hash>`), or its hash is wrong.
    InvalidAkid,
    /// A custom field name that is not letters, digits and `_`.
    InvalidName,
    /// Any other malformed value (`page`, `eventId`, `role`, `idempotencyKey`).
    Invalid,
    /// Longer than the field allows.
    TooLong,
    /// More custom fields than one submission may carry.
    TooMany,
    /// Control characters (line breaks are allowed in custom field values only).
    ControlCharacters,
    /// Characters outside the Basic Multilingual Plane (emoji) in a member's core
    /// fields, which ActionKit's database cannot store.
    UnsupportedCharacters,
    /// A custom field this page does not accept.
    UnknownField,
    /// No page has this short name.
    NotFound,
}

impl Code {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Code::Required => "REQUIRED",
            Code::InvalidEmail => "INVALID_EMAIL",
            Code::InvalidZip => "INVALID_ZIP",
            Code::InvalidPhone => "INVALID_PHONE",
            Code::InvalidAkid => "INVALID_AKID",
            Code::InvalidName => "INVALID_NAME",
            Code::Invalid => "INVALID",
            Code::TooLong => "TOO_LONG",
            Code::TooMany => "TOO_MANY",
            Code::ControlCharacters => "CONTROL_CHARACTERS",
            Code::UnsupportedCharacters => "UNSUPPORTED_CHARACTERS",
            Code::UnknownField => "UNKNOWN_FIELD",
            Code::NotFound => "NOT_FOUND",
        }
    }
}

/// One problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// The input field (`email`, `zip`, `user_<name>`, `action_<name>`, `page`, ...).
    pub field: String,
    pub code: Code,
    pub message: String,
}

impl Problem {
    fn new(field: impl Into<String>, code: Code, message: impl Into<String>) -> Self {
        Problem {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// The most custom user fields, and the most custom action values, per submission.
pub(super) const MAX_CUSTOM_FIELDS: usize = 100;
/// The longest idempotency key, in bytes.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A member taking an action on a page: signing a petition, signing up, RSVPing.
/// Empty strings count as absent (a form's empty inputs).
#[derive(InputObject, Debug, Default)]
pub(super) struct SubmitActionInput {
    /// The page's short name (for example `save-the-bees`).
    pub page: String,
    /// The member's email address. Give it, or `akid` (a `self` key's own AKID,
    /// sent in `X-AKID`, counts when neither is given).
    pub email: Option<String>,
    /// The member's AKID, from a mailing link (`<mailing>.<user>.<hash>`).
    pub akid: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// A full name, which ActionKit splits into first and last.
    pub name: Option<String>,
    /// Street address, first line.
    pub address1: Option<String>,
    /// Street address, second line.
    pub address2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// US state.
    pub state: Option<String>,
    /// US zip code: `12345` or `12345-6789` (checked when the country is the US or
    /// not given).
    pub zip: Option<String>,
    /// Postal code outside the US.
    pub postal: Option<String>,
    /// Region (state or province) outside the US.
    pub region: Option<String>,
    /// Country. When it is not given, or names the US, `zip` and `phone` are checked
    /// as US ones.
    pub country: Option<String>,
    /// Phone number (10 digits when the country is the US or not given).
    pub phone: Option<String>,
    /// The member's language, as ActionKit names it.
    pub lang: Option<String>,
    /// Custom user fields (`user_<name>`): only names the page accepts (configured,
    /// or the instance's allowed user fields).
    pub user_fields: Option<Vec<CustomFieldInput>>,
    /// Custom action fields (`action_<name>`); a name given several times means
    /// several values. Keys without `write` may send only the names the page accepts.
    pub fields: Option<Vec<CustomFieldInput>>,
    /// The AKID of the member who shared the page, credited for the action.
    pub referring_akid: Option<String>,
    /// Where the member came from (`source` on the action), e.g. `email`, `fb`.
    pub source: Option<String>,
    /// Event RSVP: the event's id.
    pub event_id: Option<ID>,
    /// Event RSVP: `attendee` (the default) or `host`.
    pub role: Option<String>,
    /// Makes a retry safe: a second submission with the same key from the same API
    /// key returns the first one's answer and makes no second action. At most 128
    /// bytes; a random UUID per form submission is a good choice.
    pub idempotency_key: Option<String>,
}

/// The checks of one core field: its input name and longest length in characters.
struct Core {
    field: &'static str,
    max: usize,
}

const EMAIL: Core = Core {
    field: "email",
    max: 254,
};

/// Whether a page short name has the shape ActionKit gives them.
pub(super) fn is_page_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a custom field name is letters, digits and `_` (1 to 255).
pub(super) fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// An email address as forms accept them: one `@`, a local part of at most 64
/// characters without spaces, a domain of dot-separated labels with at least two labels.
pub(super) fn is_email(email: &str) -> bool {
    if email.len() > EMAIL.max {
        return false;
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            c.is_alphanumeric()
                || "!#$%&'*+/=?^_`{|}~.-".contains(c)
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        });
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.chars().count() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| {
            tld.chars().count() >= 2 && !tld.bytes().all(|b| b.is_ascii_digit())
        });
    local_ok && domain_ok
}

/// Whether an AKID has ActionKit's shape: `<mailing>.<user>.<hash>`, the mailing
/// digits or empty, the user digits, the hash 6 characters of base64url.
pub(super) fn is_akid(akid: &str) -> bool {
    let Some((cleartext, hash)) = akid.rsplit_once('.') else {
        return false;
    };
    let Some((mailing, _)) = cleartext.split_once('.') else {
        return false;
    };
    akid.len() <= 64
        && crate::graphql::access::akid_user(akid).is_some()
        && (mailing.is_empty()
            || (mailing.len() <= 19 && mailing.bytes().all(|b| b.is_ascii_digit())))
        && hash.len() == 6
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `country` (absent, or a name or code of the US) means the US rules for zip
/// and phone apply.
pub(super) fn is_us(country: Option<&str>) -> bool {
    match country {
        None => true,
        Some(c) => {
            let c: String = c
                .chars()
                .filter(|ch| !matches!(ch, '.' | ' '))
                .collect::<String>()
                .to_lowercase();
            matches!(
                c.as_str(),
                "us" | "usa" | "unitedstates" | "unitedstatesofamerica"
            )
        }
    }
}

/// A US zip code: 5 digits, or 5 and 4 joined by `-`.
pub(super) fn is_us_zip(zip: &str) -> bool {
    let b = zip.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => digits(b),
        10 => digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]),
        _ => false,
    }
}

/// A US phone number: 10 digits (an optional leading `1` or `+1`), written with
/// spaces, dots, dashes or parentheses at will.
pub(super) fn is_us_phone(phone: &str) -> bool {
    if !phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '.' | '-' | '(' | ')' | '+'))
    {
        return false;
    }
    if phone.chars().skip(1).any(|c| c == '+') {
        return false;
    }
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        10 => true,
        11 => digits.starts_with('1'),
        _ => false,
    }
}

/// Checks the characters and length of one value; `multiline` lets line breaks and
/// tabs through (custom field values), `core` refuses emoji (a member's own fields).
fn check_text(
    out: &mut Vec<Problem>,
    field: &str,
    value: &str,
    max_chars: usize,
    multiline: bool,
    core: bool,
) -> bool {
    let before = out.len();
    if value
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        out.push(Problem::new(
            field,
            Code::ControlCharacters,
            "This field contains control characters.",
        ));
    } else if core && value.chars().any(|c| c as u32 > 0xFFFF) {
        out.push(Problem::new(
            field,
            Code::UnsupportedCharacters,
            "This field contains characters (such as emoji) that cannot be stored.",
        ));
    }
    if value.chars().count() > max_chars {
        out.push(Problem::new(
            field,
            Code::TooLong,
            format!("Use at most {max_chars} characters."),
        ));
    }
    out.len() == before
}

/// A value trimmed; empty means absent (a form's empty input).
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Trims a core field; empty means absent (a form's empty input).
fn core(out: &mut Vec<Problem>, value: Option<String>, spec: Core) -> Option<String> {
    let v = given(value)?;
    check_text(out, spec.field, &v, spec.max, false, true);
    Some(v)
}

/// A problem `code` (`message`) on `field` when its `value` is given, passed the text
/// checks (no problem on `field` yet) and is not `valid`.
fn check_shape(
    out: &mut Vec<Problem>,
    field: &'static str,
    value: Option<&str>,
    valid: impl Fn(&str) -> bool,
    code: Code,
    message: &'static str,
) {
    if let Some(v) = value {
        if !out.iter().any(|p| p.field == field) && !valid(v) {
            out.push(Problem::new(field, code, message));
        }
    }
}

/// The custom fields of one kind: names checked, values checked, empty values kept
/// out (a form's empty input).
fn custom(
    out: &mut Vec<Problem>,
    fields: Vec<(String, String)>,
    prefix: &str,
    list_name: &str,
) -> Vec<(String, String)> {
    if fields.len() > MAX_CUSTOM_FIELDS {
        out.push(Problem::new(
            list_name,
            Code::TooMany,
            format!("Send at most {MAX_CUSTOM_FIELDS} custom fields."),
        ));
        return Vec::new();
    }
    let mut kept = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let name = name.trim().to_owned();
        let shown: String = name.chars().take(64).collect();
        let field = format!("{prefix}{shown}");
        if !is_field_name(&name) {
            out.push(Problem::new(
                field,
                Code::InvalidName,
                "Custom field names are 1 to 255 letters, digits or `_`.",
            ));
            continue;
        }
        if value.len() > MAX_FIELD_VALUE_BYTES {
            out.push(Problem::new(
                field,
                Code::TooLong,
                "Use at most 64 KiB of text.",
            ));
            continue;
        }
        if !check_text(out, &field, &value, usize::MAX, true, false) {
            continue;
        }
        if value.trim().is_empty() {
            continue;
        }
        kept.push((name, value));
    }
    kept
}

/// Custom fields as (name, value) pairs, in the order given.
fn pairs(fields: Option<Vec<CustomFieldInput>>) -> Vec<(String, String)> {
    fields
        .unwrap_or_default()
        .into_iter()
        .map(|f| (f.name, f.value))
        .collect()
}

/// Checks everything that needs neither the page nor the instance, and builds the
/// submission. The submission is usable only when the problem list is empty.
pub(super) fn check(
    raw: SubmitActionInput,
    akid_secret: Option<&str>,
) -> (ActionSubmission, Vec<Problem>) {
    let mut out = Vec::new();
    let page = raw.page.trim().to_owned();
    if page.is_empty() {
        out.push(Problem::new("page", Code::Required, "Name the page."));
    } else if !is_page_name(&page) {
        out.push(Problem::new(
            "page",
            Code::Invalid,
            "A page short name is letters, digits, `-` and `_`.",
        ));
    }
    let email = core(&mut out, raw.email, EMAIL);
    check_shape(
        &mut out,
        "email",
        email.as_deref(),
        is_email,
        Code::InvalidEmail,
        "Enter a valid email address.",
    );
    let akid = given(raw.akid);
    if let Some(a) = &akid {
        let verified = match akid_secret {
            Some(secret) => crate::graphql::access::verify_akid(secret, a).is_some(),
            None => true,
        };
        if !is_akid(a) || !verified {
            out.push(Problem::new(
                "akid",
                Code::InvalidAkid,
                "This link is not valid; enter your email address instead.",
            ));
        }
    }
    if email.is_none() && akid.is_none() {
        out.push(Problem::new(
            "email",
            Code::Required,
            "Enter your email address.",
        ));
    }
    let c = |field, max| Core { field, max };
    let first_name = core(&mut out, raw.first_name, c("firstName", 255));
    let last_name = core(&mut out, raw.last_name, c("lastName", 255));
    let name = core(&mut out, raw.name, c("name", 255));
    let address1 = core(&mut out, raw.address1, c("address1", 255));
    let address2 = core(&mut out, raw.address2, c("address2", 255));
    let city = core(&mut out, raw.city, c("city", 255));
    let state = core(&mut out, raw.state, c("state", 255));
    let zip = core(&mut out, raw.zip, c("zip", 255));
    let postal = core(&mut out, raw.postal, c("postal", 255));
    let region = core(&mut out, raw.region, c("region", 255));
    let country = core(&mut out, raw.country, c("country", 100));
    let phone = core(&mut out, raw.phone, c("phone", 40));
    let lang = core(&mut out, raw.lang, c("lang", 32));
    let source = core(&mut out, raw.source, c("source", 255));
    if is_us(country.as_deref()) {
        // Field, value, check, and the problem when the check fails.
        type UsCheck<'a> = (
            &'static str,
            &'a Option<String>,
            fn(&str) -> bool,
            Code,
            &'static str,
        );
        let us_checks: [UsCheck; 2] = [
            (
                "zip",
                &zip,
                is_us_zip,
                Code::InvalidZip,
                "Enter a 5-digit zip code (or zip+4, 12345-6789).",
            ),
            (
                "phone",
                &phone,
                is_us_phone,
                Code::InvalidPhone,
                "Enter a 10-digit phone number.",
            ),
        ];
        for (field, value, valid, code, message) in us_checks {
            check_shape(&mut out, field, value.as_deref(), valid, code, message);
        }
    }
    let referring_akid = given(raw.referring_akid);
    if let Some(r) = &referring_akid {
        if !is_akid(r) {
            out.push(Problem::new(
                "referringAkid",
                Code::InvalidAkid,
                "Not an AKID.",
            ));
        }
    }
    let event_id = match given(raw.event_id.map(|e| e.0)) {
        None => None,
        Some(e) => match e.parse::<u64>() {
            Ok(n) if n > 0 && e.len() <= 19 && e.bytes().all(|b| b.is_ascii_digit()) => Some(n),
            _ => {
                out.push(Problem::new(
                    "eventId",
                    Code::Invalid,
                    "An event id is a positive integer.",
                ));
                None
            }
        },
    };
    let role = given(raw.role);
    if let Some(r) = &role {
        if !matches!(r.as_str(), "attendee" | "host") {
            out.push(Problem::new(
                "role",
                Code::Invalid,
                "The role is `attendee` or `host`.",
            ));
        } else if event_id.is_none() && !out.iter().any(|p| p.field == "eventId") {
            out.push(Problem::new(
                "eventId",
                Code::Required,
                "A role needs the event's id.",
            ));
        }
    }
    if let Some(key) = &raw.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(|c| c.is_control())
        {
            out.push(Problem::new(
                "idempotencyKey",
                Code::Invalid,
                format!("An idempotency key is 1 to {MAX_IDEMPOTENCY_KEY} bytes of text."),
            ));
        }
    }
    let user_fields = custom(&mut out, pairs(raw.user_fields), "user_", "userFields");
    let action_fields = custom(&mut out, pairs(raw.fields), "action_", "fields");
    let submission = ActionSubmission {
        page,
        email,
        akid,
        first_name,
        last_name,
        name,
        address1,
        address2,
        city,
        state,
        zip,
        postal,
        region,
        country,
        phone,
        lang,
        user_fields,
        action_fields,
        referring_akid,
        source,
        event_id,
        role,
    };
    (submission, out)
}

/// Custom fields that the allow-lists do not name (`None`: any name is allowed).
pub(super) fn unknown_fields(
    submission: &ActionSubmission,
    allowed_user: Option<&BTreeSet<String>>,
    allowed_action: Option<&BTreeSet<String>>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let lists = [
        ("user_", &submission.user_fields, allowed_user),
        ("action_", &submission.action_fields, allowed_action),
    ];
    for (prefix, fields, allowed) in lists {
        let Some(allowed) = allowed else { continue };
        for (name, _) in fields {
            let field = format!("{prefix}{name}");
            if !allowed.contains(name) && seen.insert(field.clone()) {
                out.push(Problem::new(
                    field,
                    Code::UnknownField,
                    "This page does not take this field.",
                ));
            }
        }
    }
    out
}

/// Whether the submission carries the field `name` (as [`ActionSubmission`] names
/// them: `first_name`, `zip`, `user_<name>`, `action_<name>`). `None` for names this
/// gateway does not send (such as `prefix`), which ActionKit checks itself.
fn carries(s: &ActionSubmission, name: &str) -> Option<bool> {
    if let Some(n) = name.strip_prefix("user_") {
        return Some(s.user_fields.iter().any(|(k, _)| k == n));
    }
    if let Some(n) = name.strip_prefix("action_") {
        return Some(s.action_fields.iter().any(|(k, _)| k == n));
    }
    let v = match name {
        "email" => &s.email,
        "first_name" => &s.first_name,
        "last_name" => &s.last_name,
        "name" => &s.name,
        "address1" => &s.address1,
        "address2" => &s.address2,
        "city" => &s.city,
        "state" => &s.state,
        "zip" => &s.zip,
        "postal" => &s.postal,
        "region" => &s.region,
        "country" => &s.country,
        "phone" => &s.phone,
        "lang" => &s.lang,
        "source" => &s.source,
        _ => return None,
    };
    Some(v.is_some())
}

/// The page's required fields that the submission leaves out. A member named by AKID
/// is recognised: ActionKit takes what it has on file, so only its own answer counts.
/// A name given whole (`name`) stands for `first_name` and `last_name`.
pub(super) fn required_fields(submission: &ActionSubmission, required: &[String]) -> Vec<Problem> {
    if submission.akid.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in required {
        let name = name.as_str();
        let present = match name {
            "first_name" | "last_name" if submission.name.is_some() => Some(true),
            _ => carries(submission, name),
        };
        if present == Some(false) {
            let field = graphql_field_name(name);
            if !out.iter().any(|p: &Problem| p.field == field) {
                out.push(Problem::new(
                    field,
                    Code::Required,
                    "This field is required.",
                ));
            }
        }
    }
    out
}

/// The GraphQL input's name for a submission field name (ActionKit's and the
/// outbox's): `first_name` → `firstName`; custom fields keep `user_`/`action_`.
pub(super) fn graphql_field_name(name: &str) -> String {
    if name.starts_with("user_") || name.starts_with("action_") || name.starts_with('_') {
        return name.to_owned();
    }
    match name {
        "plus4" => return "zip".into(),
        "mailing_id" => return "akid".into(),
        "referring_user" => return "referringAkid".into(),
        _ => {}
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
