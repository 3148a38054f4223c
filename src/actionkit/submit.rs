//! Processing an action: a member signs, signs up or RSVPs on a page
//! (`POST /rest/v1/action/`), and what a form needs to know of a page before it
//! submits (required fields, custom user fields the instance allows).
//!
//! ActionKit does not make this call idempotent: the same body sent twice makes two
//! actions. So [`Client::submit_action`] is sent once and never retried here; the
//! outbox above decides, and after an unknown outcome it looks first with
//! [`Client::find_submitted_action`].

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{Action, Client, Error, Page};

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
    /// Where the page sends the member next, when it says.
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

impl Client {
    /// Processes one action: one `POST /rest/v1/action/`, never retried.
    ///
    /// Errors: `BadRequest { messages }` when ActionKit refuses the input (messages keyed
    /// by the submission's field names: `email`, `zip`, `user_<name>`, `action_<name>`,
    /// `page`, or [`NON_FIELD`](super::NON_FIELD)); `RateLimited`, `CircuitOpen`,
    /// `Transport` (nothing was sent), `Unauthorized`: nothing was created;
    /// `WriteOutcomeUnknown` (sent, no answer: timeout, broken connection, 5xx): the
    /// action may exist.
    pub async fn submit_action(
        &self,
        submission: &ActionSubmission,
    ) -> Result<ProcessedAction, Error> {
        let _ = submission;
        Err(Error::InvalidInput("submit_action is not built yet".into()))
    }

    /// After an unknown outcome: the member's newest action on the submission's page
    /// created at or after `since` (with a margin for clock skew), if there is one.
    /// `Ok(None)` when the member or the action does not exist.
    pub async fn find_submitted_action(
        &self,
        submission: &ActionSubmission,
        since: SystemTime,
    ) -> Result<Option<Action>, Error> {
        let _ = (submission, since);
        Err(Error::InvalidInput(
            "find_submitted_action is not built yet".into(),
        ))
    }

    /// The page named `name` with its required fields (`None` when there is none).
    pub async fn page_form(&self, name: &str) -> Result<Option<PageForm>, Error> {
        let _ = name;
        Err(Error::InvalidInput("page_form is not built yet".into()))
    }

    /// Names of the custom user fields the instance allows (`/rest/v1/alloweduserfield/`).
    pub async fn allowed_user_fields(&self) -> Result<Vec<String>, Error> {
        Err(Error::InvalidInput(
            "allowed_user_fields is not built yet".into(),
        ))
    }
}
