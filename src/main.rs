//! The `actionkit-graphql` binary: parse the command line and run.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use secrecy::SecretString;
use tokio::net::TcpListener;

use actionkit_graphql::actionkit::Error as UpstreamError;
use actionkit_graphql::app::{self, Upstream};
use actionkit_graphql::cli::{Cli, Command, SandboxArgs, ServeArgs};
use actionkit_graphql::config::{Config, Mode};
use actionkit_graphql::{graphql, sandbox, telemetry};

/// How long operations in flight may run after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(25);
/// How long the outbox's deliveries in flight may run after the server stopped.
const OUTBOX_GRACE: std::time::Duration = std::time::Duration::from_secs(4);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::PrintSchema = cli.command {
        print!("{}", graphql::sdl());
        return ExitCode::SUCCESS;
    }
    match &cli.command {
        Command::HashKey { generate } => return hash_key(*generate),
        Command::TrustedDocuments { out, paths } => {
            return trusted_documents(out.as_deref(), paths)
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `serve` reads its configuration before logging starts: the configuration says
    // whether spans are also exported over OTLP.
    let mut serve_config = None;
    if let Command::Serve(args) = &cli.command {
        match effective_config(cli.config.as_deref(), args) {
            Ok(config) => serve_config = Some(config),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let telemetry = {
        // The OTLP batch processor is a task on this runtime.
        let _runtime = runtime.enter();
        let otel = serve_config.as_ref().map(|c| &c.telemetry);
        match telemetry::init(cli.log_json, otel) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: telemetry: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => match serve_config {
                Some(config) => serve(config, args).await,
                None => bail!("the configuration was not loaded"),
            },
            Command::Sandbox(args) => run_sandbox(args).await,
            Command::Healthcheck { url } => healthcheck(&url).await,
            Command::CheckConfig(args) => check_config(cli.config, args),
            Command::PrintSchema | Command::HashKey { .. } | Command::TrustedDocuments { .. } => {
                Ok(())
            }
        }
    });
    // After the graceful shutdown, with the runtime still up: export what is buffered.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn hash_key(generate: bool) -> ExitCode {
    use actionkit_graphql::http::auth;
    if generate {
        let key = auth::generate_key();
        println!("key:  {key}\nhash: {}", auth::hash_key(&key));
        eprintln!(
            "Give the key to the client; put only the hash in GATEWAY_API_KEYS (name:scopes:hash)."
        );
        return ExitCode::SUCCESS;
    }
    let mut key = String::new();
    if std::io::stdin().read_line(&mut key).is_err() || key.trim().is_empty() {
        eprintln!(
            "error: give the key on stdin (e.g. `printf %s \"$KEY\" | actionkit-graphql hash-key`)"
        );
        return ExitCode::FAILURE;
    }
    println!("{}", auth::hash_key(&key));
    ExitCode::SUCCESS
}

fn trusted_documents(out: Option<&std::path::Path>, paths: &[std::path::PathBuf]) -> ExitCode {
    let result = actionkit_graphql::http::trusted::build_manifest(paths).and_then(|m| {
        let json = serde_json::to_string_pretty(&m)?;
        match out {
            Some(path) => {
                // Written whole then renamed, so that a gateway reloading it never
                // reads half a file.
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, json + "\n")?;
                std::fs::rename(&tmp, path)?;
                eprintln!(
                    "{} trusted documents written to {}",
                    m.len(),
                    path.display()
                );
            }
            None => println!("{json}"),
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: no new connections; finishing operations in flight");
}

async fn healthcheck(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(3))
        .build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .context("the gateway does not answer")?;
    if !resp.status().is_success() {
        bail!("the gateway answered HTTP {}", resp.status());
    }
    Ok(())
}

async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let handle = sandbox::spawn(args.config.clone(), listener).await?;
    tracing::info!(
        "sandbox (ActionKit emulator) at http://{}/rest/v1/ — username {:?}, password {:?}",
        handle.addr,
        args.config.username,
        args.config.password
    );
    shutdown_signal().await;
    Ok(())
}

/// The file's configuration with the environment and flags laid over it.
fn effective_config(
    config_path: Option<&std::path::Path>,
    args: &ServeArgs,
) -> anyhow::Result<Config> {
    let mut config = match config_path {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    args.apply(&mut config);
    Ok(config)
}

fn check_config(config_path: Option<std::path::PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let config = effective_config(config_path.as_deref(), &args)?;
    print!("{}", config.to_masked_toml());
    Ok(())
}

async fn serve(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let mode = config.mode.unwrap_or(if args.sandbox {
        Mode::Development
    } else {
        Mode::Production
    });

    // The embedded sandbox serves for as long as its handle lives.
    let mut _sandbox = None;
    let upstream = if args.sandbox {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sb = args.sandbox_config.clone();
        let handle = sandbox::spawn(sb.clone(), listener).await?;
        tracing::info!(
            "embedded sandbox at http://{}/rest/v1/ (username {:?}, password {:?}, {} users)",
            handle.addr,
            sb.username,
            sb.password,
            sb.users
        );
        let url = url::Url::parse(&format!("http://{}", handle.addr))?;
        _sandbox = Some(handle);
        // The embedded sandbox's port changes at every start; its store is the sandbox's.
        config.outbox.upstream_name = Some("sandbox".into());
        Upstream {
            url,
            username: sb.username.clone(),
            password: SecretString::from(sb.password.clone()),
            // The gateway verifies the sandbox's AKIDs locally, with the sandbox's secret,
            // as it would with a real instance's.
            akid_secret: Some(SecretString::from(sb.akid_secret.clone())),
        }
    } else {
        let ak = &config.actionkit;
        let missing: Vec<&str> = [
            ("ACTIONKIT_URL", ak.url.is_none()),
            ("ACTIONKIT_USERNAME", ak.username.is_none()),
            ("ACTIONKIT_PASSWORD", ak.password.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            bail!(
                "to serve against ActionKit, set {} (or use `serve --sandbox` to try the gateway on demo data)",
                missing.join(", ")
            );
        }
        let raw_url = ak.url.clone().unwrap_or_default();
        let url = url::Url::parse(&raw_url)
            .with_context(|| format!("ACTIONKIT_URL {raw_url:?} is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            bail!("ACTIONKIT_URL must be an http(s) URL such as https://act.example.org");
        }
        Upstream {
            url,
            username: ak.username.clone().unwrap_or_default(),
            password: ak
                .password
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            akid_secret: ak.akid_secret.clone(),
        }
    };

    // Before anything reaches ActionKit: no client authentication, no start.
    actionkit_graphql::http::auth::startup_check(&config.security, args.sandbox)
        .map_err(anyhow::Error::msg)?;
    // Development mode on the sandbox: a `submit` key for the example petition page,
    // made for this process only and limited to the demo page.
    let demo_key = (args.sandbox && mode == Mode::Development).then(|| {
        use actionkit_graphql::http::{auth, examples};
        let key = auth::generate_key();
        config.security.demo_keys.push(format!(
            "{}:submit:{}:{}",
            examples::DEMO_KEY_NAME,
            auth::hash_key(&key),
            examples::DEMO_PAGE
        ));
        key
    });
    let client_config = app::client_config(&config, upstream);
    let mut state = app::build_state(&config, client_config, mode).await?;
    if let Some(key) = &demo_key {
        use actionkit_graphql::http::examples;
        state.examples = Some(std::sync::Arc::new(examples::PetitionExample::new(
            key,
            examples::DEMO_PAGE,
            examples::DEMO_PAGE_TITLE,
        )));
    }
    let outbox = state.outbox.clone();
    if let Some(dir) = &config.outbox.data_dir {
        tracing::info!(
            data_dir = %dir.display(),
            queued = outbox.as_ref().map(|o| o.queue_depth()),
            "submission store open"
        );
    }
    match state.client.check_credentials().await {
        Ok(()) => {}
        Err(UpstreamError::Unauthorized) => {
            bail!("ActionKit refused ACTIONKIT_USERNAME/ACTIONKIT_PASSWORD (HTTP 401); check the staff account and its API permissions")
        }
        // Busy, not wrong: a gateway that restarts with a backlog of submissions (its
        // worker starts with the outbox) may find ActionKit at its limit. Refusing to
        // start would keep the backlog from draining.
        Err(UpstreamError::RateLimited) => tracing::warn!(
            "ActionKit answers 429 (at its concurrency limit); starting without checking the credential"
        ),
        Err(e) => bail!("cannot reach ActionKit: {e}"),
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        ?mode,
        "gateway listening: GraphiQL at http://{addr}/ , GraphQL at http://{addr}/graphql"
    );
    if let Some(key) = &demo_key {
        tracing::info!(
            "example petition form at http://{addr}/examples/petition ; its demo `submit` key \
             (this process only, page {:?}): {key}",
            actionkit_graphql::http::examples::DEMO_PAGE
        );
    }
    // On SIGTERM/SIGINT: stop accepting, let operations in flight finish, but no longer
    // than the grace period (kept under Kubernetes' default 30 s).
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    let server = app::serve(state, listener, signal);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        _ = async {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("operations still in flight after {SHUTDOWN_GRACE:?}; exiting");
        }
    }
    // The outbox's worker finishes the deliveries in progress; what is queued stays
    // stored for the next start.
    if let Some(outbox) = outbox {
        if tokio::time::timeout(OUTBOX_GRACE, outbox.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("deliveries still in flight after {OUTBOX_GRACE:?}; exiting (they are looked up at the next start)");
        }
    }
    tracing::info!("stopped");
    Ok(())
}
