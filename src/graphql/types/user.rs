use std::sync::Arc;

use async_graphql::{Context, Object, ID};
use base64::Engine as _;

use super::{check_page_name, ActionNode, ActionType, CustomFieldList};
use crate::actionkit::{ActionFilter, User, UserId};
use crate::graphql::error::{GatewayError, GqlResult};
use crate::graphql::loaders::{Loaders, UserActionsKey};

/// The most actions one `actions` page may ask for (ActionKit's own page cap).
pub(crate) const MAX_FIRST: i32 = 100;
/// How many actions `actions` returns when `first` is not given.
pub(crate) const DEFAULT_FIRST: i32 = 20;

/// An ActionKit user: a member of the organization.
pub struct UserNode {
    user: Arc<User>,
}

impl UserNode {
    pub fn new(user: Arc<User>) -> Self {
        UserNode { user }
    }
}

/// Reads the `actions` arguments into the loader key, refusing bad input before any
/// upstream call.
pub(crate) fn actions_key(
    user: UserId,
    kind: Option<ActionType>,
    page_name: Option<String>,
    first: i32,
    after: Option<&str>,
) -> Result<UserActionsKey, GatewayError> {
    if !(0..=MAX_FIRST).contains(&first) {
        return Err(GatewayError::bad_input(format!(
            "`first` must be between 0 and {MAX_FIRST}"
        )));
    }
    let kind = match kind {
        None => None,
        Some(t) => Some(t.to_kind().ok_or_else(|| {
            GatewayError::bad_input("`type: OTHER` names no single action type and cannot filter")
        })?),
    };
    if let Some(name) = &page_name {
        check_page_name(name, "pageName")?;
    }
    let offset = match after {
        None => 0,
        Some(cursor) => decode_cursor(cursor)? + 1,
    };
    Ok(UserActionsKey {
        user,
        filter: ActionFilter { kind, page_name },
        offset,
        // `first: 0` still needs one row from ActionKit, where `_limit=0` means "all".
        limit: first.max(1) as u64,
    })
}

const CURSOR_PREFIX: &str = "actions:";

fn encode_cursor(offset: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

fn decode_cursor(cursor: &str) -> Result<u64, GatewayError> {
    let bad = || GatewayError::bad_input("`after` is not a cursor this API returned");
    if cursor.len() > 64 {
        return Err(bad());
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let digits = text.strip_prefix(CURSOR_PREFIX).ok_or_else(bad)?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

/// A member (an ActionKit user): their details, custom user fields and actions.
#[Object(name = "User")]
impl UserNode {
    /// The user's ActionKit id.
    async fn id(&self) -> ID {
        ID(self.user.id.to_string())
    }
    /// The user's email address.
    async fn email(&self) -> &str {
        &self.user.email
    }
    /// First name (may be empty).
    async fn first_name(&self) -> &str {
        &self.user.first_name
    }
    /// Last name (may be empty).
    async fn last_name(&self) -> &str {
        &self.user.last_name
    }
    /// City (may be empty).
    async fn city(&self) -> &str {
        &self.user.city
    }
    /// State or region code (may be empty).
    async fn state(&self) -> &str {
        &self.user.state
    }
    /// ZIP or postal code (may be empty).
    async fn zip(&self) -> &str {
        &self.user.zip
    }
    /// Country name (may be empty).
    async fn country(&self) -> &str {
        &self.user.country
    }
    /// `subscribed`, `unsubscribed`, `never` or another ActionKit status.
    async fn subscription_status(&self) -> &str {
        &self.user.subscription_status
    }
    /// When the user was created (naive ISO-8601 timestamp, UTC).
    async fn created_at(&self) -> &str {
        &self.user.created_at
    }
    /// When the user last changed (naive ISO-8601 timestamp, UTC).
    async fn updated_at(&self) -> &str {
        &self.user.updated_at
    }
    /// The user's custom user fields, sorted by name.
    async fn custom_fields(&self) -> CustomFieldList<'_> {
        CustomFieldList(&self.user.fields)
    }
    /// The user's actions, oldest first, optionally of one type and on one page.
    #[graphql(
        complexity = "crate::graphql::limits::list_cost(first.map(i64::from), child_complexity)"
    )]
    async fn actions(
        &self,
        ctx: &Context<'_>,
        #[graphql(name = "type", desc = "Only actions of this type (not `OTHER`).")] kind: Option<
            ActionType,
        >,
        #[graphql(desc = "Only actions on the page with this short name.")] page_name: Option<
            String,
        >,
        #[graphql(default = 20, desc = "How many actions to return, 0 to 100.")] first: Option<i32>,
        #[graphql(desc = "Return actions after this cursor (from `pageInfo.endCursor`).")]
        after: Option<String>,
    ) -> GqlResult<ActionConnection> {
        let first = first.unwrap_or(DEFAULT_FIRST);
        let key = actions_key(self.user.id, kind, page_name, first, after.as_deref())?;
        let loaders = ctx.data_unchecked::<Loaders>();
        let window = Box::pin(loaders.user_actions(key.clone()))
            .await
            .map_err(GatewayError::from)?;
        let take = first.max(0) as usize;
        let edges: Vec<ActionEdge> = window
            .objects
            .iter()
            .take(take)
            .enumerate()
            .map(|(i, action)| ActionEdge {
                offset: key.offset + i as u64,
                node: ActionNode::new(action.clone()),
            })
            .collect();
        let end = key.offset + edges.len() as u64;
        Ok(ActionConnection {
            page_info: PageInfo {
                has_next_page: end < window.total_count,
                has_previous_page: key.offset > 0,
                start: edges.first().map(|e| e.offset),
                end: edges.last().map(|e| e.offset),
            },
            total_count: window.total_count.min(i32::MAX as u64) as i32,
            edges,
        })
    }
}

/// A page of a user's actions, Relay style.
pub(crate) struct ActionConnection {
    edges: Vec<ActionEdge>,
    page_info: PageInfo,
    total_count: i32,
}

/// One page of a member's actions (Relay connection), with the total count.
#[Object]
impl ActionConnection {
    /// The actions of this page with their cursors.
    async fn edges(&self) -> &[ActionEdge] {
        &self.edges
    }
    /// The actions of this page.
    async fn nodes(&self) -> Vec<&ActionNode> {
        self.edges.iter().map(|e| &e.node).collect()
    }
    /// Where this page sits in the whole list.
    async fn page_info(&self) -> &PageInfo {
        &self.page_info
    }
    /// How many actions match the filters in all.
    async fn total_count(&self) -> i32 {
        self.total_count
    }
}

/// One action and its cursor.
pub(crate) struct ActionEdge {
    /// The action's place in the whole list; its cursor is made only when asked for.
    offset: u64,
    node: ActionNode,
}

/// One action and its cursor.
#[Object]
impl ActionEdge {
    /// Pass as `after` to continue after this action.
    async fn cursor(&self) -> String {
        encode_cursor(self.offset)
    }
    /// The action.
    async fn node(&self) -> &ActionNode {
        &self.node
    }
}

/// Relay page information. Cursors are made only when asked for.
pub(crate) struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    /// Offsets of the first and the last action of this page.
    start: Option<u64>,
    end: Option<u64>,
}

/// Relay page information.
#[Object]
impl PageInfo {
    /// Whether more actions follow this page.
    async fn has_next_page(&self) -> bool {
        self.has_next_page
    }
    /// Whether actions precede this page.
    async fn has_previous_page(&self) -> bool {
        self.has_previous_page
    }
    /// The cursor of the first action of this page.
    async fn start_cursor(&self) -> Option<String> {
        self.start.map(encode_cursor)
    }
    /// The cursor of the last action of this page.
    async fn end_cursor(&self) -> Option<String> {
        self.end.map(encode_cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for n in [0, 1, 99, 123_456] {
            assert_eq!(decode_cursor(&encode_cursor(n)).ok(), Some(n));
        }
        for bad in [
            "",
            "abc",
            "YWN0aW9uczo=",
            "YWN0aW9uczotMQ",
            &"x".repeat(100),
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn actions_arguments_are_checked_before_any_call() {
        assert!(actions_key(UserId(1), None, None, 101, None).is_err());
        assert!(actions_key(UserId(1), None, None, -1, None).is_err());
        assert!(actions_key(UserId(1), Some(ActionType::Other), None, 5, None).is_err());
        assert!(actions_key(UserId(1), None, Some("a b".into()), 5, None).is_err());
        let key = actions_key(UserId(1), None, None, 0, Some(&encode_cursor(4))).unwrap();
        assert_eq!((key.offset, key.limit), (5, 1));
    }
}
