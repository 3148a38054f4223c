//! Configuration precedence and secrecy, through the real binary.

use std::process::Command;

use crate::helpers::command as bin;

fn write_config(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("akgql-cfg-{}-{}", std::process::id(), text.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `cmd`, which must fail; returns what it wrote to standard error.
fn failure(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn flags_override_environment_which_overrides_the_file() {
    let file = write_config("listen = \"127.0.0.1:1111\"\n[actionkit]\nurl = \"https://file.example\"\nusername = \"from-file\"\n");
    let out = |c: &mut Command| String::from_utf8(c.output().unwrap().stdout).unwrap();

    let only_file = out(bin().args(["check-config", "--config"]).arg(&file));
    assert!(
        only_file.contains("listen = \"127.0.0.1:1111\""),
        "{only_file}"
    );
    assert!(only_file.contains("username = \"from-file\""));

    let env = out(bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("GATEWAY_LISTEN", "127.0.0.1:2222")
        .env("ACTIONKIT_USERNAME", "from-env"));
    assert!(env.contains("listen = \"127.0.0.1:2222\""), "{env}");
    assert!(env.contains("username = \"from-env\""));
    assert!(env.contains("url = \"https://file.example\""));

    let flag = out(bin()
        .args(["check-config", "--listen", "127.0.0.1:3333", "--config"])
        .arg(&file)
        .env("GATEWAY_LISTEN", "127.0.0.1:2222"));
    assert!(flag.contains("listen = \"127.0.0.1:3333\""), "{flag}");
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let file = write_config("[actionkit]\nmax_inflight = 3\n");
    let err = failure(bin().args(["check-config", "--config"]).arg(&file));
    assert!(err.contains("max_inflight"), "{err}");
}

#[test]
fn secrets_are_masked() {
    let out = bin()
        .args(["check-config"])
        .env("ACTIONKIT_PASSWORD", "hunter2-secret")
        .env("ACTIONKIT_AKID_SECRET", "akid-secret-value")
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("hunter2-secret") && !all.contains("akid-secret-value"),
        "{all}"
    );
    assert!(all.contains("password = \"***\""), "{all}");
}

#[test]
fn serve_without_an_instance_stops_with_a_clear_message() {
    let err = failure(bin().args(["serve"]));
    assert!(
        err.contains("ACTIONKIT_URL") && err.contains("--sandbox"),
        "{err}"
    );
}

#[test]
fn every_setting_has_a_variable_by_one_rule() {
    // GATEWAY_<SECTION>__<KEY>: the TOML path, upper case, `__` between its parts; it
    // sits between the file and the named variables and flags.
    let file = write_config("[actionkit]\nmax_in_flight = 5\nrequest_timeout_ms = 1234\n");
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .env("GATEWAY_ACTIONKIT__MAX_IN_FLIGHT", "3")
        .env(
            "GATEWAY_SECURITY__TRUSTED_DOCUMENTS__RELOAD_INTERVAL_MS",
            "77",
        )
        .env("GATEWAY_SECURITY__CORS_ORIGINS", "[\"https://a.example\"]")
        .env("GATEWAY_SECURITY__API_KEYS", "[\"web:read:0123abcd\"]")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("max_in_flight = 3"), "{text}");
    assert!(text.contains("request_timeout_ms = 1234"), "{text}");
    assert!(text.contains("reload_interval_ms = 77"), "{text}");
    assert!(
        text.contains("cors_origins = [\"https://a.example\"]"),
        "{text}"
    );
    // Keys are printed with name and scopes only, whichever way they came.
    assert!(text.contains("api_keys = [\"web:read:***\"]"), "{text}");
    assert!(!text.contains("0123abcd"), "{text}");

    let err = failure(
        bin()
            .args(["check-config"])
            .env("GATEWAY_ACTIONKIT__MAX_INFLIGHT", "3"),
    );
    assert!(
        err.contains("max_inflight") || err.contains("MAX_INFLIGHT"),
        "{err}"
    );
}
