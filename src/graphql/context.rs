//! `Query.pageContext`: what a form needs to render for one visitor: the page, whether
//! the visitor's AKID verifies, and then the member's first name and the page's
//! required fields still missing for them. Nothing else about the member (no email,
//! no address) reaches the caller, whatever its scopes: it is a form's view.

use std::sync::Arc;

use async_graphql::{Context, Object};
use secrecy::ExposeSecret as _;

use super::access;
use super::error::{ErrorCode, GatewayError, GqlResult};
use super::progress::check_progress_page;
use super::types::{check_page_name, PageNode};
use crate::actionkit::{Client, PageForm, User};

/// A page and a visitor, as a form sees them.
pub(super) struct PageContext {
    form: Arc<PageForm>,
    user: Option<User>,
}

/// Whether `user` has a value for the required field `field` (as `submitAction`
/// names fields). Fields the gateway does not read from the member record (`phone`,
/// custom fields) count as missing: the form asks again.
fn has(user: &User, field: &str) -> bool {
    let filled = |s: &str| !s.trim().is_empty();
    match field {
        "email" => filled(&user.email),
        "first_name" => filled(&user.first_name),
        "last_name" => filled(&user.last_name),
        "name" => filled(&user.first_name) && filled(&user.last_name),
        "city" => filled(&user.city),
        "state" => filled(&user.state),
        "zip" => filled(&user.zip),
        "country" => filled(&user.country),
        "address1" => filled(&user.address1),
        "address2" => filled(&user.address2),
        "postal" => filled(&user.postal),
        "region" => filled(&user.region),
        _ => false,
    }
}

/// What a form needs to render for one visitor: the page, whether the visitor is
/// recognised, their first name and the required fields still missing. Nothing else
/// about the member.
#[Object]
impl PageContext {
    /// The page (title, type, `progress`, ...).
    async fn page(&self) -> PageNode {
        PageNode(Arc::new(self.form.page.clone()))
    }
    /// True when the visitor's AKID verified and names a member.
    async fn recognized(&self) -> bool {
        self.user.is_some()
    }
    /// The recognised member's first name ("Not Rosa?"); null for a visitor who is not
    /// recognised, or a member without one. Nothing else about the member is given.
    async fn first_name(&self) -> Option<&str> {
        self.user
            .as_ref()
            .map(|u| u.first_name.trim())
            .filter(|n| !n.is_empty())
    }
    /// The fields the page requires besides email, as `submitAction` names them
    /// (`first_name`, `zip`, ...).
    async fn required_fields(&self) -> &[String] {
        &self.form.required_fields
    }
    /// The fields the form must still ask this visitor for: for a recognised member,
    /// the required fields the member record has no value for; for anyone else,
    /// `email` and every required field.
    async fn missing_fields(&self) -> Vec<&str> {
        match &self.user {
            Some(user) => self
                .form
                .required_fields
                .iter()
                .map(String::as_str)
                .filter(|f| !has(user, f))
                .collect(),
            None => std::iter::once("email")
                .chain(self.form.required_fields.iter().map(String::as_str))
                .collect(),
        }
    }
}

/// Resolves `pageContext(page:, akid:)`. A `self` caller that sends no `akid` is
/// recognised by the AKID it authenticated with.
pub(super) async fn page_context(
    ctx: &Context<'_>,
    page: String,
    akid: Option<String>,
) -> GqlResult<Option<PageContext>> {
    check_page_name(&page, "page")?;
    check_progress_page(ctx, &page)?;
    let akid = match akid {
        Some(a) => Some(a),
        None => access::principal(ctx)
            .member_akid
            .as_ref()
            .map(|a| a.expose_secret().to_owned()),
    };
    if let Some(a) = &akid {
        if a.is_empty() || a.len() > 64 {
            return Err(GatewayError::bad_input("`akid` is not an AKID").into());
        }
    }
    let Some(client) = ctx.data_opt::<Client>() else {
        return Err(GatewayError::new(ErrorCode::Internal, "no upstream configured").into());
    };
    // The member first: the client refuses a malformed AKID before anything is sent,
    // and then nothing is (the page's form is usually cached anyway).
    let user = match &akid {
        None => None,
        Some(a) => client.user_by_akid(a).await.map_err(GatewayError::from)?,
    };
    let Some(form) = super::submit::cached_page_form(ctx, client, &page)
        .await
        .map_err(GatewayError::from)?
    else {
        return Ok(None);
    };
    Ok(Some(PageContext { form, user }))
}
