//! The ActionKit REST client: the only code in the crate that knows ActionKit's URLs,
//! JSON and authentication. Everything above it speaks in typed ids and models.
//!
//! It caps requests in flight process-wide (a freed slot goes to the caller holding the
//! fewest, so one caller cannot starve the others), retries reads that ActionKit says
//! may succeed later, follows `meta.next`, batches with `__in` filters where the
//! instance allows them (learned by [`Client::probe`]) and serializes writes per action.
//!
//! Upstream calls per operation (`c` = capability found by the probe; all fan-outs and
//! later pages run in parallel under the cap, `max_in_flight`, default 8):
//!
//! | operation | calls |
//! |---|---|
//! | `probe` | 3 (user, action, page schema) |
//! | `user`, `action`, `page`, `user_by_email`, `page_by_name` | 1 |
//! | `user_by_akid` | 1 with the AKID secret (0 if the hash is wrong), else 2 (`userpublic`, then the user) |
//! | `users`/`actions`/`pages` of N distinct ids | ⌈N/100⌉ with `id__in`, else N |
//! | `user_actions(offset, limit)` | ⌈limit/100⌉ (+1 page lookup by name without `page__name`, cached 60 s) |
//! | `actions_of_users` of N users, R rows | ⌈R/100⌉ (at least ⌈N/100⌉); `None` at once without `user__in` |
//! | `set_action_fields` | 3 (GET, PATCH, GET); 1 when nothing changes |
//! | `clear_action_fields`, replace semantics | 3 (GET, PATCH, GET); 1 when none of the names is set |
//! | `clear_action_fields`, merge semantics | first time 3 + 1 list + 1 per row + 1; later 1 + 1 + rows + 1 |
//! | `submit_action` | 1 (`POST /rest/v1/action/`, never retried); 2 when the answer is the reduced `{action_id, …}` (+1 `GET /rest/v1/action/<id>/`) |
//! | `find_submitted_action` | by email 2 (user by email, actions), by AKID 1 (actions); +1 page lookup by name (cached 60 s) without `page__name` |
//! | `page_form` | 1 (`GET /rest/v1/page/?name=`; primes the page-name cache) |
//! | `allowed_user_fields` | ⌈fields/100⌉, then 0 while cached (60 s) |
//! | `page_progress` | 1 (`GET /progress/?page=`); 2 where the instance has no such endpoint (page by name, `action/?page=<id>&_limit=1`) |
//!
//! Retries add calls (never to `submit_action`); [`UpstreamCounter`] counts them per
//! operation. Identical reads share calls: one in flight is joined, and one that
//! landed less than `share_window` ago (off by default; 2 ms in the gateway) is
//! reused, except by the read of a read-modify-write (`singleflight.rs`).
//!
//! Files: `config.rs` (settings), `transport.rs` (one HTTP exchange: auth, cap,
//! retries, deadline, tracing, status mapping), `pagination.rs` (collections and
//! windows), `capabilities.rs` (the schema probe), `akid.rs`, `reads/` (users, actions,
//! pages), `submit.rs` (action processing, page forms, allowed user fields), `writes.rs`,
//! `accounting.rs` (call counters), `fair.rs` (the in-flight cap, shared fairly between
//! callers), `wire.rs` (the collection envelope), `models.rs`,
//! `breaker.rs` (the circuit breaker every attempt passes through), `singleflight.rs`
//! (identical reads sent once).

mod accounting;
pub mod akid;
mod breaker;
pub mod budget;
mod capabilities;
mod client;
mod config;
mod error;
mod exchange;
mod fair;
pub mod models;
mod page_names;
mod pagination;
mod reads;
mod singleflight;
mod submit;
mod transport;
pub mod wire;
mod writes;

pub use accounting::{CallTotals, UpstreamCounter};
pub use breaker::{BreakerPolicy, BreakerState};
pub use budget::{BudgetSlot, GlobalBudget};
pub use capabilities::Capabilities;
pub use client::Client;
pub use config::{ClientConfig, RetryPolicy};
pub use error::{Error, NON_FIELD};
pub use models::{
    Action, ActionField, ActionFilter, ActionId, ActionKind, CustomFields, FieldValue, Order, Page,
    PageId, User, UserId, Window,
};
pub use reads::{ById, Each};
pub use reads::{GoalType, PageProgress};
pub use submit::{ActionSubmission, PageForm, ProcessedAction, CLOCK_SKEW_MARGIN};
pub use writes::MAX_FIELD_VALUE_BYTES;
