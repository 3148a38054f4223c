//! Who is asking, and what they may touch: the caller's [`Principal`] (set by the HTTP
//! layer after authentication), the scope checks on operations, and the per-member
//! (`self`) checks that resolvers call before any upstream request.
//!
//! Scopes:
//! - `read`: any query.
//! - `write`: mutations on any action, and the action they return (its `user` needs
//!   `read`); `submitAction` for any member.
//! - `self`: queries about one member only, the one whose AKID the caller sent
//!   (`X-AKID`, verified locally with `ACTIONKIT_AKID_SECRET`): that user, the user's
//!   actions and the pages of those actions; `submitAction` as that member. With
//!   `write` as well, mutations only on that member's actions.
//! - `submit`: for keys that live in public pages: `submitAction`, `submission`,
//!   `pageContext` and the `pageProgress` subscription, nothing else
//!   ([`SUBMIT_ROOT_FIELDS`]), for the pages the key lists; nothing about a member
//!   comes back beyond what the caller sent (the action's `user` is refused).
//!
//! Which scope each root field needs is decided before anything runs
//! ([`root_field_allowed`]). Anonymous callers never submit, whatever their scopes.
//!
//! A request that reaches the schema without a principal may do nothing (fail closed).

use std::sync::Arc;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Context, ServerError};
#[cfg(test)]
use base64::Engine as _;
use secrecy::SecretString;
#[cfg(test)]
use sha2::{Digest, Sha256};

use super::error::{ErrorCode, GatewayError};
use super::loaders::Loaders;
use crate::actionkit::{ActionId, UserId};

/// What a caller may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes {
    pub read: bool,
    pub write: bool,
    pub member: bool,
    /// `submit`: take actions from a public form, and nothing else.
    pub submit: bool,
}

impl Scopes {
    pub const ALL: Scopes = Scopes {
        read: true,
        write: true,
        member: false,
        submit: false,
    };
    pub const READ: Scopes = Scopes {
        read: true,
        write: false,
        member: false,
        submit: false,
    };
    pub const SUBMIT: Scopes = Scopes {
        read: false,
        write: false,
        member: false,
        submit: true,
    };
    pub const NONE: Scopes = Scopes {
        read: false,
        write: false,
        member: false,
        submit: false,
    };

    /// Sets the scope called `name` (`read`, `write`, `self`, `submit`); false for
    /// any other name.
    pub fn grant(&mut self, name: &str) -> bool {
        match name {
            "read" => self.read = true,
            "write" => self.write = true,
            "self" => self.member = true,
            "submit" => self.submit = true,
            _ => return false,
        }
        true
    }

    /// Parses `read+write`, `self`, `submit`, ... (`+` or space separated; at least one
    /// scope).
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut s = Scopes::NONE;
        let mut any = false;
        for part in text.split(['+', ' ']).filter(|p| !p.is_empty()) {
            if !s.grant(part) {
                return Err(format!(
                    "unknown scope {part:?} (read, write, self, submit)"
                ));
            }
            any = true;
        }
        if !any {
            return Err("no scope given (read, write, self, submit)".into());
        }
        Ok(s)
    }

    /// True when the caller may take actions (`submitAction`): `write`, `submit`, or
    /// `self` (as its own member).
    pub fn may_submit(self) -> bool {
        self.write || self.submit || self.member
    }

    /// True for the callers that public pages hold (`submit`, `self`) and that the
    /// per-address and per-page submission limits apply to: everyone without `write`.
    pub fn public_submitter(self) -> bool {
        !self.write
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
            (self.submit, "submit"),
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
    /// That member's AKID as the caller sent it (verified), which `submitAction` sends
    /// when the caller names no member. Redacted in `Debug`.
    pub member_akid: Option<SecretString>,
    /// The pages this key may submit to; `None`: any page.
    pub pages: Option<Arc<[String]>>,
    /// The client's address (per-address limits), when the HTTP layer knows it.
    pub address: Option<std::net::IpAddr>,
}

impl Principal {
    pub fn new(name: impl Into<Arc<str>>, scopes: Scopes) -> Self {
        Principal {
            name: name.into(),
            scopes,
            member: None,
            member_akid: None,
            pages: None,
            address: None,
        }
    }

    /// The principal of a request that carries none: may do nothing.
    pub fn nobody() -> Self {
        Principal::new("nobody", Scopes::NONE)
    }

    /// A caller without a credential (anonymous reads, the open sandbox). Anonymous
    /// callers never submit actions.
    pub fn is_anonymous(&self) -> bool {
        matches!(&*self.name, "anonymous" | "nobody")
    }

    /// May this caller submit to the page named `page`? Only when its key lists it
    /// (or lists no pages).
    pub fn may_submit_to(&self, page: &str) -> bool {
        self.pages
            .as_ref()
            .is_none_or(|pages| pages.iter().any(|p| p == page))
    }
}

tokio::task_local! {
    /// The principal of the request being served, set by the HTTP guard around the
    /// handler and copied into the GraphQL request's data by the handler (HTTP) or by
    /// [`super::subscription_checks`] (WebSocket).
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

/// May the caller follow an action to its member? With `read`, or with `self` for the
/// member's own actions. A `write`-only or `submit` caller sees the action a mutation
/// returns, not the member behind it.
pub fn check_action_user(ctx: &Context<'_>, owner: UserId) -> Result<(), GatewayError> {
    let p = principal(ctx);
    if p.scopes.read || (p.scopes.member && p.member == Some(owner)) {
        Ok(())
    } else {
        Err(forbidden(
            "the action's `user` needs a key with the `read` scope",
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
    match loaders.action(action).await {
        Ok(Some(a)) => check_action_owner(ctx, a.user_id()),
        Ok(None) => Err(GatewayError::not_found("no such action")),
        Err(e) => Err(GatewayError::from(e)),
    }
}

/// The user id inside an AKID (`<mailing>.<user_id>.<hash>`), without verifying it
/// ([`actionkit::akid::user_of`](crate::actionkit::akid::user_of)).
pub fn akid_user(akid: &str) -> Option<UserId> {
    crate::actionkit::akid::user_of(akid)
}

/// Verifies an AKID with the instance's hash secret and returns the user it names
/// ([`actionkit::akid::verified_user`](crate::actionkit::akid::verified_user)).
pub fn verify_akid(secret: &str, akid: &str) -> Option<UserId> {
    crate::actionkit::akid::verified_user(&SecretString::from(secret.to_owned()), akid)
}

/// A scope refusal of the whole operation: no `locations` (it is about the key, not
/// a place in the document).
pub(crate) fn forbidden_server_error(message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", ErrorCode::Forbidden.as_str());
    err.extensions = Some(ext);
    err
}

/// The root fields a `submit` key may use (with introspection's `__typename`).
pub const SUBMIT_ROOT_FIELDS: [&str; 3] = ["submitAction", "submission", "pageContext"];

/// Whether `scopes` may run an operation of this type at all (before its fields are
/// looked at; see [`root_field_allowed`]).
pub fn operation_allowed(scopes: Scopes, ty: OperationType) -> Result<(), &'static str> {
    match ty {
        OperationType::Mutation if !(scopes.write || scopes.may_submit()) => {
            Err("mutations need a key with the `write` scope")
        }
        OperationType::Query if !(scopes.may_query() || scopes.submit || scopes.write) => {
            Err("queries need a key with the `read` or `self` scope")
        }
        OperationType::Subscription if !(scopes.may_query() || scopes.submit) => {
            Err("subscriptions need a key with the `read`, `self` or `submit` scope")
        }
        _ => Ok(()),
    }
}

/// Whether `principal` may use the root field `field` of an operation of type `ty`.
/// Unknown fields pass (validation reports them).
pub fn root_field_allowed(
    principal: &Principal,
    ty: OperationType,
    field: &str,
) -> Result<(), &'static str> {
    let s = principal.scopes;
    match (ty, field) {
        (_, "__typename") => Ok(()),
        (OperationType::Query, "__schema" | "__type") if s.may_query() || s.submit || s.write => {
            Ok(())
        }
        (OperationType::Mutation, "submitAction") => {
            if principal.is_anonymous() {
                Err("anonymous callers cannot submit actions: send a key with the `submit` scope")
            } else if s.may_submit() {
                Ok(())
            } else {
                Err("submitAction needs a key with the `submit`, `self` or `write` scope")
            }
        }
        (OperationType::Query, "submission") if s.may_query() || s.may_submit() => Ok(()),
        (OperationType::Query, "pageContext") if s.read || s.member || s.submit => Ok(()),
        (OperationType::Mutation, _) if s.write => Ok(()),
        (OperationType::Mutation, _) => Err("mutations need a key with the `write` scope"),
        (OperationType::Query, _) if s.may_query() => Ok(()),
        (OperationType::Query, _) if s.submit => {
            Err("a `submit` key may use submitAction, submission and pageContext only")
        }
        (OperationType::Query, _) => Err("queries need a key with the `read` or `self` scope"),
        (OperationType::Subscription, "pageProgress") if s.may_query() || s.submit => Ok(()),
        (OperationType::Subscription, _) => {
            Err("subscriptions need a key with the `read`, `self` or `submit` scope")
        }
    }
}

/// The root fields an operation selects, through fragments and inline fragments
/// (each fragment once: a fragment that spreads itself is a validation error later,
/// not a loop here).
fn root_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    seen: &mut Vec<&'a str>,
    out: &mut Vec<&'a str>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => out.push(f.node.name.node.as_str()),
            Selection::InlineFragment(f) => root_fields(doc, &f.node.selection_set.node, seen, out),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
                if let Some(frag) = doc.fragments.get(&spread.node.fragment_name.node) {
                    root_fields(doc, &frag.node.selection_set.node, seen, out);
                }
            }
        }
    }
}

/// The operation a request selects: the only one, or the one named. `None` when the
/// document names no single operation (async-graphql reports that itself).
pub fn selected_operation<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a async_graphql::parser::types::OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        _ => None,
    }
}

/// Checks the selected operation of `doc` for `principal`: its type, then each of its
/// root fields.
pub fn check_document(
    principal: &Principal,
    doc: &ExecutableDocument,
    name: Option<&str>,
) -> Result<(), &'static str> {
    let Some(op) = selected_operation(doc, name) else {
        // An operation that cannot be selected is reported by async-graphql itself.
        return Ok(());
    };
    operation_allowed(principal.scopes, op.ty)?;
    let mut fields = Vec::new();
    root_fields(doc, &op.selection_set.node, &mut Vec::new(), &mut fields);
    for field in fields {
        root_field_allowed(principal, op.ty, field)?;
    }
    Ok(())
}

/// Where an operation arrived: subscriptions are served over WebSocket only, queries
/// and mutations over HTTP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Http,
    WebSocket,
}

/// Everything the gateway checks about who sends an operation, before validation: the
/// principal's scopes against the selected operation and its root fields
/// ([`check_document`]), and the operation's type against the transport. The HTTP
/// handler calls it on the document it parsed; [`super::subscription_checks`] on
/// subscriptions.
pub fn check_operation(
    principal: &Principal,
    doc: &ExecutableDocument,
    name: Option<&str>,
    transport: Transport,
) -> Result<(), &'static str> {
    check_document(principal, doc, name)?;
    match (selected_operation(doc, name).map(|op| op.ty), transport) {
        (Some(OperationType::Subscription), Transport::Http) => {
            Err("subscriptions are served over WebSocket (graphql-transport-ws) on /graphql")
        }
        (Some(OperationType::Query | OperationType::Mutation), Transport::WebSocket) => Err(
            "over WebSocket only subscriptions are served; send queries and mutations over HTTP",
        ),
        _ => Ok(()),
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
        // The same shape rules as the client's (`actionkit::akid`): a mailing id is
        // digits, the hash six URL-safe characters.
        assert_eq!(akid_user("x.103007.Gcg02t"), None);
        assert_eq!(akid_user(".103007.Gc/02t"), None);
        assert_eq!(akid_user(".103007.Gcg02"), None);
    }

    #[test]
    fn operation_types_need_their_scopes() {
        use OperationType::*;
        assert!(operation_allowed(Scopes::READ, Query).is_ok());
        assert!(operation_allowed(Scopes::READ, Mutation).is_err());
        assert!(operation_allowed(Scopes::ALL, Mutation).is_ok());
        let me = Scopes::parse("self").unwrap();
        assert!(operation_allowed(me, Query).is_ok());
        assert!(operation_allowed(Scopes::NONE, Query).is_err());
        assert!(operation_allowed(Scopes::NONE, Mutation).is_err());
    }

    fn allowed(principal: &Principal, query: &str) -> Result<(), &'static str> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        check_document(principal, &doc, None)
    }

    #[test]
    fn root_fields_need_their_scopes() {
        let submit = Principal::new("form", Scopes::SUBMIT);
        let reader = Principal::new("web", Scopes::READ);
        let writer = Principal::new("ops", Scopes::parse("write").unwrap());
        let member = Principal::new("member", Scopes::parse("self").unwrap());
        let open = Principal::new("anonymous", Scopes::ALL);
        let submit_action = r#"mutation { submitAction(input: {page: "p"}) { status } }"#;
        let set = r#"mutation { setActionCustomFields(actionId: "1", fields: []) { id } }"#;
        let user = r#"{ user(id: "1") { id } }"#;
        let submission = r#"{ submission(id: "x") { status } __typename }"#;
        // submit: submitAction, submission, and nothing else (fragments included).
        assert!(allowed(&submit, submit_action).is_ok());
        assert!(allowed(&submit, submission).is_ok());
        assert!(allowed(&submit, user).is_err());
        assert!(allowed(&submit, set).is_err());
        assert!(allowed(&submit, "{ ... on Query { user(id: \"1\") { id } } }").is_err());
        assert!(allowed(
            &submit,
            "query { ...F } fragment F on Query { submission(id: \"x\") { id } ...G } \
             fragment G on Query { page(name: \"p\") { id } }"
        )
        .is_err());
        // A fragment that spreads itself is no loop here (validation refuses it).
        assert!(allowed(&submit, "query { ...F } fragment F on Query { ...F }").is_ok());
        // read: queries, no mutations.
        assert!(allowed(&reader, user).is_ok());
        assert!(allowed(&reader, submit_action).is_err());
        // write: every mutation, `submission`, no member reads.
        assert!(allowed(&writer, submit_action).is_ok());
        assert!(allowed(&writer, set).is_ok());
        assert!(allowed(&writer, submission).is_ok());
        assert!(allowed(&writer, user).is_err());
        // self: submits (as its member), reads its member, no other mutation.
        assert!(allowed(&member, submit_action).is_ok());
        assert!(allowed(&member, set).is_err());
        // Anonymous callers never submit, even in the open sandbox.
        assert!(allowed(&open, submit_action).is_err());
        assert!(allowed(&open, set).is_ok());
    }

    #[test]
    fn page_lists_limit_submissions() {
        let mut p = Principal::new("form", Scopes::SUBMIT);
        assert!(p.may_submit_to("anything"));
        p.pages = Some(vec!["save-the-bees".to_owned()].into());
        assert!(p.may_submit_to("save-the-bees"));
        assert!(!p.may_submit_to("fair-rent"));
        assert_eq!(Scopes::parse("submit").unwrap(), Scopes::SUBMIT);
        assert_eq!(
            Scopes::parse("read+submit").unwrap().to_string(),
            "read+submit"
        );
    }
}
