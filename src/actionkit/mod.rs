//! The ActionKit REST client: the only code in the crate that knows ActionKit's URLs,
//! JSON and authentication. Everything above it speaks in typed ids and models.
//!
//! It caps requests in flight process-wide, retries reads that ActionKit says may
//! succeed later, follows `meta.next`, batches with `__in` filters where the instance
//! allows them (learned by [`Client::probe`]) and serializes writes per action.
//!
//! Files: `config.rs` (settings), `transport.rs` (one HTTP exchange: auth, cap,
//! retries, deadline, tracing, status mapping), `pagination.rs` (collections and
//! windows), `capabilities.rs` (the schema probe), `akid.rs`, `reads.rs`, `writes.rs`,
//! `accounting.rs` (call counters), `wire.rs` (the collection envelope), `models.rs`.

mod accounting;
mod akid;
mod capabilities;
mod client;
mod config;
mod error;
pub mod models;
mod page_names;
mod pagination;
mod reads;
mod transport;
pub mod wire;
mod writes;

pub use accounting::{CallTotals, UpstreamCounter};
pub use capabilities::Capabilities;
pub use client::Client;
pub use config::{ClientConfig, RetryPolicy};
pub use error::{Error, NON_FIELD};
pub use models::{
    Action, ActionField, ActionFilter, ActionId, ActionKind, CustomFields, FieldValue, Order, Page,
    PageId, User, UserId, Window,
};
pub use writes::MAX_FIELD_VALUE_BYTES;
