//! Action processing, `POST /rest/v1/action/`, in the order ActionKit works
//! (reference `actionkit-processing.md` §1, `actionkit-rest.md` §5.3):
//!
//! 1. read the submission: `page`, `email`/`akid`, user fields, `user_<name>` and
//!    `action_<name>` (a list or a repeated form key: several values), `source`,
//!    `referring_akid`, `event_id`/`role`, `required`, `suppress_subscribe`;
//! 2. the page by short name, else 400 `{"page": "Unable to find a page for processing.
//!    You sent page=<name>."}` (as recorded);
//! 3. the member: by email when there is one (found, or created after validation),
//!    else by AKID, which must verify (else 400 `{"errors": {"mailing_id": [...]}}`);
//! 4. validation, every failure in one 400 `{"errors": {field: [msg, ...]}}`: email
//!    syntax, the page's required fields (and the submission's own `required`), each
//!    present in the submission or already on file for a recognised member, a US `zip`
//!    of 5 digits, `user_<name>` only for names in `alloweduserfield`, `event_id` on
//!    event signup pages and `role` `attendee`/`host`; nothing is written on failure;
//! 5. the member is created or updated (submitted user fields overwrite, custom user
//!    fields named replaced, a phone added, subscribed unless the page unsubscribes or
//!    `suppress_subscribe`), then the typed action with its custom fields;
//! 6. 201 with `Location: <base>/rest/v1/<type>action/<id>/` and the typed action plus
//!    `redirect_url` (authenticated), or `{action_id, akid, rd, redirect_url}`.
//!
//! Choices where the reference is UNCONFIRMED: with both email and AKID the email
//! decides the member (the AKID then only credits its mailing when it names the same
//! member); an AKID that does not verify is ignored when there is an email; a `zip`
//! requirement is met by `postal` for a member outside the United States; the country
//! is the submitted one, else the one on file, else the United States.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::body::{field_values, id_from_ref, parse_body, scalar_string, valid_field_name};
use super::respond::{json_resp, with_location};
use super::users::valid_email;
use super::RequestFacts;
use crate::sandbox::resources;
use crate::sandbox::store::*;

/// User columns a submission may set, by their names (also the wire names).
const SUBMITTED_USER_FIELDS: [&str; 14] = [
    "first_name",
    "last_name",
    "middle_name",
    "prefix",
    "suffix",
    "address1",
    "address2",
    "city",
    "state",
    "region",
    "zip",
    "plus4",
    "postal",
    "country",
];

const REQUIRED: &str = "This field is required.";
const BAD_ZIP: &str = "There seems to be a problem with what you entered for ZIP Code. Check to make sure your information is typo-free and correctly formatted.";

/// One submission, read from the body.
struct Submission {
    page: String,
    email: Option<String>,
    akid: Option<String>,
    /// Submitted user columns (non-empty), `name` already split into first and last.
    user: Vec<(&'static str, String)>,
    phone: Option<String>,
    lang: Option<String>,
    user_fields: Vec<(String, Vec<String>)>,
    action_fields: Vec<(String, Vec<String>)>,
    source: Option<String>,
    ip_address: Option<String>,
    referring_akid: Option<String>,
    referring_user: Option<String>,
    event_id: Option<String>,
    role: Option<String>,
    /// Extra fields this submission must carry (the `required` flag, repeatable).
    required: Vec<String>,
    suppress_subscribe: bool,
    amount_cents: u32,
}

impl Submission {
    fn get(&self, field: &str) -> Option<&str> {
        self.user
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }
}

/// Who the action is for.
enum Member {
    Known { user: u32, mailing: Option<u32> },
    New { email: String },
}

/// Field errors, in ActionKit's `{"errors": {field: [msg]}}`.
#[derive(Default)]
struct FieldErrors(Map<String, Value>);

impl FieldErrors {
    fn add(&mut self, field: &str, msg: &str) {
        let list = self
            .0
            .entry(field.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(a) = list {
            a.push(json!(msg));
        }
    }

    fn into_result(self) -> Result<(), Response> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(errors_response(Value::Object(self.0)))
        }
    }
}

fn errors_response(errors: Value) -> Response {
    json_resp(StatusCode::BAD_REQUEST, &json!({ "errors": errors }))
}

fn one_error(field: &str, msg: &str) -> Response {
    errors_response(json!({ field: [msg] }))
}

/// `POST /rest/v1/action/`: action processing.
pub(super) fn process_action(ctx: &RequestFacts, body: &[u8]) -> Response {
    match process(ctx, body) {
        Ok(r) | Err(r) => r,
    }
}

fn process(ctx: &RequestFacts, body: &[u8]) -> Result<Response, Response> {
    let m = parse_body(ctx, body)?;
    let sub = read_submission(&m)?;
    let mut st = ctx.app.write();
    let Some(page_id) = st.page_by_name(&sub.page) else {
        return Err(json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"page": format!("Unable to find a page for processing. You sent page={}.", sub.page)}),
        ));
    };
    let ptype = st
        .page(page_id)
        .map(|p| p.ptype)
        .unwrap_or(PageType::Petition);
    let member = find_member(&st, &sub)?;
    validate(&st, &sub, page_id, &member)?;
    let created_user = matches!(member, Member::New { .. });
    let (user_id, mailing) = match member {
        Member::Known { user, mailing } => (user, mailing),
        Member::New { email } => (create_user(&mut st, &sub, email), None),
    };
    let resubscribed = update_user(&mut st, &sub, user_id, ptype, created_user);
    let action_id = create_action(ctx, &mut st, &sub, user_id, page_id, mailing, {
        let mut flags = 0;
        if created_user {
            flags |= FLAG_CREATED_USER | FLAG_SUBSCRIBED_USER;
        } else if resubscribed {
            flags |= FLAG_SUBSCRIBED_USER;
        }
        flags
    });
    Ok(answer(ctx, &st, &sub.page, action_id, ptype))
}

/// Step 1: the submission's keys, sorted out. Bad custom field names → 400.
fn read_submission(m: &Map<String, Value>) -> Result<Submission, Response> {
    let get = |k: &str| {
        m.get(k)
            .and_then(scalar_string)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let mut action_fields: Vec<(String, Vec<String>)> = Vec::new();
    let mut user_fields: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in m {
        let (target, name) = if let Some(n) = k.strip_prefix("action_") {
            (&mut action_fields, n)
        } else if let Some(n) = k.strip_prefix("user_") {
            (&mut user_fields, n)
        } else {
            continue;
        };
        if !valid_field_name(name) {
            return Err(one_error(k, &format!("Invalid field name '{name}'.")));
        }
        let Some(vals) = field_values(v) else {
            return Err(one_error(k, "Enter a string or a list of strings."));
        };
        target.push((name.to_string(), vals));
    }
    let mut user: Vec<(&'static str, String)> = SUBMITTED_USER_FIELDS
        .iter()
        .filter_map(|f| get(f).map(|v| (*f, v)))
        .collect();
    // A full name is split by ActionKit: last word last name, the rest first name.
    if let Some(name) = get("name") {
        let (first, last) = match name.rsplit_once(' ') {
            Some((f, l)) => (f.trim().to_string(), l.to_string()),
            None => (name.clone(), String::new()),
        };
        for (field, value) in [("first_name", first), ("last_name", last)] {
            if !value.is_empty() && !user.iter().any(|(f, _)| *f == field) {
                user.push((field, value));
            }
        }
    }
    let required = match m.get("required") {
        Some(Value::Array(a)) => a.iter().filter_map(scalar_string).collect(),
        Some(v) => scalar_string(v).into_iter().collect(),
        None => Vec::new(),
    };
    Ok(Submission {
        page: get("page").unwrap_or_default(),
        email: get("email"),
        akid: get("akid"),
        user,
        phone: get("phone"),
        lang: get("lang"),
        user_fields,
        action_fields,
        source: get("source"),
        ip_address: get("ip_address"),
        referring_akid: get("referring_akid"),
        referring_user: get("referring_user"),
        event_id: get("event_id"),
        role: get("role"),
        required,
        suppress_subscribe: get("suppress_subscribe")
            .is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "False")),
        amount_cents: get("amount")
            .and_then(|a| a.parse::<f64>().ok())
            .map(|a| (a * 100.0).round().max(0.0) as u32)
            .unwrap_or(0),
    })
}

/// Step 3: the member by email (found or to be created), else by a verified AKID.
fn find_member(st: &Store, sub: &Submission) -> Result<Member, Response> {
    let by_akid = sub.akid.as_deref().and_then(|a| st.verify_akid(a));
    if let Some(email) = &sub.email {
        return Ok(match st.user_by_email(email) {
            Some(user) => Member::Known {
                user,
                mailing: by_akid.filter(|(_, u)| *u == user).and_then(|(m, _)| m),
            },
            None => Member::New {
                email: email.clone(),
            },
        });
    }
    match (&sub.akid, by_akid) {
        (Some(_), Some((mailing, user))) => Ok(Member::Known { user, mailing }),
        (Some(_), None) => Err(one_error(
            "mailing_id",
            "Unable to associate this mailing ID with account.",
        )),
        (None, _) => Err(one_error("email", REQUIRED)),
    }
}

fn is_us(country: &str) -> bool {
    matches!(
        country.trim().to_ascii_lowercase().as_str(),
        "" | "united states" | "united states of america" | "us" | "usa"
    )
}

/// Step 4: every check, every failure reported at once; nothing is written here.
fn validate(st: &Store, sub: &Submission, page_id: u32, member: &Member) -> Result<(), Response> {
    let mut errors = FieldErrors::default();
    if let Member::New { email } = member {
        if !valid_email(email) {
            errors.add("email", "Enter a valid email address.");
        }
    }
    let known = match member {
        Member::Known { user, .. } => st.user(*user),
        Member::New { .. } => None,
    };
    let on_file = |field: &str| -> bool {
        let Some(u) = known else { return false };
        match field {
            "phone" => !u.phones.is_empty(),
            "name" => user_str_index("first_name").is_some_and(|i| !st.sym(u.s[i]).is_empty()),
            f => user_str_index(f).is_some_and(|i| !st.sym(u.s[i]).is_empty()),
        }
    };
    let submitted = |field: &str| -> bool {
        match field {
            "email" => sub.email.is_some(),
            "phone" => sub.phone.is_some(),
            "name" => sub.get("first_name").is_some(),
            f => sub.get(f).is_some(),
        }
    };
    let country = sub
        .get("country")
        .map(str::to_owned)
        .or_else(|| {
            known.and_then(|u| user_str_index("country").map(|i| st.sym(u.s[i]).to_owned()))
        })
        .unwrap_or_default();
    let mut required: Vec<String> = st
        .page(page_id)
        .map(|p| {
            p.required_fields
                .iter()
                .filter_map(|f| form_field_name(*f))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for extra in &sub.required {
        if !required.contains(extra) {
            required.push(extra.clone());
        }
    }
    for field in &required {
        let met = submitted(field)
            || on_file(field)
            || (field == "zip" && !is_us(&country) && (submitted("postal") || on_file("postal")));
        if !met {
            errors.add(field, REQUIRED);
        }
    }
    if let Some(zip) = sub.get("zip") {
        if is_us(&country) && !(zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit())) {
            errors.add("zip", BAD_ZIP);
        }
    }
    if let Some(plus4) = sub.get("plus4") {
        if !(plus4.len() == 4 && plus4.bytes().all(|b| b.is_ascii_digit())) {
            errors.add("plus4", "Enter a valid ZIP+4 extension (4 digits).");
        }
    }
    for (name, _) in &sub.user_fields {
        if !st.allowed_user_fields.iter().any(|f| f.name == name) {
            errors.add(
                &format!("user_{name}"),
                &format!("'{name}' is not an allowed user field on this instance."),
            );
        }
    }
    let event_page = st
        .page(page_id)
        .is_some_and(|p| p.ptype == PageType::EventSignup);
    match &sub.event_id {
        Some(e) if e.parse::<u32>().map_or(true, |n| n == 0) => {
            errors.add("event_id", "Enter a whole number.");
        }
        None if event_page => errors.add("event_id", REQUIRED),
        _ => {}
    }
    if let Some(role) = &sub.role {
        if !matches!(role.as_str(), "attendee" | "host") {
            errors.add("role", "Select a valid choice: attendee or host.");
        }
    }
    errors.into_result()
}

/// Step 5a: a new member, with the submitted fields (zip and postal mirrored).
fn create_user(st: &mut Store, sub: &Submission, email: String) -> u32 {
    let now = now_micros() / 1_000_000;
    let e = st.strings.intern("");
    let mut s = [e; 16];
    let mut set = |st: &mut Store, f: &str, v: &str| {
        if let Some(i) = user_str_index(f) {
            s[i] = st.strings.intern(v);
        }
    };
    for (f, v) in &sub.user {
        set(st, f, v);
    }
    if let (Some(z), None) = (sub.get("zip"), sub.get("postal")) {
        set(st, "postal", z);
    }
    if let (Some(p), None) = (sub.get("postal"), sub.get("zip")) {
        set(st, "zip", p);
    }
    set(st, "subscription_status", "subscribed");
    set(st, "source", sub.source.as_deref().unwrap_or("restful_api"));
    st.push_user(User::created(email.into(), s, now))
}

/// A language by id (`100`) or ISO code (`es`).
fn language(lang: &str) -> Option<u32> {
    LANGUAGES
        .iter()
        .find(|l| l.id.to_string() == lang || l.iso_code.eq_ignore_ascii_case(lang))
        .map(|l| l.id)
}

/// Step 5b: the member's fields from the submission. Returns true when a member who
/// was not subscribed is subscribed by this action.
fn update_user(
    st: &mut Store,
    sub: &Submission,
    user_id: u32,
    ptype: PageType,
    created: bool,
) -> bool {
    let syms: Vec<(usize, Sym)> = sub
        .user
        .iter()
        .filter_map(|(f, v)| user_str_index(f).map(|i| (i, st.strings.intern(v))))
        .collect();
    let ufs: Vec<(Sym, Vec<Sym>)> = sub
        .user_fields
        .iter()
        .map(|(n, vs)| {
            (
                st.strings.intern(n),
                vs.iter().map(|v| st.strings.intern(v)).collect(),
            )
        })
        .collect();
    let subscribed = st.strings.intern("subscribed");
    let unsubscribed = st.strings.intern("unsubscribed");
    let phone = sub.phone.as_ref().map(|p| {
        (
            p.clone(),
            st.strings.intern("home"),
            st.strings.intern("action"),
        )
    });
    let lang = sub.lang.as_deref().and_then(language);
    let status_i = user_str_index("subscription_status").unwrap_or(13);
    let now = now_micros() / 1_000_000;
    let mut resubscribed = false;
    let mut new_phone = None;
    if let Some(u) = user_id
        .checked_sub(1)
        .and_then(|i| st.users.get_mut(i as usize))
    {
        if !created {
            for (i, s) in syms {
                u.s[i] = s;
            }
        }
        for (n, vs) in ufs {
            u.fields.retain(|(f, _)| *f != n);
            u.fields.extend(vs.into_iter().map(|v| (n, v)));
        }
        if let Some(l) = lang {
            u.lang = Some(l);
        }
        if ptype == PageType::Unsubscribe {
            u.s[status_i] = unsubscribed;
        } else if !sub.suppress_subscribe && u.s[status_i] != subscribed && !created {
            u.s[status_i] = subscribed;
            resubscribed = true;
        }
        u.updated_at = now;
        new_phone = phone;
    }
    if let Some((number, kind, source)) = new_phone {
        let known = st.user(user_id).is_some_and(|u| {
            u.phones.iter().any(|p| {
                st.phones
                    .get((*p as usize).wrapping_sub(1))
                    .is_some_and(|r| *r.phone == *number)
            })
        });
        if !known {
            st.phones.push(Phone {
                user: user_id,
                phone: number.into(),
                kind,
                source,
                created_at: now,
            });
            let pid = st.phones.len() as u32;
            if let Some(u) = st.users.get_mut((user_id as usize).wrapping_sub(1)) {
                u.phones.push(pid);
            }
        }
    }
    resubscribed
}

/// Step 5c: the action and its custom field rows.
fn create_action(
    ctx: &RequestFacts,
    st: &mut Store,
    sub: &Submission,
    user: u32,
    page: u32,
    mailing: Option<u32>,
    flags: u8,
) -> u32 {
    let now = now_micros();
    let complete = st.strings.intern("complete");
    let source = st
        .strings
        .intern(sub.source.as_deref().unwrap_or("restful_api"));
    let ip = sub
        .ip_address
        .clone()
        .unwrap_or_else(|| ctx.peer.ip().to_string());
    let ip = Ip::parse(st, &ip);
    let referring_user = sub
        .referring_akid
        .as_deref()
        .and_then(|a| st.verify_akid(a))
        .map(|(_, u)| u)
        .or_else(|| {
            sub.referring_user
                .as_ref()
                .and_then(|r| id_from_ref(&Value::String(r.clone())))
        })
        .filter(|u| *u != user && st.user(*u).is_some());
    let action_id = st.push_action(Action {
        user,
        page,
        created_at: now,
        updated_at: now + 31_000,
        status: complete,
        source,
        ip_address: ip,
        referring_user,
        mailing,
        taf_emails_sent: None,
        flags,
        amount_cents: sub.amount_cents,
        fields: Vec::new(),
        deleted: false,
    });
    for (n, vs) in &sub.action_fields {
        for v in vs {
            st.push_actionfield(action_id, n, v);
        }
    }
    action_id
}

/// Step 6: 201, `Location`, and the body for an authenticated or anonymous caller.
fn answer(
    ctx: &RequestFacts,
    st: &Store,
    page_name: &str,
    action_id: u32,
    ptype: PageType,
) -> Response {
    let akid = st
        .action(action_id)
        .map(|a| resources::action_akid(st, a))
        .unwrap_or_default();
    let redirect_url =
        format!("/cms/thanks/{page_name}/?action_id={action_id}&akid={akid}&ar=1&rd=1");
    let location = format!("{}/rest/v1/{}action/{action_id}/", ctx.base, ptype.slug());
    let body = if ctx.authed {
        let mut v = resources::render_action(st, action_id, true);
        if let Value::Object(m) = &mut v {
            m.insert("redirect_url".into(), json!(redirect_url));
        }
        v
    } else {
        json!({"action_id": action_id, "akid": akid, "rd": 1, "redirect_url": redirect_url})
    };
    with_location(json_resp(StatusCode::CREATED, &body), &location)
}
