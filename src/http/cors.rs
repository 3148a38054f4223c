//! CORS: the origins (`security.cors_origins`) allowed to call the gateway from a
//! browser. None by default, and then no CORS headers at all.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::Router;

/// The allowed origins, checked at start.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// Each origin must look like `https://app.example.org` (http or https, no path,
    /// not `*`).
    pub fn from_config(origins: &[String]) -> anyhow::Result<Cors> {
        let origins = origins
            .iter()
            .map(|o| {
                let o = o.trim().trim_end_matches('/');
                let parsed = url::Url::parse(o)
                    .map_err(|_| anyhow::anyhow!("CORS origin {o:?} is not an origin URL"))?;
                if o == "*" || !matches!(parsed.scheme(), "http" | "https") || parsed.path() != "/"
                {
                    anyhow::bail!("CORS origin {o:?} must look like https://app.example.org");
                }
                HeaderValue::from_str(o).map_err(|_| anyhow::anyhow!("CORS origin {o:?}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Cors { origins })
    }

    /// The router with the CORS layer when origins are configured; `akid_header` (the
    /// `self` member's AKID) is allowed besides the usual request headers.
    pub fn apply(&self, router: Router, akid_header: HeaderName) -> Router {
        if self.origins.is_empty() {
            return router;
        }
        router.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(self.origins.clone())
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    akid_header,
                ])
                .max_age(Duration::from_secs(600)),
        )
    }
}
