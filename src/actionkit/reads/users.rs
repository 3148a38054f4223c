//! Users: by id, email, AKID, and in batches.

use std::collections::HashMap;

use tokio::time::Instant;

use super::collapse;
use crate::actionkit::akid;
use crate::actionkit::client::Client;
use crate::actionkit::models::*;
use crate::actionkit::Error;

impl Client {
    /// `GET /rest/v1/user/<id>/`; `Ok(None)` when ActionKit answers 404.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, Error> {
        self.one(id).await
    }

    /// `GET /rest/v1/user/?email=<email>` (exact match, percent-encoded). Only a user
    /// whose email equals the one asked (ignoring ASCII case) is returned.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, Error> {
        if email.is_empty() || email.contains('\0') {
            return Err(Error::InvalidInput(
                "email must be a non-empty string".into(),
            ));
        }
        let deadline = self.deadline();
        self.bounded(deadline, self.user_by_email_in(email, deadline))
            .await
    }

    pub(crate) async fn user_by_email_in(
        &self,
        email: &str,
        deadline: Instant,
    ) -> Result<Option<User>, Error> {
        self.find_by("/rest/v1/user/", "email", email, deadline, |u: &User| {
            u.email.eq_ignore_ascii_case(email)
        })
        .await
    }

    /// The user an AKID (`<mailing>.<user>.<hash>`, mailing optional) names.
    ///
    /// With the AKID secret configured the hash is checked locally and the user read by
    /// id (`GET /rest/v1/user/<id>/`, one call; none when the hash is wrong). Without
    /// it, `GET /rest/v1/userpublic/<akid>/` validates the AKID and the user it names is
    /// then read by id (two calls).
    ///
    /// `Err(InvalidInput)` for a malformed AKID, `Ok(None)` for a well-formed one that
    /// does not verify or names no user.
    pub async fn user_by_akid(&self, akid: &str) -> Result<Option<User>, Error> {
        let parsed = akid::parse(akid)
            .ok_or_else(|| Error::InvalidInput("not an AKID (<mailing>.<user>.<hash>)".into()))?;
        let deadline = self.deadline();
        if let Some(secret) = &self.inner.akid_secret {
            if !akid::verify(secret, &parsed) {
                return Ok(None);
            }
            return self
                .bounded(deadline, self.one_in::<User>(parsed.user, deadline))
                .await;
        }
        self.bounded(deadline, async {
            // The AKID was checked to be `[0-9.A-Za-z_-]` only, safe in a path.
            let public: Option<serde_json::Value> = match self
                .inner
                .transport
                .get_opt(
                    "/rest/v1/userpublic/{akid}/",
                    &format!("/rest/v1/userpublic/{akid}/"),
                    deadline,
                )
                .await
            {
                // ActionKit's answer for an AKID that does not verify is undocumented;
                // a 400 means the same as a 404 here.
                Err(Error::BadRequest { .. }) => None,
                other => other?,
            };
            let Some(public) = public else {
                return Ok(None);
            };
            // A 200 means ActionKit accepted the AKID. Which key names the user is
            // undocumented (the user URI, `user_id`, or the resource's own id are
            // read); when one does, it must be the AKID's user.
            match userpublic_user(&public) {
                Some(id) if id != parsed.user => Ok(None),
                _ => self.one_in::<User>(parsed.user, deadline).await,
            }
        })
        .await
    }

    /// Users by id; ids ActionKit does not know are absent from the map.
    ///
    /// With `id__in` allowed: `GET /rest/v1/user/?id__in=1,2,3&_limit=100`, one call per
    /// 100 distinct ids, in parallel. Otherwise one `GET /rest/v1/user/<id>/` per id
    /// under the cap.
    pub async fn users(&self, ids: &[UserId]) -> Result<HashMap<UserId, User>, Error> {
        collapse(self.each(ids).await)
    }
}

/// The user id a `userpublic` answer names: `user` (URI or number), `user_id`, or `id`.
fn userpublic_user(v: &serde_json::Value) -> Option<UserId> {
    let as_id = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => parse_uri(s)
            .filter(|(res, _)| *res == "user")
            .map(|(_, id)| id)
            .or_else(|| s.parse().ok()),
        _ => None,
    };
    ["user", "user_id", "id"]
        .iter()
        .find_map(|k| v.get(k).and_then(as_id))
        .map(UserId)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userpublic_names_a_user_in_any_of_several_ways() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(
            userpublic_user(&j(r#"{"user": "/rest/v1/user/7/"}"#)),
            Some(UserId(7))
        );
        assert_eq!(userpublic_user(&j(r#"{"user_id": 7}"#)), Some(UserId(7)));
        assert_eq!(
            userpublic_user(&j(r#"{"id": 7, "first_name": "A"}"#)),
            Some(UserId(7))
        );
        assert_eq!(userpublic_user(&j(r#"{"first_name": "A"}"#)), None);
    }
}
