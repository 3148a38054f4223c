//! Who is asking, and what they may touch: the caller's [`Principal`] (set by the HTTP
//! layer after authentication), the scope checks on operations, and the per-member
//! (`self`) checks that resolvers call before any upstream request.
//!
//! Scopes:
//! - `read`: any query.
//! - `write`: mutations on any action, and the action they return (its `user` and
//!   `page` need `read`).
//! - `self`: queries about one member only, the one whose AKID the caller sent
//!   (`X-AKID`, verified locally with `ACTIONKIT_AKID_SECRET`): that user, the user's
//!   actions and the pages of those actions. With `write` as well, mutations only on
//!   that member's actions.
//!
//! A request that reaches the schema without a principal may do nothing (fail closed).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Context, Request, ServerError, ServerResult, Variables};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ErrorCode, GatewayError};
use super::loaders::Loaders;
use crate::actionkit::{ActionId, UserId};

/// What a caller may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
    pub member: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        member: false,
    };
    pub const READ: Scopes = Scopes {
        read: true,
        write: false,
        member: false,
    };
    pub const NONE: Scopes = Scopes {
        read: false,
        write: false,
        member: false,
    };

    /// Parses `read+write`, `self`, ... (`+` or space separated; at least one scope).
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut s = Scopes::NONE;
        let mut any = false;
        for part in text.split(['+', ' ']).filter(|p| !p.is_empty()) {
            match part {
                "read" => s.read = true,
                "write" => s.write = true,
                "self" => s.member = true,
                other => return Err(format!("unknown scope {other:?} (read, write, self)")),
            }
            any = true;
        }
        if !any {
            return Err("no scope given (read, write, self)".into());
        }
        Ok(s)
    }

    /// True when reads are limited to one member.
    pub fn member_only(self) -> bool {
        self.member && !self.read
    }

    pub fn may_query(self) -> bool {
        self.read || self.member
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [
            (self.read, "read"),
            (self.write, "write"),
            (self.member, "self"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        f.write_str(&names.join("+"))
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The key's configured name (or `anonymous`, or the JWT subject); never a secret.
    pub name: Arc<str>,
    pub scopes: Scopes,
    /// The member a `self` caller proved to be (from a verified AKID).
    pub member: Option<UserId>,
}

impl Principal {
    pub fn new(name: impl Into<Arc<str>>, scopes: Scopes) -> Self {
        Principal {
            name: name.into(),
            scopes,
            member: None,
        }
    }

    /// The principal of a request that carries none: may do nothing.
    pub fn nobody() -> Self {
        Principal::new("nobody", Scopes::NONE)
    }
}

tokio::task_local! {
    /// The principal of the request being served, set by the HTTP guard around the
    /// handler and copied into the GraphQL request's data by [`AccessExtension`].
    pub static CURRENT: Principal;
}

fn forbidden(message: &str) -> GatewayError {
    GatewayError::new(ErrorCode::Forbidden, message)
}

/// The caller of the current operation (nobody when none was set).
pub fn principal<'a>(ctx: &'a Context<'_>) -> std::borrow::Cow<'a, Principal> {
    match ctx.data_opt::<Principal>() {
        Some(p) => std::borrow::Cow::Borrowed(p),
        None => std::borrow::Cow::Owned(Principal::nobody()),
    }
}

/// May the caller read this user? Checked before anything is loaded.
pub fn check_user(ctx: &Context<'_>, user: UserId) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if p.scopes.read || (p.scopes.member && p.member == Some(user)) {
        Ok(())
    } else {
        Err(forbidden("this key may read only its own member"))
    }
}

/// May the caller look members up by something other than their id (email)? Only
/// with `read`: a `self` caller would learn whether an address is a member.
pub fn check_lookup(ctx: &Context<'_>) -> Result<(), GatewayError> {
    if principal(ctx).scopes.read {
        Ok(())
    } else {
        Err(forbidden(
            "this key may read only its own member, by id or AKID",
        ))
    }
}

/// May the caller look up this AKID? A `self` caller only its own (the user id inside
/// the AKID is compared before any call; the client verifies the hash).
pub fn check_akid(ctx: &Context<'_>, akid: &str) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if p.scopes.read {
        return Ok(());
    }
    match (akid_user(akid), p.member) {
        (Some(u), Some(me)) if p.scopes.member && u == me => Ok(()),
        _ => Err(forbidden("this key may read only its own member")),
    }
}

/// May the caller read pages other than through its own actions? Only with `read`.
pub fn check_any_page(ctx: &Context<'_>) -> Result<(), GatewayError> {
    if principal(ctx).scopes.read {
        Ok(())
    } else {
        Err(forbidden(
            "this key may read pages only through its member's actions",
        ))
    }
}

/// May the caller see (or, for mutations, change) an action of this user? Checked
/// after the action is loaded, before it is returned or written.
pub fn check_action_owner(ctx: &Context<'_>, owner: UserId) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if p.scopes.read || (p.scopes.member && p.member == Some(owner)) {
        Ok(())
    } else {
        Err(forbidden(
            "this key may touch only its own member's actions",
        ))
    }
}

/// May the caller follow an action to its member or page? With `read`, or with
/// `self` for the member's own actions. A `write`-only caller sees the action a
/// mutation returns, not the member or page behind it.
pub fn check_action_links(ctx: &Context<'_>, owner: UserId) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if p.scopes.read || (p.scopes.member && p.member == Some(owner)) {
        Ok(())
    } else {
        Err(forbidden(
            "the action's `user` and `page` need a key with the `read` scope",
        ))
    }
}

/// May the caller change this action? Needs `write`. A `write` key without `self`
/// may change any action (`write` alone is a staff sync key: it writes, it does not
/// read members); a caller whose reads are limited to one member (`self+write`) may
/// change only that member's actions, which costs one read of the action before the
/// write.
pub async fn check_write(ctx: &Context<'_>, action: ActionId) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if !p.scopes.write {
        return Err(forbidden("mutations need a key with the `write` scope"));
    }
    if !p.scopes.member_only() {
        return Ok(());
    }
    let loaders = ctx.data_unchecked::<Loaders>();
    match loaders.actions.load_one(action).await {
        Ok(Some(a)) => check_action_owner(ctx, a.user_id()),
        Ok(None) => Err(GatewayError::not_found("no such action")),
        Err(e) => Err(GatewayError::from(e)),
    }
}

/// The user id inside an AKID (`<mailing>.<user_id>.<hash>`), without verifying it.
pub fn akid_user(akid: &str) -> Option<UserId> {
    let mut parts = akid.split('.');
    let (_mailing, user, _hash) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || user.is_empty()
        || user.len() > 19
        || !user.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    user.parse().ok().filter(|&n| n > 0).map(UserId)
}

/// Verifies an AKID with the instance's hash secret (ActionKit's formula: the first 6
/// characters of base64url(sha256(SECRET + "." + CLEARTEXT)), CLEARTEXT being
/// everything before the last dot) and returns the user it names.
pub fn verify_akid(secret: &str, akid: &str) -> Option<UserId> {
    if akid.len() > 64 {
        return None;
    }
    let user = akid_user(akid)?;
    let (cleartext, hash) = akid.rsplit_once('.')?;
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(b".");
    h.update(cleartext.as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE.encode(h.finalize());
    let expected = &expected.as_bytes()[..6];
    (hash.len() == 6 && bool::from(expected.ct_eq(hash.as_bytes()))).then_some(user)
}

/// Copies the request's principal into the GraphQL request, and refuses operations the
/// principal's scopes do not allow before anything runs: mutations without `write`,
/// queries without `read` or `self`.
pub struct AccessExtension;

impl ExtensionFactory for AccessExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AccessGuard::default())
    }
}

#[derive(Default)]
struct AccessGuard {
    /// `(principal, operation name)` of the request, from `prepare_request`.
    request: Mutex<Option<(Principal, Option<String>)>>,
}

/// A scope refusal of the whole operation: no `locations` (it is about the key, not
/// a place in the document).
fn forbidden_server_error(message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", ErrorCode::Forbidden.as_str());
    err.extensions = Some(ext);
    err
}

fn selected_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// Whether `scopes` may run an operation of this type.
pub fn operation_allowed(scopes: Scopes, ty: OperationType) -> Result<(), &'static str> {
    match ty {
        OperationType::Mutation if !scopes.write => {
            Err("mutations need a key with the `write` scope")
        }
        OperationType::Query if !scopes.may_query() => {
            Err("queries need a key with the `read` or `self` scope")
        }
        OperationType::Subscription => Err("subscriptions are not served"),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl Extension for AccessGuard {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let principal = match request.data.get(&std::any::TypeId::of::<Principal>()) {
            Some(p) => p.downcast_ref::<Principal>().cloned(),
            None => None,
        };
        let principal = principal
            .or_else(|| CURRENT.try_with(Clone::clone).ok())
            .unwrap_or_else(Principal::nobody);
        if let Ok(mut slot) = self.request.lock() {
            *slot = Some((principal.clone(), request.operation_name.clone()));
        }
        request = request.data(principal);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let (principal, name) = self
            .request
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(|| (Principal::nobody(), None));
        // An operation that cannot be selected is reported by async-graphql itself.
        if let Some(ty) = selected_type(&doc, name.as_deref()) {
            if let Err(msg) = operation_allowed(principal.scopes, ty) {
                return Err(forbidden_server_error(msg));
            }
        }
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn akid_for(secret: &str, cleartext: &str) -> String {
        let mut h = Sha256::new();
        h.update(format!("{secret}.{cleartext}").as_bytes());
        let enc = base64::engine::general_purpose::URL_SAFE.encode(h.finalize());
        format!("{cleartext}.{}", &enc[..6])
    }

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(Scopes::parse("read+write").unwrap(), Scopes::ALL);
        let s = Scopes::parse("self").unwrap();
        assert!(s.member_only() && s.may_query() && !s.write);
        assert_eq!(
            Scopes::parse("self+write").unwrap().to_string(),
            "write+self"
        );
        assert!(Scopes::parse("admin").is_err());
        assert!(Scopes::parse("").is_err());
    }

    #[test]
    fn akids_verify_with_the_secret_only() {
        let akid = akid_for("s3cret", "2695.103007");
        assert_eq!(verify_akid("s3cret", &akid), Some(UserId(103007)));
        assert_eq!(verify_akid("other", &akid), None);
        let no_mailing = akid_for("s3cret", ".42");
        assert_eq!(verify_akid("s3cret", &no_mailing), Some(UserId(42)));
        // Tampering with the user id breaks the hash.
        let forged = no_mailing.replacen(".42.", ".43.", 1);
        assert_eq!(verify_akid("s3cret", &forged), None);
        for bad in ["", "1.2", "a.b.c", ".0.abcdef", "1.2.3.4", ".x.abcdef"] {
            assert_eq!(verify_akid("s3cret", bad), None, "{bad}");
        }
        assert_eq!(akid_user(".103007.Gcg02t"), Some(UserId(103007)));
    }

    #[test]
    fn operation_types_need_their_scopes() {
        use OperationType::*;
        assert!(operation_allowed(Scopes::READ, Query).is_ok());
        assert!(operation_allowed(Scopes::READ, Mutation).is_err());
        assert!(operation_allowed(Scopes::ALL, Mutation).is_ok());
        let me = Scopes::parse("self").unwrap();
        assert!(operation_allowed(me, Query).is_ok());
        assert!(operation_allowed(me, Mutation).is_err());
        assert!(operation_allowed(Scopes::parse("write").unwrap(), Query).is_err());
        assert!(operation_allowed(Scopes::NONE, Query).is_err());
    }
}
