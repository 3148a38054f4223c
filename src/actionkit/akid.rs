//! AKIDs: `<mailing_id>.<user_id>.<hash>`, mailing id optional (`.103007.Gcg02t`).
//!
//! `hash = first 6 chars of base64_urlsafe(sha256(SECRET + "." + CLEARTEXT))`, where
//! CLEARTEXT is everything before the last dot (reference §4.1).
//!
//! The one place AKIDs are parsed and verified: the client (`user(akid:)`, action
//! processing), the access checks and the `self` key's member (`graphql/access.rs`,
//! `http/auth/`) all come here, so they accept exactly the same input.

use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use super::models::UserId;

/// A well-formed AKID, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Akid<'a> {
    /// Everything before the last dot (`"2695.103007"` or `".103007"`).
    pub cleartext: &'a str,
    pub mailing: Option<u64>,
    pub user: UserId,
    pub hash: &'a str,
}

/// Splits an AKID; `None` when it is not of the documented shape: an optional mailing
/// id and a user id (digits, at most 19, the user id not 0), and a 6-character hash
/// of `[A-Za-z0-9_-]`.
pub fn parse(akid: &str) -> Option<Akid<'_>> {
    let (cleartext, hash) = akid.rsplit_once('.')?;
    let (mailing, user) = cleartext.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(user) || (!mailing.is_empty() && !digits(mailing)) {
        return None;
    }
    if hash.len() != 6
        || !hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Some(Akid {
        cleartext,
        mailing: if mailing.is_empty() {
            None
        } else {
            Some(mailing.parse().ok()?)
        },
        user: UserId(user.parse().ok().filter(|&n: &u64| n > 0)?),
        hash,
    })
}

/// The user an AKID names, without verifying it; `None` when it is malformed.
pub fn user_of(akid: &str) -> Option<UserId> {
    parse(akid).map(|a| a.user)
}

/// The user a well-formed AKID names, when its hash verifies with `secret`.
pub fn verified_user(secret: &SecretString, akid: &str) -> Option<UserId> {
    let parsed = parse(akid)?;
    verify(secret, &parsed).then_some(parsed.user)
}

/// The 6-character hash ActionKit appends to `cleartext`.
pub fn hash(secret: &SecretString, cleartext: &str) -> String {
    use base64::Engine as _;
    let mut h = Sha256::new();
    h.update(secret.expose_secret().as_bytes());
    h.update(b".");
    h.update(cleartext.as_bytes());
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(h.finalize());
    encoded.chars().take(6).collect()
}

/// True when `akid`'s hash matches. Compares in constant time.
pub fn verify(secret: &SecretString, akid: &Akid<'_>) -> bool {
    use subtle::ConstantTimeEq as _;
    let expected = hash(secret, akid.cleartext);
    expected.len() == akid.hash.len() && bool::from(expected.as_bytes().ct_eq(akid.hash.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_test_vectors() {
        let secret = SecretString::from("emulator-secret");
        assert_eq!(hash(&secret, ".3"), "qPLFs8");
        assert_eq!(hash(&secret, "2695.103007"), "zzv_jK");
        assert_eq!(hash(&secret, ".103007"), "HhWYZe");
        assert!(verify(&secret, &parse("2695.103007.zzv_jK").unwrap()));
        assert!(verify(&secret, &parse(".103007.HhWYZe").unwrap()));
        assert!(!verify(&secret, &parse(".103007.HhWYZf").unwrap()));
        assert!(!verify(&secret, &parse("2695.103007.HhWYZe").unwrap()));
    }

    #[test]
    fn shapes() {
        let a = parse("2695.103007.Gcg02t").unwrap();
        assert_eq!(
            (a.mailing, a.user, a.cleartext),
            (Some(2695), UserId(103007), "2695.103007")
        );
        let a = parse(".1.9P66-W").unwrap();
        assert_eq!((a.mailing, a.user), (None, UserId(1)));
        for bad in [
            "",
            "103007",
            ".103007",
            "..Gcg02t",
            "x.1.Gcg02t",
            ".1.Gcg02",
            ".1.Gcg0/t",
            ".1.2.Gcg02t",
            ".99999999999999999999.Gcg02t",
            ".0.Gcg02t",
            "a.b.c",
            "1.2",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn user_of_and_verified_user() {
        let secret = SecretString::from("emulator-secret");
        assert_eq!(user_of(".103007.Gcg02t"), Some(UserId(103007)));
        assert_eq!(user_of("x.103007.Gcg02t"), None);
        assert_eq!(
            verified_user(&secret, "2695.103007.zzv_jK"),
            Some(UserId(103007))
        );
        assert_eq!(verified_user(&secret, "2695.103007.zzv_jL"), None);
        assert_eq!(
            verified_user(&SecretString::from("other"), "2695.103007.zzv_jK"),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn every_signed_akid_verifies_and_no_other_hash_does(
            mailing in proptest::option::of(0u64..10_000_000),
            user in 1u64..100_000_000,
            secret in "[ -~]{1,64}",
            other in "[A-Za-z0-9_-]{6}",
        ) {
            let secret = SecretString::from(secret);
            let clear = match mailing {
                Some(m) => format!("{m}.{user}"),
                None => format!(".{user}"),
            };
            let good = format!("{clear}.{}", hash(&secret, &clear));
            let parsed = parse(&good).expect("well-formed");
            proptest::prop_assert_eq!(parsed.user, UserId(user));
            proptest::prop_assert_eq!(parsed.mailing, mailing);
            proptest::prop_assert!(verify(&secret, &parsed));
            let forged = format!("{clear}.{other}");
            let forged = parse(&forged).expect("well-formed");
            proptest::prop_assert_eq!(verify(&secret, &forged), other == hash(&secret, &clear));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
