//! An in-process fake Kubernetes API server on loopback for the deploy tests: the few
//! endpoints the driver uses (discovery, server-side apply PATCH, GET, list with a label
//! selector, DELETE), with a fake controller that rolls workloads out one poll late, or never.
//!
//! Like a real API server it serves only the kinds it knows (a table of built-in ones, plus
//! custom ones a test adds with [`Fake::serve_kind`]), at their resource names and scopes:
//! a guessed plural or a namespaced path for a cluster-wide kind gets 404.
#![allow(dead_code)] // each test file uses its own subset

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use nprt::deploy::cluster::Cluster;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the fake controller treats workloads.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// Rolled out from the second read after an apply.
    Healthy,
    /// The rollout never progresses and hits its deadline.
    Stuck,
    /// Never even observes the new generation.
    Asleep,
}

pub struct Stored {
    object: Value,
    stale_reads: u32,
    deleting: bool,
}

/// A kind the fake serves.
#[derive(Clone)]
pub struct Kind {
    pub api_version: String,
    pub kind: String,
    /// The resource name in paths.
    pub plural: String,
    pub namespaced: bool,
}

/// The built-in kinds: (apiVersion, kind, resource, namespaced).
const BUILT_IN: [(&str, &str, &str, bool); 12] = [
    ("v1", "Service", "services", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "Endpoints", "endpoints", true),
    ("v1", "Namespace", "namespaces", false),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io/v1",
        "IngressClass",
        "ingressclasses",
        false,
    ),
];

pub struct State {
    pub objects: BTreeMap<String, Stored>,
    pub kinds: Vec<Kind>,
    pub log: Vec<String>,
    pub controller: Controller,
    /// Names whose fields another manager owns: apply without force gets 409.
    pub conflicts: Vec<String>,
    pub version: u64,
}

#[derive(Clone)]
pub struct Fake {
    pub state: Arc<Mutex<State>>,
    pub url: String,
}

impl Fake {
    pub fn start(controller: Controller) -> Fake {
        let state = Arc::new(Mutex::new(State {
            objects: BTreeMap::new(),
            log: Vec::new(),
            controller,
            conflicts: Vec::new(),
            version: 0,
            kinds: BUILT_IN
                .iter()
                .map(|(api_version, kind, plural, namespaced)| Kind {
                    api_version: (*api_version).to_owned(),
                    kind: (*kind).to_owned(),
                    plural: (*plural).to_owned(),
                    namespaced: *namespaced,
                })
                .collect(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::clone(&state);
        serve_http(listener, move |req| {
            let state = Arc::clone(&shared);
            async move { handle(&state, req).await }
        });
        Fake { state, url }
    }

    /// Serves one more kind, as an installed CustomResourceDefinition would.
    pub fn serve_kind(&self, api_version: &str, kind: &str, plural: &str, namespaced: bool) {
        self.state.lock().unwrap().kinds.push(Kind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
        });
    }

    pub fn client(&self) -> Cluster {
        let mut config = kube::Config::new(self.url.parse().unwrap());
        config.default_namespace = "default".into();
        let mut cluster = Cluster::new(kube::Client::try_from(config).unwrap(), "default".into());
        cluster.poll = Duration::from_millis(20);
        cluster
    }

    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn names(&self) -> Vec<String> {
        self.state.lock().unwrap().objects.keys().cloned().collect()
    }

    pub fn get(&self, key: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .objects
            .get(key)
            .map(|s| s.object.clone())
    }

    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: u, namespace: default}}\ncurrent-context: fake\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Serves HTTP/1.1 on `listener` from a thread of its own, every request answered by
/// `handler`: the fake API server, and the fake registries of other tests.
pub fn serve_http<H, F>(listener: std::net::TcpListener, handler: H)
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_on(listener, None, handler);
}

/// [`serve_http`] over TLS with `tls`: a registry with a certificate of a private CA.
pub fn serve_https<H, F>(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: H,
) where
    H: Fn(Request<hyper::body::Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    serve_on(
        listener,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))),
        handler,
    );
}

/// Serves `handler` on `listener`, over TLS when `tls` is given.
fn serve_on<H, F>(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: H,
) where
    H: Fn(Request<hyper::body::Incoming>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    listener.set_nonblocking(true).unwrap();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = Arc::clone(&handler);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let answer = handler(req);
                        async move { Ok::<_, hyper::Error>(answer.await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await
                        }
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
    });
}

fn query(req: &Request<hyper::body::Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect()
}

fn reply(code: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = code;
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn status(code: u16, reason: &str, message: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::from_u16(code).unwrap(),
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

/// `/api/v1/namespaces/NS/PLURAL[/NAME]` or `/apis/G/V/namespaces/NS/PLURAL[/NAME]` for a
/// namespaced kind, `/api/v1/PLURAL[/NAME]` or `/apis/G/V/PLURAL[/NAME]` for a cluster-wide
/// one → (collection key `NS/PLURAL` or `_cluster/PLURAL`, name); None for a resource the
/// fake does not serve (at that scope).
fn split_path(path: &str, kinds: &[Kind]) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (ns, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some((*name).to_owned())),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some((*name).to_owned())),
        _ => return None,
    };
    kinds.iter().find(|k| {
        k.api_version == api_version && k.plural == plural && k.namespaced == ns.is_some()
    })?;
    Some((format!("{}/{plural}", ns.unwrap_or("_cluster")), name))
}

/// The discovery documents: `/api`, `/apis`, `/api/v1` and `/apis/G/V`; None for other
/// paths.
fn discovery(path: &str, kinds: &[Kind]) -> Option<Response<Full<Bytes>>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group_version = match parts.as_slice() {
        ["api"] => {
            return Some(reply(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ))
        }
        ["apis"] => {
            let mut versions: Vec<&str> = kinds
                .iter()
                .map(|k| k.api_version.as_str())
                .filter(|v| v.contains('/'))
                .collect();
            versions.sort_unstable();
            versions.dedup();
            let groups: Vec<Value> = versions
                .iter()
                .map(|gv| {
                    let (group, version) = gv.split_once('/').unwrap();
                    let v = json!({"groupVersion": gv, "version": version});
                    json!({"name": group, "versions": [v], "preferredVersion": v})
                })
                .collect();
            return Some(reply(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ));
        }
        ["api", version] => (*version).to_owned(),
        ["apis", group, version] => format!("{group}/{version}"),
        _ => return None,
    };
    let mut resources = Vec::new();
    for k in kinds.iter().filter(|k| k.api_version == group_version) {
        let verbs = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        let singular = k.kind.to_ascii_lowercase();
        resources.push(json!({"name": k.plural, "singularName": singular, "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs}));
        // A subresource, which discovery must not take for the kind.
        resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
    }
    if resources.is_empty() {
        return Some(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    Some(reply(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    ))
}

fn rolled_out(object: &mut Value, controller: Controller) {
    if !matches!(object["kind"].as_str(), Some("Deployment" | "StatefulSet")) {
        return;
    }
    let generation = object["metadata"]["generation"].clone();
    let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
    object["status"] = match controller {
        Controller::Healthy => {
            json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas, "readyReplicas": replicas})
        }
        Controller::Stuck => {
            json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": 0, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet has timed out progressing."}]})
        }
        Controller::Asleep => json!({"observedGeneration": 0}),
    };
}

async fn handle(
    state: &Mutex<State>,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let q = query(&req);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut st = state.lock().unwrap();
    st.log.push(format!(
        "{method} {path}{}",
        q.get("fieldManager")
            .map(|m| format!(" fieldManager={m}"))
            .unwrap_or_default()
    ));
    if method == "GET" {
        if let Some(answer) = discovery(&path, &st.kinds) {
            return answer;
        }
    }
    let Some((collection, name)) = split_path(&path, &st.kinds) else {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    match (method.as_str(), name) {
        ("PATCH", Some(name)) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&body) else {
                return status(400, "BadRequest", "body is not JSON");
            };
            if st.conflicts.contains(&name) && q.get("force").map(String::as_str) != Some("true") {
                return status(
                    409,
                    "Conflict",
                    "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas",
                );
            }
            let key = format!("{collection}/{name}");
            st.version += 1;
            let previous = st.objects.get(&key).map(|s| s.object.clone());
            let generation = match &previous {
                Some(p)
                    if p["spec"] == object["spec"]
                        && p["metadata"]["labels"] == object["metadata"]["labels"] =>
                {
                    p["metadata"]["generation"].as_i64().unwrap_or(1)
                }
                Some(p) => p["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
                None => 1,
            };
            object["metadata"]["generation"] = json!(generation);
            object["metadata"]["resourceVersion"] = json!(st.version.to_string());
            let controller = st.controller;
            let changed = previous
                .as_ref()
                .map(|p| p["metadata"]["generation"] != json!(generation))
                .unwrap_or(true);
            let mut stored = object.clone();
            rolled_out(&mut stored, controller);
            st.objects.insert(
                key,
                Stored {
                    object: stored,
                    stale_reads: u32::from(changed),
                    deleting: false,
                },
            );
            reply(StatusCode::OK, &object)
        }
        ("GET", Some(name)) => {
            let key = format!("{collection}/{name}");
            let Some(stored) = st.objects.get_mut(&key) else {
                return status(404, "NotFound", &format!("{name} not found"));
            };
            if stored.deleting {
                // Gone after one more read, as with a finalizer-free deletion.
                let object = stored.object.clone();
                st.objects.remove(&key);
                return reply(StatusCode::OK, &object);
            }
            let mut object = stored.object.clone();
            if stored.stale_reads > 0 {
                stored.stale_reads -= 1;
                let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
                if object["status"].is_object() {
                    object["status"]["observedGeneration"] = json!(generation - 1);
                }
            }
            reply(StatusCode::OK, &object)
        }
        ("GET", None) => {
            let wanted: Vec<(String, String)> = q
                .get("labelSelector")
                .map(|s| {
                    s.split(',')
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let prefix = format!("{collection}/");
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, s)| s.object.clone())
                .filter(|o| {
                    wanted
                        .iter()
                        .all(|(k, v)| o["metadata"]["labels"][k] == json!(v))
                })
                .collect();
            reply(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": st.version.to_string()}, "items": items}),
            )
        }
        ("DELETE", Some(name)) => {
            let key = format!("{collection}/{name}");
            match st.objects.get_mut(&key) {
                Some(stored) => {
                    stored.deleting = true;
                    stored.object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
                    reply(StatusCode::OK, &stored.object.clone())
                }
                None => status(404, "NotFound", &format!("{name} not found")),
            }
        }
        _ => status(405, "MethodNotAllowed", "not supported by the fake"),
    }
}

/// Runs git in `dir` with a fixed identity; returns its trimmed stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A repository at `dir/repo` with the example app's manifests in `kubernetes/`, one
/// commit on `main`; returns the commit.
pub fn example_repo(dir: &std::path::Path) -> String {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("kubernetes")).unwrap();
    git(&repo, &["init", "--quiet", "--initial-branch=main"]);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes/example-app");
    for name in ["web.yaml", "worker.yaml", "config.yml"] {
        std::fs::copy(example.join(name), repo.join("kubernetes").join(name)).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "example"]);
    git(&repo, &["rev-parse", "HEAD"])
}

/// `nprt serve` on a free loopback port; killed when dropped. Its stderr (the log) goes to
/// a file.
pub struct Served {
    child: std::process::Child,
    pub url: String,
    log: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `nprt serve` with `config` against `fake`, its log as JSON lines in a file under `dir`.
pub fn serve(
    fake: &Fake,
    dir: &std::path::Path,
    config: &std::path::Path,
    extra: &[&str],
) -> Served {
    let log = dir.join(format!("serve-{}.log", fastrand::u32(..)));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_nprt"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .args(extra)
        .env("KUBECONFIG", fake.kubeconfig(dir))
        .env("NPRT_CACHE_DIR", dir.join("serve-cache"))
        .env("RUST_LOG", "nprt=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http"))
        .unwrap_or_else(|| {
            panic!(
                "unexpected banner {line:?}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .to_owned();
    Served { child, url, log }
}
