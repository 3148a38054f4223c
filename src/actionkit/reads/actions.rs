//! Actions: by id, in batches, and windows of one or many users' actions.

use std::collections::HashMap;

use futures::future::try_join_all;
use tokio::time::Instant;

use super::{collapse, distinct, encode_query_value, ids_csv};
use crate::actionkit::client::Client;
use crate::actionkit::models::*;
use crate::actionkit::pagination::MAX_PAGE;
use crate::actionkit::Error;

/// A typed action resource name: `petition` → `petitionaction`. Refuses names that are
/// not plain lowercase words (an unknown kind comes from upstream text).
fn typed_resource(kind: &ActionKind, suffix: &str) -> Result<String, Error> {
    let prefix = kind.resource_prefix();
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(Error::InvalidInput(format!(
            "no ActionKit resource for action type {:?}",
            kind.type_name()
        )));
    }
    Ok(format!("{prefix}{suffix}"))
}

/// Where a user-actions query goes and which page condition it carries.
pub(crate) struct ActionQuery {
    pub(crate) route: &'static str,
    /// `/rest/v1/<res>/?` (ends with `?`), before the user filter.
    pub(crate) base: String,
    /// `&page__name=…` or `&page=…` or empty.
    pub(crate) page_filter: String,
}

impl Client {
    /// `GET /rest/v1/action/<id>/`; `Ok(None)` when ActionKit answers 404.
    pub async fn action(&self, id: ActionId) -> Result<Option<Action>, Error> {
        self.one(id).await
    }

    /// Actions by id; missing ids are absent from the map. `GET
    /// /rest/v1/action/?id__in=…&_limit=100` per 100 ids where allowed, else one `GET
    /// /rest/v1/action/<id>/` per id under the cap.
    pub async fn actions(&self, ids: &[ActionId]) -> Result<HashMap<ActionId, Action>, Error> {
        collapse(self.each(ids).await)
    }

    /// One window of one user's actions in ActionKit's default order (ascending id).
    ///
    /// `GET /rest/v1/action/?user=<id>&_limit=<limit>&_offset=<offset>`; with a kind the
    /// typed resource (`/rest/v1/petitionaction/?user=…`); with a page name
    /// `&page__name=<name>` where the instance allows the traversal, else the page is
    /// read first (`GET /rest/v1/page/?name=`) and `&page=<id>` used (no page: an empty
    /// window). A limit above 100 is read as several pages, in parallel.
    pub async fn user_actions(
        &self,
        user: UserId,
        filter: &ActionFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Window<Action>, Error> {
        let deadline = self.deadline();
        self.bounded(deadline, async {
            let Some(q) = self.action_query(filter, deadline).await? else {
                return Ok(Window {
                    total_count: 0,
                    objects: Vec::new(),
                });
            };
            let prefix = format!("{}user={user}{}", q.base, q.page_filter);
            self.window(q.route, &prefix, offset, limit, deadline).await
        })
        .await
    }

    /// All actions of several users, grouped by user (ascending id within each); every
    /// user asked for is in the map, with an empty list when they have no actions.
    ///
    /// Uses `GET /rest/v1/action/?user__in=1,2,3&_limit=100` (typed resource and page
    /// filter as in [`user_actions`](Self::user_actions)), one such query per 100
    /// users, following every page. `max_calls` bounds the upstream calls it may make
    /// (page lookup, first pages, later pages); it returns `Ok(None)` without making more
    /// as soon as it knows it would need more, and always when `user__in` is not
    /// allowed. The caller then reads per user.
    pub async fn actions_of_users(
        &self,
        users: &[UserId],
        filter: &ActionFilter,
        max_calls: usize,
    ) -> Result<Option<HashMap<UserId, Vec<Action>>>, Error> {
        if !self.capabilities().action_user_in {
            return Ok(None);
        }
        let users = distinct(users);
        let mut grouped: HashMap<UserId, Vec<Action>> =
            users.iter().map(|&u| (u, Vec::new())).collect();
        if users.is_empty() {
            return Ok(Some(grouped));
        }
        let chunks: Vec<&[UserId]> = users.chunks(MAX_PAGE as usize).collect();
        let needs_page_lookup = filter.page_name.is_some() && !self.capabilities().action_page_name;
        let mut calls = usize::from(needs_page_lookup);
        if calls + chunks.len() > max_calls {
            return Ok(None);
        }
        let deadline = self.deadline();
        let result = self
            .bounded(deadline, async {
                let Some(q) = self.action_query(filter, deadline).await? else {
                    return Ok(Some(grouped));
                };
                let firsts = try_join_all(chunks.iter().map(|chunk| {
                    let path = format!(
                        "{}user__in={}{}&_limit={MAX_PAGE}",
                        q.base,
                        ids_csv(chunk),
                        q.page_filter
                    );
                    let route = q.route;
                    async move { self.first_page::<Action>(route, &path, deadline).await }
                }))
                .await?;
                calls += firsts.len();
                let more: usize = firsts.iter().map(|f| f.remaining_calls()).sum();
                if calls + more > max_calls {
                    return Ok(None);
                }
                let all =
                    try_join_all(firsts.into_iter().map(|f| self.rest_pages(f, deadline))).await?;
                for action in all.into_iter().flatten() {
                    // Rows of users not asked for (an ignored filter) are dropped.
                    if let Some(list) = grouped.get_mut(&action.user_id()) {
                        list.push(action);
                    }
                }
                for list in grouped.values_mut() {
                    list.sort_by_key(|a| a.id);
                    list.dedup_by_key(|a| a.id);
                }
                Ok(Some(grouped))
            })
            .await;
        match result {
            Err(Error::BadRequest { .. }) => {
                self.refused_in("action", "user__in");
                self.revoke(|c| c.action_user_in = false);
                Ok(None)
            }
            other => other,
        }
    }

    /// Resolves an action filter to a resource and page condition; `None` when it can
    /// match nothing (no page of that name, or a page of another kind).
    pub(crate) async fn action_query(
        &self,
        filter: &ActionFilter,
        deadline: Instant,
    ) -> Result<Option<ActionQuery>, Error> {
        let (route, base) = match &filter.kind {
            None => ("/rest/v1/action/", "/rest/v1/action/?".to_owned()),
            Some(kind) => (
                "/rest/v1/{type}action/",
                format!("/rest/v1/{}/?", typed_resource(kind, "action")?),
            ),
        };
        let page_filter = match &filter.page_name {
            None => String::new(),
            Some(name) if self.capabilities().action_page_name => {
                format!("&page__name={}", encode_query_value(name))
            }
            Some(name) => match self.page_ref(name, deadline).await? {
                None => return Ok(None),
                Some((_, kind)) if filter.kind.as_ref().is_some_and(|k| *k != kind) => {
                    return Ok(None)
                }
                Some((id, _)) => format!("&page={id}"),
            },
        };
        Ok(Some(ActionQuery {
            route,
            base,
            page_filter,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_resources_are_plain_words() {
        assert_eq!(
            typed_resource(&ActionKind::EventSignup, "action").unwrap(),
            "eventsignupaction"
        );
        assert!(typed_resource(&ActionKind::Other("../x".into()), "action").is_err());
    }
}
