//! The mutation root: taking actions (`submitAction`, see `submit.rs`), setting and
//! clearing an action's custom fields.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::{Context, InputObject, Object, ID};

use super::access;
use super::error::{GatewayError, GqlResult};
use super::types::{parse_id, ActionNode};
use crate::actionkit::{ActionId, Client};

/// The most fields one mutation may set or clear.
pub(super) const MAX_FIELDS: usize = 100;
/// The longest value a field may be given, in bytes.
pub(super) const MAX_VALUE_BYTES: usize = 65_536;

/// A custom field to set: its name and its (single) value.
#[derive(InputObject, Debug)]
pub(super) struct CustomFieldInput {
    /// Letters, digits and `_`, 1 to 255 characters.
    pub name: String,
    /// Any text up to 64 KiB.
    pub value: String,
}

pub struct MutationRoot;

fn check_name(name: &str) -> Result<(), GatewayError> {
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(GatewayError::bad_input(format!(
            "custom field name {:?} must be 1 to 255 letters, digits or `_`",
            name.chars().take(64).collect::<String>()
        )))
    }
}

fn check_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<usize, GatewayError> {
    let mut seen = HashSet::new();
    for name in names {
        check_name(name)?;
        if !seen.insert(name) {
            return Err(GatewayError::bad_input(format!(
                "custom field {name:?} is named twice"
            )));
        }
    }
    if seen.len() > MAX_FIELDS {
        return Err(GatewayError::bad_input(format!(
            "at most {MAX_FIELDS} fields per mutation"
        )));
    }
    Ok(seen.len())
}

/// Writes: taking actions for members, and setting or clearing custom fields on
/// actions.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Takes an action on a page for a member: a petition signature, a signup, an
    /// RSVP. Answers `PROCESSED` with the action, or `QUEUED` when ActionKit cannot
    /// take it right now (it is stored and will be delivered exactly once; follow it
    /// with `submission(id)`), or `FAILED` with `fieldErrors` for input to correct.
    /// Input problems are data (`fieldErrors`), not errors; errors are for callers
    /// that may not submit (`FORBIDDEN`) or submit too often (`RATE_LIMITED`).
    async fn submit_action(
        &self,
        ctx: &Context<'_>,
        input: super::submit_input::SubmitActionInput,
    ) -> GqlResult<super::submit::SubmitActionPayload> {
        Box::pin(super::submit::submit_action(ctx, input)).await
    }

    /// Sets custom fields on an action, each to exactly one value, keeping its other
    /// fields. Returns the action as it is after the write. Repeating the same call is
    /// safe. Nothing is written when any input is invalid.
    async fn set_action_custom_fields(
        &self,
        ctx: &Context<'_>,
        action_id: ID,
        fields: Vec<CustomFieldInput>,
    ) -> GqlResult<ActionNode> {
        let id = ActionId(parse_id(&action_id, "actionId")?);
        if check_names(fields.iter().map(|f| f.name.as_str()))? == 0 {
            return Err(GatewayError::bad_input("give at least one field").into());
        }
        for f in &fields {
            if f.value.len() > MAX_VALUE_BYTES || f.value.contains('\0') {
                return Err(GatewayError::bad_input(format!(
                    "the value of {:?} must be text of at most 64 KiB",
                    f.name
                ))
                .into());
            }
        }
        Box::pin(access::check_write(ctx, id)).await?;
        let pairs: Vec<(String, String)> = fields.into_iter().map(|f| (f.name, f.value)).collect();
        let client = ctx.data_unchecked::<Client>();
        let action = Box::pin(client.set_action_fields(id, &pairs))
            .await
            .map_err(GatewayError::from)?;
        Ok(ActionNode::new(Arc::new(action)))
    }

    /// Removes custom fields from an action: the named ones, or all of them when
    /// `names` is omitted. Names the action does not have are ignored. Returns the
    /// action as it is after the write.
    async fn clear_action_custom_fields(
        &self,
        ctx: &Context<'_>,
        action_id: ID,
        names: Option<Vec<String>>,
    ) -> GqlResult<ActionNode> {
        let id = ActionId(parse_id(&action_id, "actionId")?);
        if let Some(names) = &names {
            check_names(names.iter().map(String::as_str))?;
        }
        Box::pin(access::check_write(ctx, id)).await?;
        let client = ctx.data_unchecked::<Client>();
        let action = Box::pin(client.clear_action_fields(id, names.as_deref()))
            .await
            .map_err(GatewayError::from)?;
        Ok(ActionNode::new(Arc::new(action)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_names(["a", "b_2"].into_iter()).is_ok());
        assert!(check_names(["a", "a"].into_iter()).is_err());
        assert!(check_names(["bad name"].into_iter()).is_err());
        assert!(check_names([""].into_iter()).is_err());
        let long = "x".repeat(256);
        assert!(check_names([long.as_str()].into_iter()).is_err());
    }
}
