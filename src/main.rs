//! The `actionkit-graphql` binary: parse the command line and run.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Parser;
use tokio::net::TcpListener;

use actionkit_graphql::app;
use actionkit_graphql::cli::{Cli, Command, SandboxArgs, ServeArgs};
use actionkit_graphql::config::Config;
use actionkit_graphql::{graphql, sandbox, telemetry};

/// jemalloc, not the system allocator: a query allocates and frees a few hundred small
/// blocks, and glibc's malloc took about a fifth of the gateway's CPU per query (see
/// BENCHMARKS.md, issue 18). Its options are set in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
                Some(config) => {
                    let sandbox = args.sandbox.then_some(args.sandbox_config);
                    app::run(config, sandbox, shutdown_signal()).await
                }
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
    let mut config = Config::load(config_path)?;
    args.apply(&mut config);
    Ok(config)
}

fn check_config(config_path: Option<std::path::PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let config = effective_config(config_path.as_deref(), &args)?;
    print!("{}", config.to_masked_toml());
    Ok(())
}
