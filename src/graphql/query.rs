//! The query root.

use std::sync::Arc;

use async_graphql::{Context, Object, ID};

use super::access;
use super::error::{GatewayError, GqlResult};
use super::loaders::{Loaders, UserActionsKey};
use super::types::{
    check_page_name, parse_id,
    user::{actions_key, DEFAULT_FIRST},
    ActionNode, ActionType, PageNode, UserNode,
};
use crate::actionkit::{ActionId, Client, PageId, UserId};

/// The most ids one `users` call may ask for.
pub(super) const MAX_USERS: usize = 100;

pub struct QueryRoot;

/// Reads the `actions` selections under the current field so that their windows can be
/// loaded in parallel with the user (the id is known; there is nothing to wait for).
/// Selections whose arguments are invalid are skipped: the field itself reports them.
fn prefetch_keys(ctx: &Context<'_>, user: UserId) -> Vec<UserActionsKey> {
    ctx.look_ahead()
        .field("actions")
        .selection_fields()
        .into_iter()
        .filter_map(|field| {
            let args = field.arguments().ok()?;
            let mut kind = None;
            let mut page_name = None;
            let mut first = DEFAULT_FIRST;
            let mut after = None;
            for (name, value) in args {
                match (name.as_str(), value) {
                    ("type", async_graphql::Value::Enum(e)) => {
                        kind = Some(
                            <ActionType as async_graphql::InputType>::parse(Some(
                                async_graphql::Value::Enum(e),
                            ))
                            .ok()?,
                        )
                    }
                    ("pageName", async_graphql::Value::String(s)) => page_name = Some(s),
                    ("first", async_graphql::Value::Number(n)) => first = n.as_i64()? as i32,
                    ("after", async_graphql::Value::String(s)) => after = Some(s),
                    (_, async_graphql::Value::Null) => {}
                    _ => return None,
                }
            }
            actions_key(user, kind, page_name, first, after.as_deref()).ok()
        })
        .collect()
}

/// A failing nullable root field is null with its error beside it, and its siblings
/// keep their data (GraphQL spec, "Handling Field Errors"). async-graphql 7.0 would
/// null the whole `data` instead, so the nullable root fields catch their own errors.
fn null_on_error<T>(ctx: &Context<'_>, result: GqlResult<Option<T>>) -> Option<T> {
    match result {
        Ok(value) => value,
        Err(err) => {
            ctx.add_error(ctx.set_error_path(err.into_server_error(ctx.item.pos)));
            None
        }
    }
}

// Resolvers that wait on ActionKit box the wait (`Box::pin(...).await`): the future
// of a type's `resolve_field`, which async-graphql moves into a box of its own for
// every field selected, is as large as the largest of its fields' futures, and a read
// through the client is several KiB (BENCHMARKS.md, issue 18, fifth round). The same
// holds in `types/` and `mutation.rs`.
/// Reads: members, actions and pages, by id (and members by email or AKID, pages by
/// short name), and submissions by id.
#[Object(name = "Query")]
impl QueryRoot {
    /// One user, by exactly one of `id`, `email` or `akid` (an ActionKit AKID such as
    /// `.103007.Gcg02t`). Null when no such user exists.
    async fn user(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        email: Option<String>,
        akid: Option<String>,
    ) -> Option<UserNode> {
        null_on_error(ctx, Box::pin(Self::find_user(ctx, id, email, akid)).await)
    }

    /// Several users by id, in the order asked, with null where a user does not exist.
    /// At most 100 ids.
    #[graphql(complexity = "super::limits::list_cost(Some(ids.len() as i64), child_complexity)")]
    async fn users(&self, ctx: &Context<'_>, ids: Vec<ID>) -> GqlResult<Vec<Option<UserNode>>> {
        let found = Box::pin(Self::find_users(ctx, ids)).await?;
        // A member whose read failed is null at its index, with the error at
        // `users.<index>`; the other members keep their data.
        Ok(found
            .into_iter()
            .enumerate()
            .map(|(i, user)| match user {
                Ok(user) => user,
                Err(err) => {
                    let mut err = ctx.set_error_path(err.into_server_error(ctx.item.pos));
                    err.path.push(async_graphql::PathSegment::Index(i));
                    ctx.add_error(err);
                    None
                }
            })
            .collect())
    }

    /// One action by id; null when it does not exist.
    async fn action(&self, ctx: &Context<'_>, id: ID) -> Option<ActionNode> {
        null_on_error(ctx, Box::pin(Self::find_action(ctx, id)).await)
    }

    /// A submission made with `submitAction`, by its `submissionId`: where it stands
    /// (`QUEUED`, `PROCESSED` with its action, `FAILED` with its `fieldErrors`). Null
    /// when no submission has this id.
    async fn submission(&self, ctx: &Context<'_>, id: ID) -> Option<super::submit::Submission> {
        null_on_error(ctx, Box::pin(super::submit::submission(ctx, id)).await)
    }

    /// What a form needs to render for one visitor: the page (title, type,
    /// `progress`), whether the visitor's AKID verifies (`recognized`), and then the
    /// member's first name and the page's required fields still missing for them.
    /// Nothing else about the member is returned. Null when no page has this short
    /// name. Open to `read`, `self` and `submit` keys (a `submit` key: its own pages).
    async fn page_context(
        &self,
        ctx: &Context<'_>,
        page: String,
        akid: Option<String>,
    ) -> Option<super::context::PageContext> {
        null_on_error(
            ctx,
            Box::pin(super::context::page_context(ctx, page, akid)).await,
        )
    }

    /// One page, by exactly one of `id` or `name` (its short name). Null when no such
    /// page exists.
    async fn page(
        &self,
        ctx: &Context<'_>,
        id: Option<ID>,
        name: Option<String>,
    ) -> Option<PageNode> {
        null_on_error(ctx, Box::pin(Self::find_page(ctx, id, name)).await)
    }
}

impl QueryRoot {
    async fn find_user(
        ctx: &Context<'_>,
        id: Option<ID>,
        email: Option<String>,
        akid: Option<String>,
    ) -> GqlResult<Option<UserNode>> {
        let loaders = ctx.data_unchecked::<Loaders>();
        let client = ctx.data_unchecked::<Client>();
        let user = match (id, email, akid) {
            (Some(id), None, None) => {
                let id = UserId(parse_id(&id, "id")?);
                access::check_user(ctx, id)?;
                let prefetch = prefetch_keys(ctx, id);
                let (user, _) = futures::join!(
                    loaders.user(id),
                    // Errors here surface again, at the right path, from `actions`.
                    loaders.user_actions.load_many(prefetch)
                );
                user.map_err(GatewayError::from)?
            }
            (None, Some(email), None) => {
                access::check_lookup(ctx)?;
                let email = email.trim();
                if email.is_empty() || email.len() > 254 || !email.contains('@') {
                    return Err(GatewayError::bad_input("`email` is not an email address").into());
                }
                client
                    .user_by_email(email)
                    .await
                    .map_err(GatewayError::from)?
                    .map(Arc::new)
            }
            (None, None, Some(akid)) => {
                if akid.is_empty() || akid.len() > 64 {
                    return Err(GatewayError::bad_input("`akid` is not an AKID").into());
                }
                access::check_akid(ctx, &akid)?;
                client
                    .user_by_akid(&akid)
                    .await
                    .map_err(GatewayError::from)?
                    .map(Arc::new)
            }
            _ => {
                return Err(
                    GatewayError::bad_input("give exactly one of `id`, `email` or `akid`").into(),
                )
            }
        };
        Ok(user.map(UserNode::new))
    }

    async fn find_users(
        ctx: &Context<'_>,
        ids: Vec<ID>,
    ) -> GqlResult<Vec<GqlResult<Option<UserNode>>>> {
        if ids.len() > MAX_USERS {
            return Err(GatewayError::bad_input(format!("at most {MAX_USERS} ids")).into());
        }
        let ids = ids
            .iter()
            .map(|id| parse_id(id, "ids").map(UserId))
            .collect::<Result<Vec<_>, _>>()?;
        for id in &ids {
            access::check_user(ctx, *id)?;
        }
        let loaders = ctx.data_unchecked::<Loaders>();
        let found = loaders
            .users
            .load_many(ids.iter().copied())
            .await
            .map_err(GatewayError::from)?;
        Ok(ids
            .iter()
            .map(|id| match found.get(id) {
                None => Ok(None),
                Some(Ok(user)) => Ok(Some(UserNode::new(user.clone()))),
                Some(Err(e)) => Err(GatewayError::from(e.clone()).into()),
            })
            .collect())
    }

    async fn find_action(ctx: &Context<'_>, id: ID) -> GqlResult<Option<ActionNode>> {
        let id = ActionId(parse_id(&id, "id")?);
        let loaders = ctx.data_unchecked::<Loaders>();
        let action = loaders.action(id).await.map_err(GatewayError::from)?;
        if let Some(action) = &action {
            access::check_action_owner(ctx, action.user_id())?;
        }
        Ok(action.map(ActionNode::new))
    }

    async fn find_page(
        ctx: &Context<'_>,
        id: Option<ID>,
        name: Option<String>,
    ) -> GqlResult<Option<PageNode>> {
        access::check_any_page(ctx)?;
        match (id, name) {
            (Some(id), None) => {
                let id = PageId(parse_id(&id, "id")?);
                let loaders = ctx.data_unchecked::<Loaders>();
                let page = loaders.page(id).await.map_err(GatewayError::from)?;
                Ok(page.map(PageNode))
            }
            (None, Some(name)) => {
                check_page_name(&name, "name")?;
                let client = ctx.data_unchecked::<Client>();
                let page = client
                    .page_by_name(&name)
                    .await
                    .map_err(GatewayError::from)?;
                Ok(page.map(|p| PageNode(Arc::new(p))))
            }
            _ => Err(GatewayError::bad_input("give exactly one of `id` or `name`").into()),
        }
    }
}
