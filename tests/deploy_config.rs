//! `deploy.toml` through the real binary: good files list their services, bad ones exit 2
//! naming the file and the field.

mod common;

use common::{run, stderr, stdout};

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("deploy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn ls_lists_services() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[services.shop]\nrepository = \"https://git.example/shop.git\"\nnamespace = \"prod\"\n\n[services.cart]\nrepository = \"/srv/cart\"\nexposure = \"shared\"\n",
    );
    let out = run(&["ls", "--config", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("cart\t/srv/cart\tmain\tkubernetes/"),
        "{text}"
    );
    assert!(
        lines[1].contains("namespace=prod\texposure=shadow"),
        "{text}"
    );
}

#[test]
fn bad_config_exits_2_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[services.shop]\nrepository = \"r\"\n[services.shop.registry]\nusername = \"u\"\npassword = \"hunter2\"\n",
    );
    let out = run(&["ls", "--config", &file]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{file}: services.shop.registry.password: inline secrets are not allowed"
        )),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let file = write(&dir, "[services.shop]\nrepository = \"r\"\nexposure = 3\n");
    let out = run(&["ls", "--config", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{file}: services.shop.exposure:")),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn missing_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml").display().to_string();
    let out = run(&["ls", "--config", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("{missing}: cannot read")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn show_names_secrets_by_reference_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "[services.shop]\nrepository = \"https://git.example/shop.git\"\napi_token_env = \"SHOP_TOKEN\"\n[services.shop.registry]\nusername = \"robot\"\npassword_file = \"/run/secrets/registry\"\n",
    );
    let out = nprt_with_env(&["show", "shop", "--config", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["api_token"], "env SHOP_TOKEN");
    assert_eq!(v["registry_password"], "file /run/secrets/registry");
    assert_eq!(v["exposure"], "shadow");
    assert!(!stdout(&out).contains("sekrit"));
    let out = run(&["show", "nope", "--config", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no service `nope` (services: shop)"));
}

fn nprt_with_env(args: &[&str]) -> std::process::Output {
    // The token's value must never be printed, even when it is set.
    common::nprt()
        .args(args)
        .env("SHOP_TOKEN", "sekrit")
        .output()
        .unwrap()
}
