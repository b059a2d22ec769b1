//! The deploy API over HTTP on loopback: authentication, scoping per service, one operation
//! per service at a time, bad parameters, the Alertmanager webhook, metrics.

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use nprt::deploy::api::{serve, Api, ApiLimits};
use nprt::deploy::cluster::Cluster;
use nprt::deploy::ops::{ClusterAccess, Settings};
use nprt::deploy::DeployConfig;
use std::sync::Arc;
use std::time::Duration;

const TOKEN_A: &str = "token-for-a-0123456789";
const TOKEN_B: &str = "token-for-b-9876543210";

struct Server {
    url: String,
    api: Arc<Api>,
    _dir: tempfile::TempDir,
}

/// The API with the failure limit off: these tests fail authentication from one address on
/// purpose many times; the limit has its own test (tests/deploy_client.rs).
async fn start() -> Server {
    start_with(ApiLimits {
        auth_failures: 0,
        ..ApiLimits::default()
    })
    .await
}

async fn start_with(limits: ApiLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.token"), format!("{TOKEN_A}\n")).unwrap();
    std::fs::write(dir.path().join("b.token"), TOKEN_B).unwrap();
    let text = "[services.a]\nrepository = \"/nonexistent/a\"\napi_token_file = \"a.token\"\n[services.b]\nrepository = \"/nonexistent/b\"\napi_token_file = \"b.token\"\n";
    let config = DeployConfig::parse(text, "deploy.toml", dir.path()).unwrap();
    // A cluster where nothing listens: operations that get that far fail as runtime errors.
    let mut kube = kube::Config::new(common::closed_port_url().parse().unwrap());
    kube.connect_timeout = Some(Duration::from_secs(2));
    let cluster = Cluster::new(kube::Client::try_from(kube).unwrap(), "default".into());
    let settings = Settings {
        cache: dir.path().join("cache"),
        config_file: dir.path().join("deploy.toml"),
        timeout: Duration::from_secs(5),
        force: false,
        skip_image_check: true,
    };
    let api = Arc::new(
        Api::new(config, ClusterAccess::Connected(cluster), settings)
            .unwrap()
            .with_limits(limits),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        Arc::clone(&api),
        None,
        std::future::pending(),
    ));
    Server {
        url,
        api,
        _dir: dir,
    }
}

async fn call(method: &str, url: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_scoping() {
    let s = start().await;
    let (code, _) = call("GET", &format!("{}/healthz", s.url), None, "").await;
    assert_eq!(code, 200, "healthz needs no token");

    for auth in [
        None,
        Some(bearer("wrong").as_str()),
        Some("Bearer "),
        Some("Digest x"),
    ] {
        for route in ["/", "/version", "/metrics", "/a", "/a/tags"] {
            let (code, body) = call("GET", &format!("{}{route}", s.url), auth, "").await;
            assert_eq!(code, 401, "{route} {auth:?}: {body}");
        }
        let (code, _) = call("DELETE", &format!("{}/a/canary", s.url), auth, "").await;
        assert_eq!(code, 401);
    }
    let (code, body) = call("GET", &format!("{}/", s.url), Some(&bearer(TOKEN_A)), "").await;
    assert_eq!(code, 200);
    assert_eq!(body.trim(), r#"{"services":["a","b"]}"#);
    // Basic auth with the token as password.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("ci:{TOKEN_B}")
        )
    );
    let (code, body) = call("GET", &format!("{}/version", s.url), Some(&basic), "").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(env!("CARGO_PKG_VERSION")));

    // A's token does not open B.
    let (code, body) = call(
        "PUT",
        &format!("{}/b/canary", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not for service `b`"), "{body}");
    let (code, _) = call(
        "DELETE",
        &format!("{}/b/canary", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 403);
    let (code, _) = call(
        "GET",
        &format!("{}/nope", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 404);

    let (code, body) = call(
        "GET",
        &format!("{}/metrics", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.contains("nprt_api_requests_total{route=\"unauthorized\",code=\"401\"}"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_acts_on_another_service() {
    let s = start().await;
    let basic_b = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("a:{TOKEN_B}")
        )
    );
    let firing = r#"{"status":"firing","alerts":[]}"#;
    // Every route of service a, its unknown neighbours, and spellings of the same path.
    let routes = [
        ("GET", "/a", ""),
        ("GET", "/a/tags", ""),
        ("GET", "/a/config", ""),
        ("PUT", "/a/deploy", ""),
        (
            "PUT",
            "/a/deploy?commit=main&tag=v1&skip_image_check=true",
            "",
        ),
        ("PUT", "/a/canary", ""),
        ("PUT", "/a/canary?exposure=shared", ""),
        ("DELETE", "/a/canary", ""),
        ("DELETE", "/a/canary", firing),
        ("POST", "/a/promote", ""),
        ("GET", "/a/canary", ""),
        ("PATCH", "/a/deploy", ""),
        ("GET", "/a/nope", ""),
        ("PUT", "//a/canary", ""),
        ("PUT", "/a/canary/", ""),
        ("PUT", "/a//canary", ""),
        ("DELETE", "/a/canary?x=1", ""),
    ];
    for auth in [bearer(TOKEN_B), basic_b] {
        for (method, route, body) in routes {
            let (code, answer) =
                call(method, &format!("{}{route}", s.url), Some(&auth), body).await;
            assert_eq!(code, 403, "{method} {route}: {answer}");
            assert!(answer.contains("not for service `a`"), "{answer}");
            assert!(!answer.contains(TOKEN_A) && !answer.contains(TOKEN_B));
        }
    }
    // Nothing ran: no operation was counted with any other answer.
    let (_, metrics) = call(
        "GET",
        &format!("{}/metrics", s.url),
        Some(&bearer(TOKEN_B)),
        "",
    )
    .await;
    for line in metrics.lines().filter(|l| l.contains("/SERVICE/")) {
        assert!(line.contains("code=\"403\""), "{line}");
    }
    // And A's own token does reach A (here: 502, the cluster is unreachable).
    let (code, _) = call(
        "DELETE",
        &format!("{}/a/canary", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_with_a_message() {
    let s = start().await;
    let auth = bearer(TOKEN_A);
    for (query, message) in [
        ("colour=red", "unknown parameter `colour`"),
        ("tag=a%20b", "not a valid image tag"),
        ("exposure=public", "unknown exposure `public`"),
        ("commit=%zz", "bad %-escape"),
        ("with_baseline=true", "only a canary gets a baseline"),
    ] {
        let (code, body) = call(
            "PUT",
            &format!("{}/a/deploy?{query}", s.url),
            Some(&auth),
            "",
        )
        .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body.contains(message), "{query}: {body}");
    }
    for (query, message) in [
        (
            "with_baseline=maybe",
            "with_baseline=`maybe`: use true or false",
        ),
        (
            "baseline_commit=abc",
            "baseline_commit (--baseline-commit) needs with_baseline",
        ),
        (
            "with_baseline=1&baseline_tag=a%20b",
            "baseline_tag `a b` is not a valid image tag",
        ),
    ] {
        let (code, body) = call(
            "PUT",
            &format!("{}/a/canary?{query}", s.url),
            Some(&auth),
            "",
        )
        .await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(body.contains(message), "{query}: {body}");
    }
    let (code, body) = call(
        "PUT",
        &format!("{}/a/canary?with_baseline=true", s.url),
        Some(&auth),
        "",
    )
    .await;
    assert_eq!(code, 502, "accepted, then git fails: {body}");
    let (code, body) = call("PUT", &format!("{}/a/canary", s.url), Some(&auth), "").await;
    assert_eq!(
        code, 502,
        "git cannot clone /nonexistent/a: a runtime failure: {body}"
    );
    let (code, body) = call(
        "DELETE",
        &format!("{}/a/canary", s.url),
        Some(&auth),
        "not json",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = call("POST", &format!("{}/a/promote?x=1", s.url), Some(&auth), "").await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operation_per_service() {
    let s = start().await;
    let auth = bearer(TOKEN_A);
    let busy = s.api.try_begin("a").unwrap();
    for (method, route) in [
        ("PUT", "/a/canary"),
        ("PUT", "/a/deploy"),
        ("DELETE", "/a/canary"),
        ("POST", "/a/promote"),
    ] {
        let (code, body) = call(method, &format!("{}{route}", s.url), Some(&auth), "").await;
        assert_eq!(code, 409, "{method} {route}: {body}");
        assert!(body.contains("an operation on `a` is running"), "{body}");
    }
    // Another service is not blocked.
    let (code, _) = call(
        "DELETE",
        &format!("{}/b/canary", s.url),
        Some(&bearer(TOKEN_B)),
        "",
    )
    .await;
    assert_ne!(code, 409);
    drop(busy);
    let (code, _) = call("PUT", &format!("{}/a/canary", s.url), Some(&auth), "").await;
    assert_ne!(code, 409, "free again once the operation ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook() {
    let s = start().await;
    let auth = bearer(TOKEN_A);
    let resolved = r#"{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"alertname":"CanaryErrors"}}]}"#;
    let (code, body) = call(
        "DELETE",
        &format!("{}/a/canary", s.url),
        Some(&auth),
        resolved,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("resolved alert"), "{body}");
    // A firing alert rolls back: here the cluster is unreachable, which is a 502.
    let firing = resolved.replace("resolved", "firing");
    let (code, body) = call(
        "DELETE",
        &format!("{}/a/canary", s.url),
        Some(&auth),
        &firing,
    )
    .await;
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("cannot reach the cluster"), "{body}");
}

#[test]
fn serve_refuses_services_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deploy.toml");
    std::fs::write(&config, "[services.a]\nrepository = \"/x\"\n").unwrap();
    let out = common::run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = common::stderr(&out);
    assert!(
        err.contains("services.a: set api_token_env or api_token_file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_still_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = start_with(ApiLimits {
        header_timeout: Duration::from_millis(300),
        ..ApiLimits::default()
    })
    .await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    // A head that never ends, and a body that never comes.
    let mut idle = Vec::new();
    for request in [
        "GET / HTTP/1.1\r\nHost: x\r\n".to_owned(),
        format!("DELETE /a/canary HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN_A}\r\nContent-Length: 100\r\n\r\n{{"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        idle.push(stream);
    }
    let (code, _) = call(
        "GET",
        &format!("{}/version", s.url),
        Some(&bearer(TOKEN_A)),
        "",
    )
    .await;
    assert_eq!(code, 200, "others are served meanwhile");
    let mut answers = Vec::new();
    for mut stream in idle {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes a slow connection")
            .unwrap();
        answers.push(String::from_utf8_lossy(&answer).into_owned());
    }
    assert!(
        !answers[0].contains("200 OK"),
        "an unfinished head is never answered: {}",
        answers[0]
    );
    assert!(answers[1].starts_with("HTTP/1.1 408"), "{}", answers[1]);
}
