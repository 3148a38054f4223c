//! Writes: setting and clearing custom action fields.
//!
//! ActionKit's `PATCH {"fields": {...}}` on an action either replaces the whole set
//! (absent names deleted) or merges (absent names kept); which one is not documented
//! (reference §6.3). So:
//!
//! - **set** = GET the action, merge the new values into its `fields`, PATCH the full
//!   dict to the action's own URI, GET again. Correct under both semantics.
//! - **clear** = PATCH the dict without the names, GET again; if the names are gone the
//!   instance replaces, and later clears stop there. If they are still there the
//!   instance merges: the rows are found with `GET /rest/v1/actionfield/?parent=<id>`
//!   and deleted one by one (`DELETE /rest/v1/actionfield/<row>/`), and later clears
//!   go to that path directly.
//!
//! Which writes are retried, and why: the PATCH always carries the complete, absolute
//! `fields` dict (never a delta), and each DELETE names one row; sending either twice
//! leaves ActionKit in the same state as sending it once. They are retried after the
//! answers that say ActionKit did not process the request (429, 503, the 500 "try again
//! later" body) and after a failure to connect. A write that was sent but got no answer
//! (timeout, broken connection) is *not* retried and the caller gets
//! [`Error::WriteOutcomeUnknown`]: that first request may still be applied by ActionKit
//! later, after our repeat and after the per-action lock is released, so a stale dict
//! could land on top of a later write; the caller has to re-read to know.
//!
//! Writes to one action are serialized inside the process: two concurrent mutations of
//! one action would otherwise both read the same `fields` and the second PATCH would
//! drop the first one's names. Writers from other processes are not covered.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Weak};

use futures::future::try_join_all;
use http::Method;
use tokio::time::Instant;

use super::client::Client;
use super::models::{parse_uri, Action, ActionField, ActionId};
use super::transport::{self, Idempotency, Request};
use super::Error;

/// Longest custom field value the client sends (64 KiB).
pub const MAX_FIELD_VALUE_BYTES: usize = 64 * 1024;

/// What an instance's `PATCH {"fields": ...}` was seen to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum PatchSemantics {
    Unknown = 0,
    Replace = 1,
    Merge = 2,
}

impl PatchSemantics {
    pub(crate) fn from_u8(v: u8) -> PatchSemantics {
        match v {
            1 => PatchSemantics::Replace,
            2 => PatchSemantics::Merge,
            _ => PatchSemantics::Unknown,
        }
    }
}

/// One async mutex per action being written. Entries are weak: a mutex lives while a
/// writer holds or waits for it, and dead entries are swept whenever the map has
/// doubled since the last sweep, so the map stays within twice the number of actions
/// being written at once (plus a small floor).
#[derive(Default)]
pub(crate) struct WriteLocks {
    state: Mutex<LockMap>,
}

#[derive(Default)]
struct LockMap {
    map: HashMap<ActionId, Weak<tokio::sync::Mutex<()>>>,
    sweep_at: usize,
}

impl WriteLocks {
    fn lock_for(&self, id: ActionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = s.map.get(&id).and_then(Weak::upgrade) {
            return m;
        }
        let m = Arc::new(tokio::sync::Mutex::new(()));
        s.map.insert(id, Arc::downgrade(&m));
        if s.map.len() > s.sweep_at {
            s.map.retain(|_, w| w.strong_count() > 0);
            s.sweep_at = (s.map.len() * 2).max(64);
        }
        m
    }

    pub(crate) async fn acquire(
        &self,
        id: ActionId,
        deadline: Instant,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, Error> {
        tokio::time::timeout_at(deadline, self.lock_for(id).lock_owned())
            .await
            .map_err(|_| Error::Timeout)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

/// `^[A-Za-z0-9_]{1,255}$`.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > 255
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::InvalidInput(format!(
            "custom field name must match ^[A-Za-z0-9_]{{1,255}}$: {:?}",
            name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

fn validate_value(name: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::InvalidInput(format!(
            "value of {name} contains a NUL character"
        )));
    }
    if value.len() > MAX_FIELD_VALUE_BYTES {
        return Err(Error::InvalidInput(format!(
            "value of {name} is longer than {MAX_FIELD_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

/// An action as read for a write: the model, its raw `fields` (multi-valued fields
/// stay arrays, so they go back unchanged) and the path to PATCH.
struct ActionForWrite {
    action: Action,
    fields: serde_json::Map<String, serde_json::Value>,
    patch_route: &'static str,
    patch_path: String,
}

impl Client {
    /// Sets fields (each name to exactly one value), keeping the others; returns the
    /// action as ActionKit has it after the write.
    ///
    /// Calls: `GET /rest/v1/action/<id>/`, `PATCH <resource_uri>` with the full merged
    /// `{"fields": {...}}`, `GET /rest/v1/action/<id>/`. Nothing is sent when a name or
    /// value is invalid (`InvalidInput`: names `^[A-Za-z0-9_]{1,255}$`, values without
    /// NUL and at most 64 KiB); no PATCH when every value is already set. A missing
    /// action is `NotFound`. Later duplicates of a name win.
    pub async fn set_action_fields(
        &self,
        id: ActionId,
        fields: &[(String, String)],
    ) -> Result<Action, Error> {
        for (name, value) in fields {
            validate_name(name)?;
            validate_value(name, value)?;
        }
        let deadline = self.deadline();
        let _guard = self.inner.locks.acquire(id, deadline).await?;
        let current = self.read_for_write(id, deadline).await?;
        let mut merged = current.fields.clone();
        for (name, value) in fields {
            merged.insert(name.clone(), serde_json::Value::String(value.clone()));
        }
        if merged == current.fields {
            return Ok(current.action);
        }
        self.patch_fields(&current, merged, deadline).await?;
        self.reread(id, deadline).await
    }

    /// Removes the named fields (all when `names` is None); returns the action after.
    ///
    /// Calls on an instance whose PATCH replaces: `GET`, `PATCH` (the dict without the
    /// names), `GET`. On one that merges, the first time: those three, then `GET
    /// /rest/v1/actionfield/?parent=<id>&_limit=100` (all pages), one `DELETE
    /// /rest/v1/actionfield/<row>/` per row, `GET`; later clears skip the PATCH and its
    /// re-read. No write at all when none of the names is set.
    pub async fn clear_action_fields(
        &self,
        id: ActionId,
        names: Option<&[String]>,
    ) -> Result<Action, Error> {
        if let Some(names) = names {
            for name in names {
                validate_name(name)?;
            }
        }
        let deadline = self.deadline();
        let _guard = self.inner.locks.acquire(id, deadline).await?;
        let current = self.read_for_write(id, deadline).await?;
        let doomed: BTreeSet<String> = match names {
            None => current.fields.keys().cloned().collect(),
            Some(names) => names
                .iter()
                .filter(|n| current.fields.contains_key(n.as_str()))
                .cloned()
                .collect(),
        };
        if doomed.is_empty() {
            return Ok(current.action);
        }
        if self.patch_semantics() != PatchSemantics::Merge {
            let remaining: serde_json::Map<_, _> = current
                .fields
                .iter()
                .filter(|(k, _)| !doomed.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            self.patch_fields(&current, remaining, deadline).await?;
            let after = self.reread(id, deadline).await?;
            if !doomed.iter().any(|n| after.fields.contains_key(n)) {
                self.set_patch_semantics(PatchSemantics::Replace);
                return Ok(after);
            }
            tracing::info!(
                "ActionKit keeps custom fields absent from a PATCH (merge semantics); \
                 clearing fields by deleting actionfield rows from now on"
            );
            self.set_patch_semantics(PatchSemantics::Merge);
        }
        self.delete_field_rows(id, &doomed, deadline).await?;
        let after = self.reread(id, deadline).await?;
        if doomed.iter().any(|n| after.fields.contains_key(n)) {
            tracing::warn!(action = %id, "custom fields still present after deleting their rows");
        }
        Ok(after)
    }

    async fn read_for_write(
        &self,
        id: ActionId,
        deadline: Instant,
    ) -> Result<ActionForWrite, Error> {
        let body = self
            .inner
            .transport
            .send_fresh(
                &Request::get("/rest/v1/action/{id}/", &format!("/rest/v1/action/{id}/")),
                deadline,
            )
            .await?;
        let action: Action = transport::decode(&body)?;
        #[derive(serde::Deserialize)]
        struct Raw {
            #[serde(default)]
            resource_uri: Option<String>,
            #[serde(default)]
            fields: Option<serde_json::Map<String, serde_json::Value>>,
        }
        let raw: Raw = transport::decode(&body)?;
        // PATCH the action's own (typed) URI when it is one we recognise for this id;
        // otherwise the generic one.
        let typed = raw
            .resource_uri
            .as_deref()
            .and_then(|u| parse_uri(u).map(|(res, rid)| (u, res, rid)))
            .filter(|(_, res, rid)| {
                *rid == id.0
                    && res.ends_with("action")
                    && res
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        let (patch_route, patch_path) = match typed {
            Some((_, res, _)) if res != "action" => (
                "/rest/v1/{type}action/{id}/",
                format!("/rest/v1/{res}/{id}/"),
            ),
            _ => ("/rest/v1/action/{id}/", format!("/rest/v1/action/{id}/")),
        };
        Ok(ActionForWrite {
            action,
            fields: raw.fields.unwrap_or_default(),
            patch_route,
            patch_path,
        })
    }

    async fn patch_fields(
        &self,
        target: &ActionForWrite,
        fields: serde_json::Map<String, serde_json::Value>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let body = serde_json::to_vec(&serde_json::json!({ "fields": fields }))
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let req = Request {
            method: Method::PATCH,
            route: target.patch_route,
            path: &target.patch_path,
            body: Some(body),
            idempotency: Idempotency::Write,
        };
        self.inner.transport.send(&req, deadline).await.map(|_| ())
    }

    async fn reread(&self, id: ActionId, deadline: Instant) -> Result<Action, Error> {
        self.one_in::<Action>(id, deadline)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Deletes the `actionfield` rows of action `id` whose name is in `names`. Lists the
    /// rows by `parent` only (a `name` filter may not be allowed) and keeps only rows
    /// whose parent really is this action.
    async fn delete_field_rows(
        &self,
        id: ActionId,
        names: &BTreeSet<String>,
        deadline: Instant,
    ) -> Result<(), Error> {
        let path = format!("/rest/v1/actionfield/?parent={id}&_limit=100");
        let rows: Vec<ActionField> = self
            .collect_all("/rest/v1/actionfield/", &path, deadline)
            .await?;
        let doomed: Vec<u64> = rows
            .iter()
            .filter(|r| r.parent == id.0 && names.contains(&r.name))
            .map(|r| r.id)
            .collect();
        let t = &self.inner.transport;
        try_join_all(doomed.iter().map(|row| {
            let path = format!("/rest/v1/actionfield/{row}/");
            async move {
                let req = Request {
                    method: Method::DELETE,
                    route: "/rest/v1/actionfield/{id}/",
                    path: &path,
                    body: None,
                    idempotency: Idempotency::Write,
                };
                match t.send(&req, deadline).await {
                    // Already gone (e.g. a repeated DELETE): the goal is reached.
                    Ok(_) | Err(Error::NotFound) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        }))
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_validated() {
        assert!(validate_name("age_2").is_ok());
        assert!(validate_name(&"a".repeat(255)).is_ok());
        for bad in ["", "a-b", "a b", "é", "a.b", &"a".repeat(256)] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidInput(_))),
                "{bad}"
            );
        }
        assert!(validate_value("n", "").is_ok());
        assert!(validate_value("n", &"x".repeat(MAX_FIELD_VALUE_BYTES)).is_ok());
        assert!(validate_value("n", &"x".repeat(MAX_FIELD_VALUE_BYTES + 1)).is_err());
        assert!(validate_value("n", "a\0b").is_err());
    }

    #[tokio::test]
    async fn lock_map_does_not_grow_without_bound() {
        let locks = WriteLocks::default();
        let far = Instant::now() + std::time::Duration::from_secs(5);
        for i in 0..10_000u64 {
            let _g = locks.acquire(ActionId(i), far).await.unwrap();
        }
        assert!(locks.len() <= 65, "{}", locks.len());
    }

    #[tokio::test]
    async fn one_action_one_lock() {
        let locks = WriteLocks::default();
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let g = locks.acquire(ActionId(1), far).await.unwrap();
        let soon = Instant::now() + std::time::Duration::from_millis(50);
        assert!(matches!(
            locks.acquire(ActionId(1), soon).await,
            Err(Error::Timeout)
        ));
        assert!(locks.acquire(ActionId(2), soon).await.is_ok());
        drop(g);
        assert!(locks.acquire(ActionId(1), soon).await.is_ok());
    }
}
