//! Logging setup: human-readable on a terminal, JSON on request; level from `RUST_LOG`.
//! Optionally, spans are also exported as OpenTelemetry traces over OTLP/HTTP
//! (protobuf) when `[telemetry] otlp_endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`) is set.

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::TelemetryConfig;

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes it.
#[must_use = "call shutdown() on exit, or spans still buffered are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans still buffered and stops the exporter. Call it with the tokio
    /// runtime still running, from outside its worker threads (the batch processor's
    /// task runs on the runtime and this waits for it).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: the trace exporter did not shut down cleanly: {e}");
            }
        }
    }
}

/// Installs the global subscriber. `json` selects JSON lines. With an OTLP endpoint in
/// `otel`, spans are exported too; this must then run inside a tokio runtime context
/// (the batch processor is a task on that runtime).
pub fn init(json: bool, otel: Option<&TelemetryConfig>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a log file or a container's log stream gets plain
    // text, and each request's span is formatted without the escape codes.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let provider = match otel {
        Some(cfg) => match cfg.otlp_endpoint.as_deref() {
            Some(endpoint) => Some(provider(endpoint, cfg)?),
            None => None,
        },
        None => None,
    };
    // The gateway's own spans down to `debug` (upstream calls), others from `info`,
    // whatever RUST_LOG says about the log lines.
    let otel_layer = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("actionkit-graphql"))
            .with_filter(
                Targets::new()
                    .with_target("actionkit_graphql", Level::DEBUG)
                    .with_default(Level::INFO),
            )
    });
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel_layer)
        .try_init()?;
    if let (Some(cfg), true) = (otel, provider.is_some()) {
        tracing::info!(
            endpoint = cfg.otlp_endpoint.as_deref().unwrap_or_default(),
            service_name = %cfg.service_name,
            sample_ratio = cfg.sample_ratio,
            "exporting traces over OTLP/HTTP"
        );
    }
    Ok(Telemetry { provider })
}

/// A client-supplied string (an operation name, a JWT subject) as log lines show it:
/// control characters (newlines, ANSI escapes) and bidirectional overrides written as
/// escapes (`\n`, `\u{1b}`), and cut after 200 characters, so that it can neither
/// start a forged log line nor repaint or reorder the real one. Log client strings
/// through it (`operation = %Untrusted(name)`).
pub struct Untrusted<'a>(pub &'a str);

/// Longest part of an untrusted string a log line shows.
const UNTRUSTED_MAX_CHARS: usize = 200;

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for (i, c) in self.0.chars().enumerate() {
            if i == UNTRUSTED_MAX_CHARS {
                return f.write_str("…");
            }
            let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// The URL spans are POSTed to: the OTLP/HTTP base URL with `/v1/traces`, as the
/// OpenTelemetry specification defines `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(endpoint.trim())
        .map_err(|e| anyhow::anyhow!("OTLP endpoint {endpoint:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        anyhow::bail!(
            "OTLP endpoint {endpoint:?} must be an http(s) URL such as http://collector:4318"
        );
    }
    Ok(format!("{}/v1/traces", url.as_str().trim_end_matches('/')))
}

fn provider(endpoint: &str, cfg: &TelemetryConfig) -> anyhow::Result<SdkTracerProvider> {
    if !(0.0..=1.0).contains(&cfg.sample_ratio) {
        anyhow::bail!(
            "[telemetry] sample_ratio must be between 0.0 and 1.0, not {}",
            cfg.sample_ratio
        );
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint)?)
        .build()?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            cfg.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::{traces_url, Untrusted};

    #[test]
    fn untrusted_strings_cannot_forge_a_line() {
        let forged = "Op\n2025-01-01T00:00:00Z  INFO admin logged in\x1b[2K\r\u{202e}";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n') && !shown.contains('\x1b') && !shown.contains('\r'));
        assert!(!shown.contains('\u{202e}'));
        assert!(shown.starts_with("Op\\n2025"), "{shown}");
        assert!(shown.contains("\\u{1b}[2K"), "{shown}");
        assert_eq!(Untrusted("Plain_Name1").to_string(), "Plain_Name1");
        let long = "x".repeat(5000);
        assert_eq!(Untrusted(&long).to_string().chars().count(), 201);
    }

    #[test]
    fn traces_go_to_v1_traces_under_the_base_url() {
        assert_eq!(
            traces_url("http://collector:4318").ok().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            traces_url("https://otel.example.org/base/").ok().as_deref(),
            Some("https://otel.example.org/base/v1/traces")
        );
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("not a url").is_err());
    }
}
