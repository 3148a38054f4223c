//! A page's progress toward its goal: the count of actions (and the amount raised, for
//! donation goals, where the instance says it), the goal and its type.
//!
//! The cheapest call that answers it is ActionKit's public progress endpoint, `GET
//! /progress/?page=<name>` (`{"goal", "goal_type", "total": {"actions", "dollars",
//! "money"}}`; reference `actionkit-processing.md` §2). It is not under `/rest/v1/`,
//! and whether every instance serves it to an authenticated client is UNCONFIRMED, so
//! both cases are handled: when it answers anything but that JSON (404, 401/403, an
//! HTML page), the client counts instead, with two REST calls (`GET
//! /rest/v1/page/?name=` for the goal, `GET /rest/v1/action/?page=<id>&_limit=1` for
//! `meta.total_count`), and remembers for the life of the process that the endpoint is
//! not there once the page turned out to exist. Donation amounts cannot be counted
//! that way: `amount` is then `None`.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::encode_query_value;
use crate::actionkit::client::Client;
use crate::actionkit::models::PageId;
use crate::actionkit::wire::Collection;
use crate::actionkit::Error;

/// What a goal counts. (Serializable, like the other models, so that a cache shared
/// between replicas can hold readings.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoalType {
    /// Actions taken on the page (signatures, signups, ...).
    Actions,
    /// Money raised (`dollars` or `money`; ActionKit uses both names).
    Money,
    /// A goal type this client does not know, as ActionKit named it.
    Other(String),
}

impl GoalType {
    fn parse(s: Option<&str>) -> GoalType {
        match s.map(str::trim) {
            None | Some("") | Some("actions") => GoalType::Actions,
            Some("dollars") | Some("money") => GoalType::Money,
            Some(other) => GoalType::Other(other.to_string()),
        }
    }
}

/// A page's progress as ActionKit reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageProgress {
    /// Actions taken on the page.
    pub actions: u64,
    /// Money raised, in the instance's currency, when the instance reported it (the
    /// progress endpoint does; counting through REST cannot).
    pub amount: Option<f64>,
    /// The page's goal; `None` when the page has none.
    pub goal: Option<u64>,
    pub goal_type: GoalType,
}

/// `progress_endpoint` states.
const UNKNOWN: u8 = 0;
const ABSENT: u8 = 2;

/// A number ActionKit may send as a JSON number or a string; `None` for null.
fn number(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite() && *n >= 0.0)
}

fn count(v: Option<&Value>) -> Option<u64> {
    number(v).map(|n| n.round() as u64)
}

/// Reads the progress endpoint's JSON; `None` when it is not that JSON.
fn from_endpoint(body: &Value) -> Option<PageProgress> {
    let obj = body.as_object()?;
    let total = obj.get("total")?.as_object()?;
    let goal_type = GoalType::parse(obj.get("goal_type").and_then(Value::as_str));
    let amount = number(total.get("dollars")).or_else(|| number(total.get("money")));
    Some(PageProgress {
        actions: count(total.get("actions"))?,
        amount,
        goal: count(obj.get("goal")).filter(|g| *g > 0),
        goal_type,
    })
}

/// The page fields the REST fallback needs.
#[derive(Deserialize)]
struct GoalPage {
    id: PageId,
    name: String,
    #[serde(default)]
    goal: Option<Value>,
    #[serde(default)]
    goal_type: Option<String>,
}

impl Client {
    /// The progress of the page named `name`; `Ok(None)` when there is no such page.
    ///
    /// One call (`GET /progress/?page=<name>`) where the instance serves it, else two
    /// (`GET /rest/v1/page/?name=<name>`, `GET /rest/v1/action/?page=<id>&_limit=1`).
    pub async fn page_progress(&self, name: &str) -> Result<Option<PageProgress>, Error> {
        if name.is_empty() || name.len() > 255 || name.contains('\0') {
            return Err(Error::InvalidInput(
                "page name must be a non-empty string".into(),
            ));
        }
        let deadline = self.deadline();
        self.bounded(deadline, async {
            if self.inner.progress_endpoint.load(Ordering::Acquire) != ABSENT {
                let path = format!("/progress/?page={}", encode_query_value(name));
                let answer: Result<Option<Value>, Error> = self
                    .inner
                    .transport
                    .get_opt("/progress/", &path, deadline)
                    .await;
                match answer {
                    Ok(Some(body)) => {
                        if let Some(p) = from_endpoint(&body) {
                            return Ok(Some(p));
                        }
                    }
                    // Not there, not for this credential, or not JSON: count instead.
                    Ok(None)
                    | Err(Error::Unauthorized)
                    | Err(Error::BadRequest { .. })
                    | Err(Error::Decode { .. })
                    | Err(Error::Status { status: 403 | 405 }) => {}
                    Err(e) => return Err(e),
                }
            }
            let counted = self.count_progress(name, deadline).await?;
            if counted.is_some()
                && self.inner.progress_endpoint.swap(ABSENT, Ordering::AcqRel) == UNKNOWN
            {
                tracing::info!(
                    "ActionKit's /progress/ endpoint did not answer; counting progress through REST"
                );
            }
            Ok(counted)
        })
        .await
    }

    async fn count_progress(
        &self,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<PageProgress>, Error> {
        let by_name = |p: &GoalPage| p.name == name;
        let Some(page) = self
            .find_by("/rest/v1/page/", "name", name, deadline, by_name)
            .await?
        else {
            return Ok(None);
        };
        let path = format!("/rest/v1/action/?page={}&_limit=1", page.id);
        let actions: Collection<serde::de::IgnoredAny> = self
            .inner
            .transport
            .get_json("/rest/v1/action/", &path, deadline)
            .await?;
        let total = actions.meta.total_count.ok_or_else(|| Error::Decode {
            path: "meta.total_count".into(),
            message: "missing".into(),
        })?;
        Ok(Some(PageProgress {
            actions: total,
            amount: None,
            goal: count(page.goal.as_ref()).filter(|g| *g > 0),
            goal_type: GoalType::parse(page.goal_type.as_deref()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_endpoint_json_is_read_with_numbers_or_strings() {
        let p = from_endpoint(&json!({"goal": 1000, "goal_type": "actions",
            "total": {"actions": 12, "dollars": 0, "money": 0}}))
        .expect("progress");
        assert_eq!(
            p,
            PageProgress {
                actions: 12,
                amount: Some(0.0),
                goal: Some(1000),
                goal_type: GoalType::Actions
            }
        );
        let p = from_endpoint(&json!({"goal": "25000", "goal_type": "dollars",
            "total": {"actions": "3", "dollars": "125.50"}}))
        .expect("progress");
        assert_eq!((p.actions, p.amount, p.goal), (3, Some(125.5), Some(25000)));
        assert_eq!(p.goal_type, GoalType::Money);
        let p = from_endpoint(&json!({"goal": null, "total": {"actions": 0}})).expect("progress");
        assert_eq!((p.goal, p.goal_type), (None, GoalType::Actions));
    }

    #[test]
    fn anything_else_is_not_progress() {
        for body in [
            json!([]),
            json!({"goal": 5}),
            json!({"total": {"dollars": 3}}),
            json!({"total": {"actions": -1}}),
            json!("<html>"),
        ] {
            assert_eq!(from_endpoint(&body), None, "{body}");
        }
    }
}
