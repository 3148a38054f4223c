use std::sync::Arc;

use async_graphql::{Context, Object, ID};

use super::ActionType;
use crate::actionkit::Page;

/// An ActionKit page: the petition, signup form, donation form or event that actions
/// are taken on.
pub struct PageNode(pub Arc<Page>);

/// An ActionKit page: the petition, signup form, donation form or event that actions
/// are taken on.
#[Object(name = "Page")]
impl PageNode {
    /// The page's ActionKit id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The page's short name (unique, used in URLs and the `pageName` filter).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The page's title as shown to members.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The kind of page, which is also the kind of the actions taken on it.
    #[graphql(name = "type")]
    async fn kind(&self) -> ActionType {
        ActionType::from(&self.0.kind)
    }
    /// ActionKit's status of the page (for example `active`).
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Whether the page is hidden from page lists.
    async fn hidden(&self) -> bool {
        self.0.hidden
    }
    /// The page's public URL, when it has one.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// The names of the page's tags.
    async fn tags(&self) -> Vec<&str> {
        self.0.tags.iter().map(|t| t.name.as_str()).collect()
    }
    /// When the page was created (ActionKit's naive ISO-8601 timestamp, UTC).
    async fn created_at(&self) -> &str {
        &self.0.created_at
    }
    /// The page's progress toward its goal (count, goal, percentage), read from
    /// ActionKit and cached for the whole gateway for `progress.cache_ttl_secs` (5 s by
    /// default): as fresh as that, plus the actions this gateway processed since.
    async fn progress(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::graphql::progress::PageProgressNode>> {
        // Boxed: unboxed, its 10 KiB would be copied for every field of every page
        // selected, `title` included (see `QueryRoot`).
        Box::pin(crate::graphql::progress::page_progress(ctx, &self.0.name)).await
    }
}
