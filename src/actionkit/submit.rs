//! Processing an action: a member signs, signs up or RSVPs on a page
//! (`POST /rest/v1/action/`), and what a form needs to know of a page before it
//! submits (required fields, custom user fields the instance allows).
//!
//! ActionKit does not make this call idempotent: the same body sent twice makes two
//! actions. So [`Client::submit_action`] is sent once and never retried here; the
//! outbox above decides, and after an unknown outcome it looks first with
//! [`Client::find_submitted_action`].
//!
//! Upstream calls:
//!
//! | operation | calls |
//! |---|---|
//! | `submit_action` | 1 (`POST /rest/v1/action/`); +1 `GET /rest/v1/action/<id>/` when the answer is the reduced `{action_id, akid, rd, redirect_url}` |
//! | `find_submitted_action` | by email 1 (user) + 1 (actions); by AKID 1 (actions); +1 page lookup by name (cached) where `page__name` is not allowed |
//! | `page_form` | 1 (`GET /rest/v1/page/?name=`) |
//! | `allowed_user_fields` | ⌈fields/100⌉, then 0 for `allowed_user_fields_ttl` |

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::akid;
use super::models::{ActionFilter, UserId};
use super::reads::encode_query_value;
use super::transport::{self, Idempotency, Request};
use super::writes::{validate_name, MAX_FIELD_VALUE_BYTES};
use super::{Action, Client, Error, Page, NON_FIELD};

/// How far before `since` [`Client::find_submitted_action`] still accepts an action's
/// `created_at`: ActionKit stamps actions with its own clock (naive UTC), which may be
/// behind ours. Two minutes covers any NTP-synchronised pair of hosts with room to
/// spare while keeping the window short: an action the member made on the same page
/// within this margin before the submission is taken for it.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(120);

/// One submission as the gateway sends it, in plain names (no ActionKit wire names:
/// those are built here and only here). Serializable so that the outbox can store it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionSubmission {
    /// The page's short name.
    pub page: String,
    /// The member, by email or by AKID (at least one).
    pub email: Option<String>,
    pub akid: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A full name, split by ActionKit.
    pub name: Option<String>,
    pub address1: Option<String>,
    pub address2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub postal: Option<String>,
    pub region: Option<String>,
    pub country: Option<String>,
    pub phone: Option<String>,
    pub lang: Option<String>,
    /// Custom user fields (`user_<name>`), in order.
    pub user_fields: Vec<(String, String)>,
    /// Custom action fields (`action_<name>`); a name repeated means several values.
    pub action_fields: Vec<(String, String)>,
    pub referring_akid: Option<String>,
    pub source: Option<String>,
    /// Event RSVP: the event's id and the role (`attendee` or `host`).
    pub event_id: Option<u64>,
    pub role: Option<String>,
}

/// What ActionKit answered to a processed action.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedAction {
    /// The created action, typed by its page's type.
    pub action: Action,
    /// Where the page sends the member next, when it says. As ActionKit sent it: a path
    /// on the ActionKit host (`/cms/thanks/<page>/?action_id=…&akid=…&ar=1&rd=1`).
    pub redirect_url: Option<String>,
}

/// A page as a form needs it: the page, and the fields a submission must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct PageForm {
    pub page: Page,
    /// Names of the page's required user fields (`zip`, `first_name`, ...), as
    /// [`ActionSubmission`] names them.
    pub required_fields: Vec<String>,
}

/// The plain (non-custom) fields of a submission, by their names, which are also
/// ActionKit's.
const PLAIN_FIELDS: [&str; 15] = [
    "email",
    "akid",
    "first_name",
    "last_name",
    "name",
    "address1",
    "address2",
    "city",
    "state",
    "zip",
    "postal",
    "region",
    "country",
    "phone",
    "lang",
];

impl ActionSubmission {
    fn plain(&self) -> [(&'static str, &Option<String>); 15] {
        [
            ("email", &self.email),
            ("akid", &self.akid),
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("name", &self.name),
            ("address1", &self.address1),
            ("address2", &self.address2),
            ("city", &self.city),
            ("state", &self.state),
            ("zip", &self.zip),
            ("postal", &self.postal),
            ("region", &self.region),
            ("country", &self.country),
            ("phone", &self.phone),
            ("lang", &self.lang),
        ]
    }

    fn email(&self) -> Option<&str> {
        self.email.as_deref().filter(|e| !e.is_empty())
    }

    fn akid(&self) -> Option<&str> {
        self.akid.as_deref().filter(|a| !a.is_empty())
    }
}

/// The JSON body of `POST /rest/v1/action/` for `s`: the plain fields under their own
/// names, `user_<name>` and `action_<name>` (a string, or a list when a name repeats),
/// `referring_akid`, `source`, `event_id` (a number) and `role`. `None` values are left
/// out. Refuses (`InvalidInput`, nothing sent) a submission without page, without
/// email or AKID, with a custom field name outside `^[A-Za-z0-9_]{1,255}$`, or with a
/// NUL character or a custom value over 64 KiB.
pub(crate) fn wire_body(s: &ActionSubmission) -> Result<Map<String, Value>, Error> {
    if s.page.is_empty() {
        return Err(Error::InvalidInput("page is required".into()));
    }
    if s.email().is_none() && s.akid().is_none() {
        return Err(Error::InvalidInput("email or akid is required".into()));
    }
    let mut body = Map::new();
    let mut text = |key: &str, value: &str| -> Result<(), Error> {
        if value.contains('\0') {
            return Err(Error::InvalidInput(format!(
                "value of {key} contains a NUL character"
            )));
        }
        body.insert(key.to_owned(), Value::String(value.to_owned()));
        Ok(())
    };
    text("page", &s.page)?;
    for (key, value) in s.plain() {
        if let Some(v) = value {
            text(key, v)?;
        }
    }
    if let Some(v) = &s.referring_akid {
        text("referring_akid", v)?;
    }
    if let Some(v) = &s.source {
        text("source", v)?;
    }
    if let Some(v) = &s.role {
        text("role", v)?;
    }
    if let Some(id) = s.event_id {
        body.insert("event_id".into(), Value::from(id));
    }
    for (prefix, fields) in [("user_", &s.user_fields), ("action_", &s.action_fields)] {
        for (key, values) in group(prefix, fields)? {
            let value = match <[String; 1]>::try_from(values) {
                Ok([one]) => Value::String(one),
                Err(many) => Value::Array(many.into_iter().map(Value::String).collect()),
            };
            body.insert(key, value);
        }
    }
    Ok(body)
}

/// Custom fields grouped by wire name (`<prefix><name>`), names in first-seen order.
fn group(prefix: &str, fields: &[(String, String)]) -> Result<Vec<(String, Vec<String>)>, Error> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in fields {
        validate_name(name)?;
        if value.contains('\0') || value.len() > MAX_FIELD_VALUE_BYTES {
            return Err(Error::InvalidInput(format!(
                "value of {prefix}{name} contains a NUL character or is longer than \
                 {MAX_FIELD_VALUE_BYTES} bytes"
            )));
        }
        let key = format!("{prefix}{name}");
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, values)) => values.push(value.clone()),
            None => out.push((key, vec![value.clone()])),
        }
    }
    Ok(out)
}

/// The submission's name for a field ActionKit names `name` in an error or in a page's
/// `required_fields`; `None` for a name a submission cannot carry.
fn submission_name(name: &str) -> Option<String> {
    match name {
        n if PLAIN_FIELDS.contains(&n) => Some(n.to_owned()),
        "page" | "referring_akid" | "source" | "event_id" | "role" => Some(name.to_owned()),
        n if n.starts_with("user_") || n.starts_with("action_") => Some(n.to_owned()),
        // An AKID that does not verify is reported against the mailing it names
        // (reference §4.1).
        "mailing_id" | "mailing" => Some("akid".into()),
        "mobile_phone" | "home_phone" | "work_phone" => Some("phone".into()),
        "referring_user" => Some("referring_akid".into()),
        "event" => Some("event_id".into()),
        "full_name" => Some("name".into()),
        _ => None,
    }
}

/// Field messages keyed by the submission's names; messages for fields a submission
/// cannot carry go under [`NON_FIELD`], prefixed with ActionKit's name.
fn submission_messages(messages: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (field, msgs) in messages {
        if field == NON_FIELD || field == "non_field_errors" {
            out.entry(NON_FIELD.to_owned()).or_default().extend(msgs);
            continue;
        }
        match submission_name(&field) {
            Some(name) => out.entry(name).or_default().extend(msgs),
            None => out
                .entry(NON_FIELD.to_owned())
                .or_default()
                .extend(msgs.into_iter().map(|m| format!("{field}: {m}"))),
        }
    }
    out
}

/// A failure of the POST, in the terms of [`Client::submit_action`].
fn submit_error(e: Error) -> Error {
    match e {
        Error::BadRequest { messages } => Error::BadRequest {
            messages: submission_messages(messages),
        },
        // 5xx: ActionKit may have processed the action before failing.
        Error::Status { status: 500..=599 } => Error::WriteOutcomeUnknown,
        // A 2xx whose body was too large to read: the action exists.
        Error::Decode { .. } => Error::WriteOutcomeUnknown,
        other => other,
    }
}

/// A number, or a string of digits.
fn as_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` (ActionKit's naive UTC; a space for `T` accepted).
fn parse_naive_utc(s: &str) -> Option<time::OffsetDateTime> {
    use time::macros::format_description;
    let with_t = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let with_space = format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    time::PrimitiveDateTime::parse(s, with_t)
        .or_else(|_| time::PrimitiveDateTime::parse(s, with_space))
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

/// A page with the form-related keys the [`Page`] model leaves out.
#[derive(Deserialize)]
struct FormPage {
    #[serde(flatten)]
    page: Page,
    #[serde(default)]
    required_fields: Option<Vec<RequiredField>>,
}

#[derive(Deserialize)]
struct RequiredField {
    name: String,
}

#[derive(Deserialize)]
struct AllowedUserField {
    name: String,
}

impl Client {
    /// Processes one action: one `POST /rest/v1/action/`, never retried.
    ///
    /// Errors: `BadRequest { messages }` when ActionKit refuses the input (messages keyed
    /// by the submission's field names: `email`, `zip`, `user_<name>`, `action_<name>`,
    /// `page`, or [`NON_FIELD`](super::NON_FIELD)); `RateLimited`, `CircuitOpen`,
    /// `Transport` (nothing was sent), `Unauthorized`: nothing was created;
    /// `WriteOutcomeUnknown` (sent, no answer: timeout, broken connection, 5xx): the
    /// action may exist.
    ///
    /// Also, all meaning nothing was created: `InvalidInput` (refused before sending:
    /// no page, neither email nor AKID, a bad custom field name, a NUL character),
    /// `Timeout` (the operation deadline passed while waiting for a slot under the
    /// process-wide cap, before sending), `NotFound` and `Status` (another 4xx).
    /// A 2xx whose body cannot be read, or whose action cannot be read back (the
    /// reduced answer), is `WriteOutcomeUnknown` too: the action exists but is not known.
    ///
    /// An invalid AKID is refused by ActionKit with messages under `mailing_id`; they
    /// come back under `akid`. ActionKit's messages for fields a submission cannot
    /// carry come under `NON_FIELD`, prefixed with ActionKit's name.
    pub async fn submit_action(
        &self,
        submission: &ActionSubmission,
    ) -> Result<ProcessedAction, Error> {
        let body = serde_json::to_vec(&Value::Object(wire_body(submission)?))
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let deadline = self.deadline();
        let req = Request {
            method: Method::POST,
            route: "/rest/v1/action/",
            path: "/rest/v1/action/",
            body: Some(body),
            idempotency: Idempotency::Once,
        };
        // Not wrapped in `bounded`: an outer timeout could not tell a request that was
        // never sent from one without an answer. The transport watches the deadline
        // and says which.
        let answer = self
            .inner
            .transport
            .send(&req, deadline)
            .await
            .map_err(submit_error)?;
        self.processed(&answer, deadline).await
    }

    /// Reads a 2xx answer of action processing: the authenticated shape (the typed
    /// action plus `redirect_url`), or the unauthenticated one (`{action_id, akid, rd,
    /// redirect_url}`), in which case the action is read with one GET.
    async fn processed(&self, body: &[u8], deadline: Instant) -> Result<ProcessedAction, Error> {
        let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
            tracing::warn!("ActionKit's answer to an action is not a JSON object");
            return Err(Error::WriteOutcomeUnknown);
        };
        let redirect_url = answer
            .get("redirect_url")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if answer.contains_key("type") {
            match transport::decode::<Action>(body) {
                Ok(action) => {
                    return Ok(ProcessedAction {
                        action,
                        redirect_url,
                    })
                }
                Err(e) => tracing::warn!(error = %e, "could not read the processed action"),
            }
        }
        let Some(id) = ["action_id", "id"]
            .iter()
            .find_map(|k| answer.get(*k).and_then(as_id))
        else {
            tracing::warn!("ActionKit's answer to an action names no action");
            return Err(Error::WriteOutcomeUnknown);
        };
        match self
            .one_in::<super::Action>(super::ActionId(id), deadline)
            .await
        {
            Ok(Some(action)) => Ok(ProcessedAction {
                action,
                redirect_url,
            }),
            Ok(None) => {
                tracing::warn!(action = id, "the processed action is not found");
                Err(Error::WriteOutcomeUnknown)
            }
            Err(e) => {
                tracing::warn!(action = id, error = %e, "could not read the processed action");
                Err(Error::WriteOutcomeUnknown)
            }
        }
    }

    /// After an unknown outcome: the member's newest action on the submission's page
    /// created at or after `since` (with a margin for clock skew), if there is one.
    /// `Ok(None)` when the member or the action does not exist.
    ///
    /// The member is the one ActionKit would have processed the submission for: by
    /// email when the submission has one (`GET /rest/v1/user/?email=`), else the user
    /// the AKID names (no call; with the AKID secret configured, an AKID that does not
    /// verify names nobody, as ActionKit would have refused it). Then one
    /// `GET /rest/v1/action/?user=<id>&page=<page id>&order_by=-created_at&_limit=1`
    /// (`page__name=<name>` instead where the instance allows it, else the page id from
    /// the cached name lookup), and the action is taken when its `created_at` is at or
    /// after `since -` [`CLOCK_SKEW_MARGIN`]. Only filters the reference shows working
    /// in real clients are sent (`user`, `page`, `order_by=-created_at`); the time is
    /// compared here, which gives the same answer as a `created_at__gte` filter.
    ///
    /// Errors: `InvalidInput` for a submission without page or member; the read errors
    /// of the calls above; `Decode` when the action's `created_at` cannot be read.
    pub async fn find_submitted_action(
        &self,
        submission: &ActionSubmission,
        since: SystemTime,
    ) -> Result<Option<Action>, Error> {
        if submission.page.is_empty() || submission.page.contains('\0') {
            return Err(Error::InvalidInput("page is required".into()));
        }
        let threshold = since
            .checked_sub(CLOCK_SKEW_MARGIN)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let threshold = time::OffsetDateTime::from(threshold);
        let deadline = self.deadline();
        self.bounded(deadline, async {
            let Some(user) = self.submitter(submission, deadline).await? else {
                return Ok(None);
            };
            let filter = ActionFilter {
                kind: None,
                page_name: Some(submission.page.clone()),
            };
            let Some(q) = self.action_query(&filter, deadline).await? else {
                return Ok(None);
            };
            let path = format!(
                "{}user={user}{}&order_by=-created_at&_limit=1",
                q.base, q.page_filter
            );
            let newest = self.first_page::<Action>(q.route, &path, deadline).await?;
            // Rows of another user (an ignored filter) are not the submission's.
            let Some(action) = newest.objects.into_iter().find(|a| a.user_id() == user) else {
                return Ok(None);
            };
            let created = parse_naive_utc(&action.created_at).ok_or_else(|| Error::Decode {
                path: "objects[0].created_at".into(),
                message: format!("not a naive UTC time: {:?}", action.created_at),
            })?;
            Ok((created >= threshold).then_some(action))
        })
        .await
    }

    /// The user a submission names, as ActionKit would have processed it (see
    /// [`find_submitted_action`](Self::find_submitted_action)).
    async fn submitter(
        &self,
        submission: &ActionSubmission,
        deadline: Instant,
    ) -> Result<Option<UserId>, Error> {
        if let Some(email) = submission.email() {
            return Ok(self.user_by_email_in(email, deadline).await?.map(|u| u.id));
        }
        let Some(raw) = submission.akid() else {
            return Err(Error::InvalidInput("email or akid is required".into()));
        };
        let Some(parsed) = akid::parse(raw) else {
            return Ok(None);
        };
        if let Some(secret) = &self.inner.akid_secret {
            if !akid::verify(secret, &parsed) {
                return Ok(None);
            }
        }
        Ok(Some(parsed.user))
    }

    /// The page named `name` with its required fields (`None` when there is none).
    ///
    /// One call, `GET /rest/v1/page/?name=<name>`; the page's id and kind also go into
    /// the short-lived page-name cache, so a following
    /// [`find_submitted_action`](Self::find_submitted_action) need not look it up.
    /// ActionKit's required field names are mapped to the submission's
    /// (`mobile_phone` → `phone`, ...); names a submission cannot carry (`plus4`,
    /// `prefix`, ...) are kept as ActionKit sent them, so that a caller can refuse a
    /// page it cannot fill.
    pub async fn page_form(&self, name: &str) -> Result<Option<PageForm>, Error> {
        if name.is_empty() || name.contains('\0') {
            return Err(Error::InvalidInput(
                "page name must be a non-empty string".into(),
            ));
        }
        let deadline = self.deadline();
        let path = format!("/rest/v1/page/?name={}", encode_query_value(name));
        let pages: Vec<FormPage> = self
            .bounded(deadline, async {
                Ok(self
                    .first_page("/rest/v1/page/", &path, deadline)
                    .await?
                    .objects)
            })
            .await?;
        let Some(found) = pages.into_iter().find(|p| p.page.name == name) else {
            return Ok(None);
        };
        if let Some(cell) = self.inner.page_names.cell(name) {
            // Already filled (by a concurrent lookup) is fine: same page.
            let _ = cell.set(Some((found.page.id, found.page.kind.clone())));
        }
        let mut required_fields: Vec<String> = Vec::new();
        for f in found.required_fields.unwrap_or_default() {
            let n = submission_name(&f.name).unwrap_or(f.name);
            if !required_fields.contains(&n) {
                required_fields.push(n);
            }
        }
        Ok(Some(PageForm {
            page: found.page,
            required_fields,
        }))
    }

    /// Names of the custom user fields the instance allows (`/rest/v1/alloweduserfield/`).
    ///
    /// Reads every page of `GET /rest/v1/alloweduserfield/?_limit=100` and keeps the
    /// names for [`ClientConfig::allowed_user_fields_ttl`](super::ClientConfig)
    /// (default 60 s; failures are not kept). Names as ActionKit has them (`age`, not
    /// `user_age`).
    pub async fn allowed_user_fields(&self) -> Result<Vec<String>, Error> {
        let cache = &self.inner.allowed_user_fields;
        if let Some(names) = cache.as_ref().and_then(|c| c.get(&())) {
            return Ok(names.as_ref().clone());
        }
        let deadline = self.deadline();
        let rows: Vec<AllowedUserField> = self
            .bounded(
                deadline,
                self.collect_all(
                    "/rest/v1/alloweduserfield/",
                    "/rest/v1/alloweduserfield/?_limit=100",
                    deadline,
                ),
            )
            .await?;
        let mut names: Vec<String> = Vec::with_capacity(rows.len());
        for row in rows {
            if !names.contains(&row.name) {
                names.push(row.name);
            }
        }
        if let Some(c) = cache {
            c.insert((), Arc::new(names.clone()));
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_body_uses_actionkit_names_and_lists_for_repeated_fields() {
        let s = ActionSubmission {
            page: "save-the-bees".into(),
            email: Some("a@example.org".into()),
            zip: Some("94612".into()),
            user_fields: vec![("age".into(), "34".into())],
            action_fields: vec![
                ("comment".into(), "hi".into()),
                ("tag".into(), "a".into()),
                ("tag".into(), "b".into()),
            ],
            event_id: Some(7),
            role: Some("attendee".into()),
            ..ActionSubmission::default()
        };
        assert_eq!(
            Value::Object(wire_body(&s).unwrap()),
            json!({"page": "save-the-bees", "email": "a@example.org", "zip": "94612",
                   "user_age": "34", "action_comment": "hi", "action_tag": ["a", "b"],
                   "event_id": 7, "role": "attendee"})
        );
    }

    #[test]
    fn wire_body_refuses_what_actionkit_cannot_take() {
        let ok = ActionSubmission {
            page: "p".into(),
            akid: Some(".1.abcdef".into()),
            ..ActionSubmission::default()
        };
        assert!(wire_body(&ok).is_ok());
        for bad in [
            ActionSubmission {
                page: String::new(),
                ..ok.clone()
            },
            ActionSubmission {
                akid: Some(String::new()),
                ..ok.clone()
            },
            ActionSubmission {
                action_fields: vec![("a-b".into(), "x".into())],
                ..ok.clone()
            },
            ActionSubmission {
                first_name: Some("a\0b".into()),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(wire_body(&bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_fields_are_named_as_the_submission_names_them() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<String>> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect()
        };
        assert_eq!(
            submission_messages(m(&[
                ("zip", "bad"),
                ("mailing_id", "no"),
                ("plus4", "x"),
                ("user_age", "y")
            ])),
            m(&[
                ("zip", "bad"),
                ("akid", "no"),
                (NON_FIELD, "plus4: x"),
                ("user_age", "y")
            ])
        );
    }

    #[test]
    fn naive_utc_times_parse() {
        let t = parse_naive_utc("2016-02-11T16:34:43.628761").unwrap();
        assert_eq!(t.unix_timestamp(), 1_455_208_483);
        assert_eq!(
            parse_naive_utc("2016-02-11 16:34:43")
                .unwrap()
                .unix_timestamp(),
            1_455_208_483
        );
        assert!(parse_naive_utc("yesterday").is_none());
    }
}
