//! The ActionKit REST client: the only code in the crate that knows ActionKit's URLs,
//! JSON and authentication. Everything above it speaks in typed ids and models.
//!
//! It caps requests in flight process-wide, retries reads that ActionKit says may
//! succeed later, follows `meta.next`, batches with `__in` filters where the instance
//! allows them (learned by [`Client::probe`]) and serializes writes per action.

mod error;
pub mod models;

pub use error::Error;
pub use models::{
    Action, ActionFilter, ActionId, ActionKind, CustomFields, FieldValue, Order, Page, PageId,
    User, UserId, Window,
};

mod client;
pub use client::{Capabilities, Client, ClientConfig, RetryPolicy};
