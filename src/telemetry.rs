//! Logging setup: human-readable on a terminal, JSON on request; level from `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `json` selects JSON lines.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
