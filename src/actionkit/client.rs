//! PLACEHOLDER: the API surface of the client. The helper implementing issue 3 replaces
//! every body; signatures may grow but should not change without telling the gateway.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use super::models::*;
use super::Error;

/// How the client reaches one ActionKit instance.
#[derive(Clone)]
pub struct ClientConfig {
    /// `https://<instance-host>` (no `/rest/v1`).
    pub base_url: url::Url,
    pub username: String,
    pub password: SecretString,
    pub connect_timeout: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Deadline of one client operation, retries and pagination included.
    pub operation_deadline: Duration,
    /// Requests in flight to the instance, process-wide.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
    pub akid_secret: Option<SecretString>,
}

impl ClientConfig {
    /// A configuration with the defaults: 8 in flight, 3 s connect, 10 s request, 15 s
    /// per operation, 4 retries.
    pub fn new(base_url: url::Url, username: impl Into<String>, password: SecretString) -> Self {
        ClientConfig {
            base_url,
            username: username.into(),
            password,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            operation_deadline: Duration::from_secs(15),
            max_in_flight: 8,
            retry: RetryPolicy {
                max_retries: 4,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
            },
            akid_secret: None,
        }
    }
}

/// Retries of idempotent reads.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Which filters the instance allows, learned from `/rest/v1/<res>/schema/`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub user_id_in: bool,
    pub action_id_in: bool,
    pub action_user_in: bool,
    pub page_id_in: bool,
    pub action_page_name: bool,
    /// False when the probe failed and the conservative defaults are in force.
    pub probed: bool,
}

/// The ActionKit client. Cheap to clone; clones share the connection pool, the
/// concurrency cap and the per-action write locks.
#[derive(Clone)]
pub struct Client {}

impl Client {
    pub fn new(_config: ClientConfig) -> Result<Client, Error> {
        Ok(Client {})
    }
    /// Reads the schemas and records capabilities; never fails (conservative fallback).
    pub async fn probe(&self) -> Capabilities {
        Capabilities::default()
    }
    pub fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    /// One authenticated call (`GET /rest/v1/`): Ok when the credential works.
    pub async fn check_credentials(&self) -> Result<(), Error> {
        Err(Error::Unauthorized)
    }
    pub async fn user(&self, _id: UserId) -> Result<Option<User>, Error> {
        Err(Error::Timeout)
    }
    pub async fn user_by_email(&self, _email: &str) -> Result<Option<User>, Error> {
        Err(Error::Timeout)
    }
    /// `Err(InvalidInput)` for a malformed AKID, `Ok(None)` for a well-formed one that
    /// does not verify or names no user.
    pub async fn user_by_akid(&self, _akid: &str) -> Result<Option<User>, Error> {
        Err(Error::Timeout)
    }
    /// Missing ids are absent from the map.
    pub async fn users(&self, _ids: &[UserId]) -> Result<HashMap<UserId, User>, Error> {
        Err(Error::Timeout)
    }
    pub async fn action(&self, _id: ActionId) -> Result<Option<Action>, Error> {
        Err(Error::Timeout)
    }
    pub async fn actions(&self, _ids: &[ActionId]) -> Result<HashMap<ActionId, Action>, Error> {
        Err(Error::Timeout)
    }
    /// One window of one user's actions in ActionKit's default order (ascending id).
    pub async fn user_actions(
        &self,
        _user: UserId,
        _filter: &ActionFilter,
        _offset: u64,
        _limit: u64,
    ) -> Result<Window<Action>, Error> {
        Err(Error::Timeout)
    }
    /// All actions of several users, grouped by user (ascending id within each).
    /// Uses `user__in` when allowed; `max_calls` bounds the list calls it may make and
    /// `Ok(None)` means it would need more (the caller then reads per user).
    pub async fn actions_of_users(
        &self,
        _users: &[UserId],
        _filter: &ActionFilter,
        _max_calls: usize,
    ) -> Result<Option<HashMap<UserId, Vec<Action>>>, Error> {
        Err(Error::Timeout)
    }
    pub async fn page(&self, _id: PageId) -> Result<Option<Page>, Error> {
        Err(Error::Timeout)
    }
    pub async fn pages(&self, _ids: &[PageId]) -> Result<HashMap<PageId, Page>, Error> {
        Err(Error::Timeout)
    }
    pub async fn page_by_name(&self, _name: &str) -> Result<Option<Page>, Error> {
        Err(Error::Timeout)
    }
    /// Sets fields (each name to exactly one value), keeping the others; returns the
    /// action as ActionKit has it after the write.
    pub async fn set_action_fields(
        &self,
        _id: ActionId,
        _fields: &[(String, String)],
    ) -> Result<Action, Error> {
        Err(Error::Timeout)
    }
    /// Removes the named fields (all when `names` is None); returns the action after.
    pub async fn clear_action_fields(
        &self,
        _id: ActionId,
        _names: Option<&[String]>,
    ) -> Result<Action, Error> {
        Err(Error::Timeout)
    }
}
