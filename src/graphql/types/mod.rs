//! GraphQL object types. Each wraps a client model and resolves relations through the
//! request's loaders.

mod action;
mod custom_field;
mod page;
pub(crate) mod user;

pub use action::{ActionNode, ActionType};
pub use custom_field::{CustomField, CustomFieldList};
pub use page::PageNode;
pub use user::UserNode;

use async_graphql::ID;

use super::error::GatewayError;

/// Parses a GraphQL `ID` into an ActionKit numeric id, refusing anything else before a
/// request is sent.
pub(crate) fn parse_id(id: &ID, what: &str) -> Result<u64, GatewayError> {
    let s = id.as_str();
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GatewayError::bad_input(format!(
            "{what} must be a positive integer id"
        )));
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(GatewayError::bad_input(format!(
            "{what} must be a positive integer id"
        ))),
    }
}

/// Checks a page short name (a Django slug) before it is sent anywhere.
pub(crate) fn check_page_name(name: &str, arg: &str) -> Result<(), GatewayError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(GatewayError::bad_input(format!(
            "`{arg}` must be a page short name (letters, digits, `-` and `_`)"
        )))
    }
}
