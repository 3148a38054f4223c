//! Reading whole collections and windows of them.
//!
//! ActionKit pages hold at most 100 rows; `meta.next` is a relative link to the next
//! page (`/rest/v1/action/?_offset=100&_limit=100&user__in=1%2C2`) and `meta.total_count`
//! the number of rows after filters.
//!
//! Why fetching the later pages in parallel is the same as walking `next`: ActionKit
//! (Tastypie) builds `next` as the very request just made with `_offset` advanced by
//! `limit`, over a collection in a fixed order (ascending id). Walking `next` from the
//! first page therefore requests offsets `o+limit, o+2·limit, …` while they are below
//! `total_count`. Once the first page has told us `limit` and `total_count`, we make
//! exactly those requests, taking the first `next` link verbatim and only substituting
//! its `_offset` value, so every other parameter stays as ActionKit wrote it. They go
//! out concurrently under the client's cap instead of one after the other. If rows are
//! added meanwhile, the last page's own `next` is still followed (sequential walking
//! would see the same growth); callers drop duplicate ids. A link without an `_offset`
//! parameter, or a first page without `total_count`, is simply walked sequentially.

use futures::future::try_join_all;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::client::Client;
use super::models::Window;
use super::wire::{Collection, OffsetTemplate};
use super::Error;

/// ActionKit's largest page.
pub(crate) const MAX_PAGE: u64 = 100;

/// The first page of a collection and the plan for the rest.
pub(crate) struct FirstPage<T> {
    route: &'static str,
    pub(crate) objects: Vec<T>,
    rest: RestOfCollection,
}

enum RestOfCollection {
    Done,
    Parallel {
        template: OffsetTemplate,
        offsets: Vec<u64>,
    },
    Sequential {
        next: String,
        estimate: usize,
    },
}

impl<T> FirstPage<T> {
    /// Calls still needed to read the rest (an estimate when walking sequentially).
    pub(crate) fn remaining_calls(&self) -> usize {
        match &self.rest {
            RestOfCollection::Done => 0,
            RestOfCollection::Parallel { offsets, .. } => offsets.len(),
            RestOfCollection::Sequential { estimate, .. } => *estimate,
        }
    }
}

impl Client {
    /// Reads the first page of `path` and plans the rest.
    pub(crate) async fn first_page<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &str,
        deadline: Instant,
    ) -> Result<FirstPage<T>, Error> {
        let page: Collection<T> = self.inner.transport.get_json(route, path, deadline).await?;
        let got = page.objects.len() as u64;
        let rest = match &page.meta.next {
            None => RestOfCollection::Done,
            Some(link) => {
                let next = self.link(link)?;
                let limit = page.meta.limit.unwrap_or(got);
                let offset = page.meta.offset.unwrap_or(0);
                match (OffsetTemplate::parse(&next), page.meta.total_count) {
                    // (A `total_count` that says there is nothing after this page while
                    // `next` says there is: trust `next`, walking it below.)
                    (Some(template), Some(total)) if limit > 0 && offset + limit < total => {
                        RestOfCollection::Parallel {
                            template,
                            offsets: (offset + limit..total).step_by(limit as usize).collect(),
                        }
                    }
                    (_, total) => RestOfCollection::Sequential {
                        next,
                        estimate: match total {
                            Some(total) if limit > 0 => {
                                total.saturating_sub(offset + got).div_ceil(limit).max(1) as usize
                            }
                            _ => 1,
                        },
                    },
                }
            }
        };
        Ok(FirstPage {
            route,
            objects: page.objects,
            rest,
        })
    }

    /// Reads the pages after `first` and returns every object, in collection order.
    pub(crate) async fn rest_pages<T: DeserializeOwned>(
        &self,
        first: FirstPage<T>,
        deadline: Instant,
    ) -> Result<Vec<T>, Error> {
        let FirstPage {
            route,
            mut objects,
            rest,
        } = first;
        let mut next = match rest {
            RestOfCollection::Done => None,
            RestOfCollection::Parallel { template, offsets } => {
                let t = &self.inner.transport;
                let pages = try_join_all(offsets.iter().map(|&o| {
                    let path = template.with_offset(o);
                    async move { t.get_json::<Collection<T>>(route, &path, deadline).await }
                }))
                .await?;
                let mut last_next = None;
                for page in pages {
                    last_next = page.meta.next;
                    objects.extend(page.objects);
                }
                last_next.map(|l| self.link(&l)).transpose()?
            }
            RestOfCollection::Sequential { next, .. } => Some(next),
        };
        // Walk whatever is left one link at a time (no total known, or rows added).
        while let Some(path) = next.take() {
            let page: Collection<T> = self
                .inner
                .transport
                .get_json(route, &path, deadline)
                .await?;
            let empty = page.objects.is_empty();
            objects.extend(page.objects);
            // An empty page that still links onwards would loop forever.
            next = match page.meta.next {
                Some(l) if !empty => Some(self.link(&l)?),
                _ => None,
            };
        }
        Ok(objects)
    }

    /// Every object of a collection: the first page, then the rest in parallel.
    pub(crate) async fn collect_all<T: DeserializeOwned>(
        &self,
        route: &'static str,
        path: &str,
        deadline: Instant,
    ) -> Result<Vec<T>, Error> {
        let first = self.first_page(route, path, deadline).await?;
        self.rest_pages(first, deadline).await
    }

    /// Rows `offset .. offset+limit` of the collection at `prefix` (a path with a query
    /// of filters, e.g. `/rest/v1/action/?user=5`), and its total. Windows wider than a
    /// page are read as several pages, the later ones in parallel.
    pub(crate) async fn window<T: DeserializeOwned>(
        &self,
        route: &'static str,
        prefix: &str,
        offset: u64,
        limit: u64,
        deadline: Instant,
    ) -> Result<Window<T>, Error> {
        let t = &self.inner.transport;
        let page_path =
            |offset: u64, limit: u64| format!("{prefix}&_limit={limit}&_offset={offset}");
        // `_limit=0` means "the maximum" to Tastypie; ask for one row to learn the total.
        let first_limit = limit.clamp(1, MAX_PAGE);
        let first: Collection<T> = t
            .get_json(route, &page_path(offset, first_limit), deadline)
            .await?;
        let total = first.meta.total_count.ok_or_else(|| Error::Decode {
            path: "meta.total_count".into(),
            message: "missing".into(),
        })?;
        let mut objects = first.objects;
        if limit == 0 {
            objects.clear();
        }
        let end = offset.saturating_add(limit).min(total);
        let starts: Vec<u64> = (offset + MAX_PAGE..end)
            .step_by(MAX_PAGE as usize)
            .collect();
        let pages = try_join_all(starts.iter().map(|&o| {
            let path = page_path(o, MAX_PAGE.min(end - o));
            async move { t.get_json::<Collection<T>>(route, &path, deadline).await }
        }))
        .await?;
        for page in pages {
            objects.extend(page.objects);
        }
        objects.truncate(limit as usize);
        Ok(Window {
            total_count: total,
            objects,
        })
    }

    fn link(&self, link: &str) -> Result<String, Error> {
        self.inner
            .transport
            .follow_link(link)
            .ok_or_else(|| Error::Decode {
                path: "meta.next".into(),
                message: "not a link on the configured ActionKit instance".into(),
            })
    }
}
