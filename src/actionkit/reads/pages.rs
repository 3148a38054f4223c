//! Pages: by id, in batches, and by name (through the page-name cache).

use std::collections::HashMap;

use tokio::time::Instant;

use super::collapse;
use crate::actionkit::client::Client;
use crate::actionkit::models::*;
use crate::actionkit::page_names::PageRef;
use crate::actionkit::Error;

impl Client {
    /// `GET /rest/v1/page/<id>/`; `Ok(None)` when ActionKit answers 404.
    pub async fn page(&self, id: PageId) -> Result<Option<Page>, Error> {
        self.one(id).await
    }

    /// Pages by id; missing ids are absent from the map. `GET
    /// /rest/v1/page/?id__in=…&_limit=100` per 100 ids where allowed, else one `GET
    /// /rest/v1/page/<id>/` per id under the cap.
    pub async fn pages(&self, ids: &[PageId]) -> Result<HashMap<PageId, Page>, Error> {
        collapse(self.each(ids).await)
    }

    /// `GET /rest/v1/page/?name=<name>`; only a page with exactly that name is returned.
    pub async fn page_by_name(&self, name: &str) -> Result<Option<Page>, Error> {
        let deadline = self.deadline();
        self.bounded(deadline, self.page_by_name_in(name, deadline))
            .await
    }

    /// Page id and kind by name, through the short-lived name cache.
    pub(super) async fn page_ref(&self, name: &str, deadline: Instant) -> Result<PageRef, Error> {
        let fetch = || async {
            Ok::<_, Error>(
                self.page_by_name_in(name, deadline)
                    .await?
                    .map(|p| (p.id, p.kind)),
            )
        };
        match self.inner.page_names.cell(name) {
            None => fetch().await,
            Some(cell) => cell.get_or_try_init(fetch).await.cloned(),
        }
    }

    pub(super) async fn page_by_name_in(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<Page>, Error> {
        if name.is_empty() || name.contains('\0') {
            return Err(Error::InvalidInput(
                "page name must be a non-empty string".into(),
            ));
        }
        self.find_by("/rest/v1/page/", "name", name, deadline, |p: &Page| {
            p.name == name
        })
        .await
    }
}
