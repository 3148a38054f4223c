//! Typed ActionKit resources as the gateway sees them, decoded from ActionKit's JSON.
//!
//! Relations arrive as relative URIs (`/rest/v1/petitionpage/8651/`); they are parsed
//! into typed ids here and only here (see [`parse_uri`]). Unknown fields are ignored so
//! that a newer instance with more fields still decodes.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// The id of an ActionKit user (`core_user.id`).
    UserId
);
id_type!(
    /// The id of an ActionKit action; the same under `/action/` and its typed resource.
    ActionId
);
id_type!(
    /// The id of an ActionKit page; the same under `/page/` and its typed resource.
    PageId
);

/// Splits a relative resource URI such as `/rest/v1/petitionpage/8651/` into the
/// resource name (`petitionpage`) and the numeric id. Returns `None` for anything else.
pub fn parse_uri(uri: &str) -> Option<(&str, u64)> {
    let rest = uri.strip_prefix("/rest/v1/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (resource, id) = rest.split_once('/')?;
    if resource.is_empty() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((resource, id.parse().ok()?))
}

/// The kind of an action or page: ActionKit's page type name (`"Petition"`,
/// `"EventSignup"`, ...). Types the gateway does not know are kept verbatim in `Other`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    Petition,
    Signup,
    Donation,
    EventSignup,
    EventCreate,
    Unsubscribe,
    Survey,
    Call,
    Letter,
    Lte,
    Import,
    UserUpdate,
    RecurringDonationCancel,
    RecurringDonationUpdate,
    Other(String),
}

impl ActionKind {
    /// Every kind the gateway knows by name, in a fixed order.
    pub const KNOWN: [ActionKind; 14] = [
        ActionKind::Petition,
        ActionKind::Signup,
        ActionKind::Donation,
        ActionKind::EventSignup,
        ActionKind::EventCreate,
        ActionKind::Unsubscribe,
        ActionKind::Survey,
        ActionKind::Call,
        ActionKind::Letter,
        ActionKind::Lte,
        ActionKind::Import,
        ActionKind::UserUpdate,
        ActionKind::RecurringDonationCancel,
        ActionKind::RecurringDonationUpdate,
    ];

    /// ActionKit's page type name, as in the `type` field.
    pub fn type_name(&self) -> &str {
        match self {
            ActionKind::Petition => "Petition",
            ActionKind::Signup => "Signup",
            ActionKind::Donation => "Donation",
            ActionKind::EventSignup => "EventSignup",
            ActionKind::EventCreate => "EventCreate",
            ActionKind::Unsubscribe => "Unsubscribe",
            ActionKind::Survey => "Survey",
            ActionKind::Call => "Call",
            ActionKind::Letter => "Letter",
            ActionKind::Lte => "LTE",
            ActionKind::Import => "Import",
            ActionKind::UserUpdate => "UserUpdate",
            ActionKind::RecurringDonationCancel => "RecurringDonationCancel",
            ActionKind::RecurringDonationUpdate => "RecurringDonationUpdate",
            ActionKind::Other(name) => name,
        }
    }

    /// Parses a page type name; unknown names become `Other`.
    pub fn from_type_name(name: &str) -> ActionKind {
        ActionKind::KNOWN
            .iter()
            .find(|k| k.type_name() == name)
            .cloned()
            .unwrap_or_else(|| ActionKind::Other(name.to_owned()))
    }

    /// The typed resource prefix: `"Petition"` → `"petition"` (so `petitionaction`,
    /// `petitionpage`).
    pub fn resource_prefix(&self) -> String {
        self.type_name().to_ascii_lowercase()
    }
}

/// As its type name, so that a serialized model reads back (the shared page cache).
impl Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.type_name())
    }
}

impl<'de> Deserialize<'de> for ActionKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, |s| Ok(ActionKind::from_type_name(s)))
    }
}

/// One custom field value as ActionKit renders it: a string, or an array of strings
/// when the field has several rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    One(String),
    Many(Vec<String>),
}

impl FieldValue {
    /// Every value, in ActionKit's order.
    pub fn values(&self) -> Vec<String> {
        self.as_slice().to_vec()
    }

    /// Every value, in ActionKit's order, borrowed.
    pub fn as_slice(&self) -> &[String] {
        match self {
            FieldValue::One(v) => std::slice::from_ref(v),
            FieldValue::Many(vs) => vs,
        }
    }

    /// The single value; the first one for a multi-valued field (empty if none).
    pub fn first(&self) -> String {
        self.as_slice().first().cloned().unwrap_or_default()
    }
}

/// Custom fields by name, sorted by name.
pub type CustomFields = BTreeMap<String, FieldValue>;

fn lenient_fields<'de, D: Deserializer<'de>>(d: D) -> Result<CustomFields, D::Error> {
    // ActionKit stores field values as text; numbers or booleans that slipped in are
    // shown as strings, and a null means "no fields".
    let raw: Option<BTreeMap<String, LenientValue>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(name, LenientValue(v))| (name, v))
        .collect())
}

/// A custom field's value read straight into a [`FieldValue`]: a string as it is, a
/// null as an empty string, an array as one string per row, and anything else as its
/// JSON text. Strings are moved, not copied through a `serde_json::Value`.
struct LenientValue(FieldValue);

impl<'de> Deserialize<'de> for LenientValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a custom field value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(row) = seq.next_element::<serde_json::Value>()? {
                    rows.push(value_text(row));
                }
                Ok(FieldValue::Many(rows))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::One(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
                Ok(FieldValue::One(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
                Ok(FieldValue::One(String::new()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue::One(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::One(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::One(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
                Ok(FieldValue::One(value_text(serde_json::Value::from(v))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldValue, A::Error> {
                let object =
                    serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldValue::One(object.to_string()))
            }
        }
        d.deserialize_any(V).map(LenientValue)
    }
}

/// A JSON value as a field shows it: a string as it is, null as empty, else its JSON.
fn value_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Reads a string into `T` without keeping it: `parse` sees it borrowed from the body
/// where serde_json can lend it, so a relation URI or a type name costs no allocation.
fn parse_str<'de, D, T>(d: D, parse: impl FnOnce(&str) -> Result<T, String>) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct V<F>(F);
    impl<'de, T, F: FnOnce(&str) -> Result<T, String>> Visitor<'de> for V<F> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            (self.0)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(V(parse))
}

/// A relation URI's id; `None` for an empty string.
struct UriId(Option<u64>);

impl<'de> Deserialize<'de> for UriId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_str(d, |s| {
            if s.is_empty() {
                return Ok(UriId(None));
            }
            parse_uri(s)
                .map(|(_, id)| UriId(Some(id)))
                .ok_or_else(|| format!("not a resource URI: {s:?}"))
        })
    }
}

fn uri_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match UriId::deserialize(d)? {
        UriId(Some(id)) => Ok(id),
        UriId(None) => Err(de::Error::custom("not a resource URI: \"\"")),
    }
}

fn opt_uri_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<UriId>::deserialize(d)?.and_then(|UriId(id)| id))
}

/// An ActionKit user (`/rest/v1/user/<id>/`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub first_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub last_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub city: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub state: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub zip: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub country: String,
    /// Address lines, postal code and region: read to tell a form which required
    /// fields a member still lacks (`pageContext`), never returned to callers.
    #[serde(default, deserialize_with = "null_as_default")]
    pub address1: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub address2: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub postal: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub region: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscription_status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub updated_at: String,
    /// Custom *user* fields.
    #[serde(default, deserialize_with = "lenient_fields")]
    pub fields: CustomFields,
}

/// An ActionKit action, read from `/rest/v1/action/` or a typed action resource.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Action {
    pub id: ActionId,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub source: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub updated_at: String,
    #[serde(deserialize_with = "uri_id")]
    pub user: u64,
    #[serde(deserialize_with = "uri_id")]
    pub page: u64,
    /// Custom action fields.
    #[serde(default, deserialize_with = "lenient_fields")]
    pub fields: CustomFields,
    /// `eventsignupaction.signup`: the event signup's id, when present.
    #[serde(default, deserialize_with = "opt_uri_id")]
    pub signup: Option<u64>,
    /// `eventcreateaction.event`: the created event's id, when present.
    #[serde(default, deserialize_with = "opt_uri_id")]
    pub event: Option<u64>,
    /// `donationaction.order`: the order, when present (a URI or an embedded object).
    #[serde(default)]
    pub order: Option<Order>,
}

impl Action {
    pub fn user_id(&self) -> UserId {
        UserId(self.user)
    }
    pub fn page_id(&self) -> PageId {
        PageId(self.page)
    }
}

/// A donation's order: only what the gateway shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: Option<u64>,
    /// The total as ActionKit renders it (a decimal string such as `"10.00"`).
    pub total: Option<String>,
    pub status: Option<String>,
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let text = |v: Option<&serde_json::Value>| match v {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        match &v {
            serde_json::Value::String(uri) => Ok(Order {
                id: parse_uri(uri).map(|(_, id)| id),
                total: None,
                status: None,
            }),
            serde_json::Value::Object(map) => Ok(Order {
                id: map.get("id").and_then(|v| v.as_u64()).or_else(|| {
                    map.get("resource_uri")
                        .and_then(|u| u.as_str())
                        .and_then(parse_uri)
                        .map(|(_, id)| id)
                }),
                total: text(map.get("total")),
                status: text(map.get("status")),
            }),
            other => Err(serde::de::Error::custom(format!(
                "order is neither a URI nor an object: {other}"
            ))),
        }
    }
}

/// A page's tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
}

/// An ActionKit page (`/rest/v1/page/<id>/` or a typed page resource). Serialized in
/// the same shape, so that a page cached as JSON (shared between replicas) reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub id: PageId,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub title: String,
    #[serde(rename = "type")]
    pub kind: ActionKind,
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub hidden: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<Tag>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_at: String,
}

/// A row of `/rest/v1/actionfield/`: one value of one custom action field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ActionField {
    pub id: u64,
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub value: String,
    /// The action the row belongs to.
    #[serde(deserialize_with = "uri_id")]
    pub parent: u64,
}

/// Which of a user's actions to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionFilter {
    /// Only actions of this kind (read from the typed resource).
    pub kind: Option<ActionKind>,
    /// Only actions on the page with this short name.
    pub page_name: Option<String>,
}

/// One window of a collection: the objects and the total after filters.
#[derive(Debug, Clone, PartialEq)]
pub struct Window<T> {
    pub total_count: u64,
    pub objects: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_typed_uris() {
        assert_eq!(
            parse_uri("/rest/v1/petitionpage/8651/"),
            Some(("petitionpage", 8651))
        );
        assert_eq!(parse_uri("/rest/v1/user/1"), Some(("user", 1)));
        assert_eq!(parse_uri("/rest/v1/user/"), None);
        assert_eq!(parse_uri("/rest/v1/user/abc/"), None);
        assert_eq!(parse_uri("https://x/rest/v1/user/1/"), None);
    }

    #[test]
    fn a_page_serialized_reads_back_the_same() {
        let page: Page = serde_json::from_value(serde_json::json!({
            "id": 7, "name": "save-the-bees", "title": null, "type": "LTE",
            "status": "active", "hidden": false, "url": "https://x.example/p",
            "tags": [{"name": "bees"}], "created_at": "2024-01-01T00:00:00"
        }))
        .unwrap();
        let text = serde_json::to_string(&page).unwrap();
        let back: Page = serde_json::from_str(&text).unwrap();
        assert_eq!(back, page);
        assert_eq!(back.kind, ActionKind::Lte);
        assert_eq!(back.tags[0].name, "bees");
    }

    #[test]
    fn actions_decode_relations_kinds_and_lenient_fields() {
        // `\/` makes serde_json copy a string instead of lending it: both read alike.
        let text = r#"{"id": 9, "type": "Petition", "status": null,
            "user": "\/rest\/v1\/user\/5\/", "page": "/rest/v1/petitionpage/33/",
            "signup": "", "event": null, "extra": {"ignored": [1, 2]},
            "fields": {"a": "x", "b": 3, "c": true, "d": null, "e": 1.5,
                       "f": ["r1", 2, null], "g": {"k": "v"}}}"#;
        let action: Action = serde_json::from_str(text).unwrap();
        assert_eq!((action.id, action.user, action.page), (ActionId(9), 5, 33));
        assert_eq!(action.kind, ActionKind::Petition);
        assert_eq!(
            (action.signup, action.event, action.status.as_str()),
            (None, None, "")
        );
        let one = |s: &str| FieldValue::One(s.into());
        let expected = BTreeMap::from([
            ("a".to_owned(), one("x")),
            ("b".to_owned(), one("3")),
            ("c".to_owned(), one("true")),
            ("d".to_owned(), one("")),
            ("e".to_owned(), one("1.5")),
            (
                "f".to_owned(),
                FieldValue::Many(vec!["r1".into(), "2".into(), "".into()]),
            ),
            ("g".to_owned(), one(r#"{"k":"v"}"#)),
        ]);
        assert_eq!(action.fields, expected);
        // The same through a `serde_json::Value` (owned strings), as caches read it.
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::from_value::<Action>(value).unwrap(), action);
        // Null fields are no fields; a relation that is not a URI is an error.
        let bare = r#"{"id": 1, "type": "Odd", "user": "/rest/v1/user/1/",
            "page": "/rest/v1/page/2/", "fields": null, "signup": "/rest/v1/eventsignup/4/"}"#;
        let action: Action = serde_json::from_str(bare).unwrap();
        assert!(action.fields.is_empty());
        assert_eq!(action.kind, ActionKind::Other("Odd".into()));
        assert_eq!(action.signup, Some(4));
        for bad in [
            r#""user": "/elsewhere/1/""#,
            r#""user": """#,
            r#""user": 5"#,
        ] {
            let text = bare.replace(r#""user": "/rest/v1/user/1/""#, bad);
            let e = serde_json::from_str::<Action>(&text)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("not a resource URI") || e.contains("expected a string"),
                "{e}"
            );
        }
    }

    #[test]
    fn kinds_round_trip_and_keep_unknown_names() {
        for k in ActionKind::KNOWN {
            assert_eq!(ActionKind::from_type_name(k.type_name()), k);
        }
        assert_eq!(
            ActionKind::from_type_name("Whatever"),
            ActionKind::Other("Whatever".into())
        );
        assert_eq!(ActionKind::EventSignup.resource_prefix(), "eventsignup");
    }
}
