//! ActionKit's collection envelope (`{"meta": {...}, "objects": [...]}`), public so that
//! tests can check recorded responses against the same parser the client uses.

use serde::Deserialize;

use super::error::Error;
use super::transport;

/// One page of a collection (`GET /rest/v1/<resource>/?...`).
#[derive(Debug, Clone, Deserialize)]
pub struct Collection<T> {
    #[serde(default)]
    pub meta: Meta,
    pub objects: Vec<T>,
}

/// The `meta` of a collection page. Every key is optional so that an instance that
/// leaves one out still decodes; the client then falls back to following `next`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Meta {
    /// Effective page size.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Relative path of the next page (`/rest/v1/page/?_offset=20&_limit=20`), `null`
    /// on the last page.
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default)]
    pub previous: Option<String>,
    /// Matching rows after filters.
    #[serde(default)]
    pub total_count: Option<u64>,
}

/// Decodes one collection page; an error names the JSON path (`objects[3].page`).
pub fn decode_collection<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<Collection<T>, Error> {
    transport::decode(body)
}

/// Decodes one object; an error names the JSON path.
pub fn decode_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    transport::decode(body)
}

/// A `next` link with its `_offset` value cut out, so that the offsets of later pages
/// can be put in while every other byte of the link stays as ActionKit sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetTemplate {
    before: String,
    after: String,
}

impl OffsetTemplate {
    /// `None` when the link has no `_offset=<digits>` parameter.
    pub(crate) fn parse(link: &str) -> Option<OffsetTemplate> {
        let q = link.find('?')?;
        let mut start = q + 1;
        for part in link[q + 1..].split('&') {
            if let Some(value) = part.strip_prefix("_offset=") {
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                    let value_start = start + "_offset=".len();
                    return Some(OffsetTemplate {
                        before: link[..value_start].to_owned(),
                        after: link[value_start + value.len()..].to_owned(),
                    });
                }
            }
            start += part.len() + 1;
        }
        None
    }

    pub(crate) fn with_offset(&self, offset: u64) -> String {
        format!("{}{}{}", self.before, offset, self.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_template_keeps_everything_else() {
        let t = OffsetTemplate::parse("/rest/v1/action/?_offset=100&_limit=100&user__in=1%2C2")
            .unwrap();
        assert_eq!(
            t.with_offset(300),
            "/rest/v1/action/?_offset=300&_limit=100&user__in=1%2C2"
        );
        let t = OffsetTemplate::parse("/rest/v1/action/?user=3&_limit=20&_offset=20").unwrap();
        assert_eq!(
            t.with_offset(40),
            "/rest/v1/action/?user=3&_limit=20&_offset=40"
        );
        assert_eq!(OffsetTemplate::parse("/rest/v1/action/?x_offset=3"), None);
        assert_eq!(OffsetTemplate::parse("/rest/v1/action/"), None);
    }

    #[test]
    fn meta_keys_are_optional() {
        let c: Collection<serde_json::Value> = decode_collection(br#"{"objects": []}"#).unwrap();
        assert_eq!(c.meta, Meta::default());
    }
}
