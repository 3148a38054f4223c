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
    let out = bin()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
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
    let out = bin().args(["serve"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ACTIONKIT_URL") && err.contains("--sandbox"),
        "{err}"
    );
}
