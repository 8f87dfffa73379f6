//! Authenticated metrics against a fake API server (tower-test): the pure decisions on the reviews,
//! the cache, and the real HTTPS endpoint that serves `/metrics` only to callers allowed to
//! `get /metrics` (no token → 401, TokenReview unauthenticated → 401, SubjectAccessReview denied
//! → 403, allowed → 200), with a self-signed certificate or one from a directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use http::{Request, Response};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewStatus, UserInfo};
use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewStatus};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use skewguard::shell::http::{MetricsServerError, MetricsServing, start_metrics};
use skewguard::shell::metrics::Metrics;
use skewguard::shell::metrics_auth::{
    ALLOWED_TTL, Authorizer, Cache, Caller, DENIED_TTL, REVIEW_BURST, ReviewBudget, Verdict,
    access_review, bearer_token, caller_of, digest, verdict_of,
};
use skewguard::shell::tls::{self, TlsError};
use tokio::sync::oneshot;

mod https_client;
use https_client::https_get;

/// Tokens the fake API server knows: `reader` may get /metrics, `stranger` may not, anything else
/// is not a token it issued; `broken` makes the TokenReview fail as if RBAC were missing.
#[derive(Clone, Default)]
struct FakeApi {
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

const READER: &str = "system:serviceaccount:monitoring:prometheus-k8s";
const STRANGER: &str = "system:serviceaccount:petclinic:default";

impl FakeApi {
    fn start() -> (Client, FakeApi) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApi::default();
        let seen = fake.requests.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let path = parts.uri.path().to_string();
                seen.lock().unwrap().push((path.clone(), body.clone()));
                let (code, reply) = answer(&path, body);
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                respond.send_response(response);
            }
        });
        (Client::new(service, "default"), fake)
    }

    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn body_of(&self, path_part: &str) -> Value {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .find(|(p, _)| p.contains(path_part))
            .map(|(_, b)| b.clone())
            .unwrap_or(Value::Null)
    }
}

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

fn answer(path: &str, mut body: Value) -> (u16, Value) {
    if path == TOKEN_REVIEWS {
        let user = match body["spec"]["token"].as_str() {
            Some("broken") => {
                return (
                    403,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                           "reason": "Forbidden", "message": "tokenreviews.authentication.k8s.io is forbidden"}),
                );
            }
            Some("reader") => Some(READER),
            Some("stranger") => Some(STRANGER),
            _ => None,
        };
        body["status"] = match user {
            Some(u) => json!({"authenticated": true, "user": {"username": u, "uid": "u-1",
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "extra": {"authentication.kubernetes.io/pod-name": ["prometheus-0"]}}}),
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        return (201, body);
    }
    if path == ACCESS_REVIEWS {
        let allowed = body["spec"]["user"] == READER
            && body["spec"]["nonResourceAttributes"] == json!({"path": "/metrics", "verb": "get"});
        body["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed by ClusterRoleBinding \"skewguard-metrics-reader\""})
        } else {
            json!({"allowed": false})
        };
        return (201, body);
    }
    (404, json!({"kind": "Status", "code": 404}))
}

fn header(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).unwrap()
}

// ---- the pure decisions ----

#[test]
fn only_a_bearer_token_is_a_credential() {
    assert_eq!(bearer_token(Some(&header("Bearer abc"))), Ok("abc"));
    assert_eq!(bearer_token(Some(&header("bearer  abc "))), Ok("abc"));
    for refused in [
        None,
        Some(header("Basic YTpi")),
        Some(header("Bearer ")),
        Some(header("abc")),
    ] {
        let v = bearer_token(refused.as_ref()).unwrap_err();
        assert_eq!(v.status(), StatusCode::UNAUTHORIZED, "{refused:?}: {v:?}");
    }
}

fn token_review(status: Value) -> TokenReview {
    serde_json::from_value(json!({"spec": {}, "status": status})).unwrap()
}

#[test]
fn the_token_review_decides_who_calls() {
    let refused = caller_of(&token_review(
        json!({"authenticated": false, "error": "expired"}),
    ));
    assert_eq!(
        refused,
        Err(Verdict::Unauthenticated {
            reason: "expired".into()
        })
    );
    assert!(
        caller_of(&TokenReview::default()).is_err(),
        "no status: not authenticated"
    );
    let nobody = token_review(json!({"authenticated": true, "user": {}}));
    assert!(caller_of(&nobody).is_err(), "authenticated as no one");

    let review = TokenReview {
        status: Some(TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo {
                username: Some(READER.into()),
                uid: Some("u-1".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let caller = caller_of(&review).unwrap();
    assert_eq!(caller.username, READER);
    // The access review asks exactly for get /metrics as that user.
    let sar = serde_json::to_value(access_review(&caller)).unwrap();
    assert_eq!(
        sar["spec"],
        json!({"user": READER, "uid": "u-1", "groups": ["system:serviceaccounts"],
               "nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
    );
}

#[test]
fn only_an_allowing_access_review_allows() {
    let caller = Caller {
        username: READER.into(),
        ..Default::default()
    };
    let review = |status: SubjectAccessReviewStatus| SubjectAccessReview {
        status: Some(status),
        ..Default::default()
    };
    let allowed = SubjectAccessReviewStatus {
        allowed: true,
        ..Default::default()
    };
    assert_eq!(
        verdict_of(&caller, &review(allowed.clone())),
        Verdict::Allowed {
            username: READER.into()
        }
    );
    let denied_too = SubjectAccessReviewStatus {
        denied: Some(true),
        ..allowed
    };
    assert_eq!(verdict_of(&caller, &review(denied_too)).status(), 403);
    let error_only = SubjectAccessReviewStatus {
        evaluation_error: Some("webhook timed out".into()),
        ..Default::default()
    };
    let v = verdict_of(&caller, &review(error_only));
    assert_eq!(v.status(), 403);
    assert!(v.message().contains("webhook timed out"), "{}", v.message());
    assert_eq!(
        verdict_of(&caller, &SubjectAccessReview::default()).status(),
        403
    );
}

// ---- the authorizer against the fake API server ----

#[tokio::test]
async fn the_authorizer_asks_the_api_server_and_caches_briefly() {
    tokio::time::pause();
    let (client, fake) = FakeApi::start();
    let auth = Authorizer::new(client);

    assert_eq!(auth.authorize(None).await.unwrap().status(), 401);
    assert!(fake.paths().is_empty(), "no token, no review");

    let reader = header("Bearer reader");
    assert_eq!(auth.authorize(Some(&reader)).await.unwrap().status(), 200);
    assert_eq!(fake.paths(), [TOKEN_REVIEWS, ACCESS_REVIEWS]);
    assert_eq!(fake.body_of(TOKEN_REVIEWS)["spec"]["token"], "reader");
    assert_eq!(
        fake.body_of(ACCESS_REVIEWS)["spec"]["extra"],
        json!({"authentication.kubernetes.io/pod-name": ["prometheus-0"]})
    );
    // Within the TTL the verdict comes from the cache.
    tokio::time::advance(ALLOWED_TTL - Duration::from_secs(1)).await;
    assert_eq!(auth.authorize(Some(&reader)).await.unwrap().status(), 200);
    assert_eq!(fake.paths().len(), 2);
    // After it, the API server is asked again.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(auth.authorize(Some(&reader)).await.unwrap().status(), 200);
    assert_eq!(fake.paths().len(), 4);

    // Refusals are cached for less time.
    let stranger = header("Bearer stranger");
    assert_eq!(auth.authorize(Some(&stranger)).await.unwrap().status(), 403);
    assert_eq!(auth.authorize(Some(&stranger)).await.unwrap().status(), 403);
    assert_eq!(fake.paths().len(), 6);
    tokio::time::advance(DENIED_TTL + Duration::from_secs(1)).await;
    assert_eq!(auth.authorize(Some(&stranger)).await.unwrap().status(), 403);
    assert_eq!(fake.paths().len(), 8);

    // An unknown token: only the TokenReview.
    let forged = header("Bearer forged");
    assert_eq!(auth.authorize(Some(&forged)).await.unwrap().status(), 401);
    assert_eq!(fake.paths().len(), 9);

    // The review itself fails: an error, and nothing cached.
    let broken = header("Bearer broken");
    assert!(auth.authorize(Some(&broken)).await.is_err());
    assert!(auth.authorize(Some(&broken)).await.is_err());
    assert_eq!(fake.paths().len(), 11);
}

#[test]
fn a_full_cache_drops_its_least_recently_used_verdict_only() {
    let now = tokio::time::Instant::now();
    let allowed = Verdict::Allowed {
        username: READER.into(),
    };
    let mut cache = Cache::new(2);
    cache.put(digest("prometheus"), allowed.clone(), now);
    cache.put(digest("b"), allowed.clone(), now);
    // Prometheus scrapes again: it is the most recent; a flood of new tokens evicts the others.
    assert!(cache.get(&digest("prometheus"), now).is_some());
    for flood in ["c", "d", "e"] {
        cache.put(digest(flood), allowed.clone(), now);
        assert!(cache.get(&digest("prometheus"), now).is_some(), "{flood}");
    }
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&digest("b"), now).is_none());
    // A throttled answer is never cached.
    cache.put(digest("f"), Verdict::Throttled, now);
    assert!(cache.get(&digest("f"), now).is_none());
}

#[test]
fn the_review_budget_refills_at_its_rate() {
    let now = tokio::time::Instant::now();
    let mut budget = ReviewBudget::new(5.0, 10.0);
    assert_eq!((0..20).filter(|_| budget.take(now)).count(), 10);
    assert!(!budget.take(now + Duration::from_millis(100)));
    assert_eq!(
        (0..20)
            .filter(|_| budget.take(now + Duration::from_secs(1)))
            .count(),
        5,
        "5 a second (the refused attempt at 100 ms took nothing)"
    );
}

#[tokio::test]
async fn random_tokens_beyond_the_cap_are_answered_429_without_a_review() {
    tokio::time::pause();
    let (client, fake) = FakeApi::start();
    let auth = Authorizer::new(client);
    let mut statuses = Vec::new();
    for i in 0..30 {
        let token = header(&format!("Bearer random-{i}"));
        statuses.push(auth.authorize(Some(&token)).await.unwrap().status());
    }
    let burst = REVIEW_BURST as usize;
    assert!(
        statuses[..burst]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED)
    );
    assert!(
        statuses[burst..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(
        fake.paths().len(),
        burst,
        "one TokenReview per token within the cap"
    );
    // A cached token is still answered from the cache; a second later new ones are reviewed.
    tokio::time::advance(Duration::from_secs(1)).await;
    let reader = header("Bearer reader");
    assert_eq!(auth.authorize(Some(&reader)).await.unwrap().status(), 200);
}

#[tokio::test]
async fn concurrent_scrapes_with_one_token_share_one_review() {
    let (client, fake) = FakeApi::start();
    let auth = Authorizer::new(client);
    let reader = header("Bearer reader");
    let verdicts = futures::future::join_all((0..8).map(|_| auth.authorize(Some(&reader)))).await;
    assert!(verdicts.iter().all(|v| v.as_ref().unwrap().status() == 200));
    assert_eq!(
        fake.paths().len(),
        2,
        "one TokenReview and one SubjectAccessReview"
    );
}

// ---- the HTTPS endpoint ----

async fn serve(serving: MetricsServing) -> (String, FakeApi, oneshot::Sender<()>) {
    let (client, fake) = FakeApi::start();
    let (stop, stopped) = oneshot::channel::<()>();
    let metrics = Metrics::new();
    metrics.set_leader(true);
    let addr = start_metrics(&serving, client, metrics, async {
        let _ = stopped.await;
    })
    .await
    .expect("metrics served");
    (addr.to_string(), fake, stop)
}

fn secure(cert_dir: Option<PathBuf>) -> MetricsServing {
    MetricsServing {
        addr: "127.0.0.1:0".parse().unwrap(),
        secure: true,
        cert_dir,
        cert_names: vec!["localhost".into(), "127.0.0.1".into()],
    }
}

#[tokio::test]
async fn https_metrics_answer_only_allowed_callers() {
    let (addr, fake, _stop) = serve(secure(None)).await;

    let none = https_get(&addr, "/metrics", None).await.unwrap();
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    let forged = https_get(&addr, "/metrics", Some("forged")).await.unwrap();
    assert_eq!(forged.status, 401, "{}", forged.body);
    assert!(
        forged.body.contains("invalid bearer token"),
        "{}",
        forged.body
    );
    assert!(!forged.body.contains("forged"), "the token is never echoed");
    let stranger = https_get(&addr, "/metrics", Some("stranger"))
        .await
        .unwrap();
    assert_eq!(stranger.status, 403, "{}", stranger.body);
    assert!(stranger.body.contains(STRANGER), "{}", stranger.body);
    let broken = https_get(&addr, "/metrics", Some("broken")).await.unwrap();
    assert_eq!(broken.status, 500, "{}", broken.body);

    let reader = https_get(&addr, "/metrics", Some("reader")).await.unwrap();
    assert_eq!(reader.status, 200, "{}", reader.body);
    assert!(
        reader.body.contains("skewguard_leader 1"),
        "{}",
        reader.body
    );
    assert!(reader.body.ends_with("# EOF\n"));
    assert!(
        !reader.server_cert.is_empty(),
        "a certificate was presented"
    );
    // Other paths are not behind the check (and do not exist).
    let before = fake.paths().len();
    assert_eq!(
        https_get(&addr, "/healthz", None).await.unwrap().status,
        404
    );
    assert_eq!(fake.paths().len(), before);

    // Plain HTTP on the TLS port gets no metrics.
    let plain = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        String::from_utf8_lossy(&buf).to_string()
    };
    let answer = tokio::time::timeout(Duration::from_secs(15), plain)
        .await
        .expect("the server drops a plain-HTTP client");
    assert!(!answer.contains("skewguard_leader"), "{answer}");
}

fn temp_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("skewguard-certs-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a fresh self-signed pair as cert-manager would (tls.crt, tls.key); returns the cert's DER.
fn write_pair(dir: &std::path::Path) -> Vec<u8> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("tls.crt"), generated.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.key"), generated.signing_key.serialize_pem()).unwrap();
    generated.cert.der().to_vec()
}

#[tokio::test]
async fn a_certificate_directory_is_served() {
    let dir = temp_dir();
    let der = write_pair(&dir);
    let (addr, _fake, _stop) = serve(secure(Some(dir.clone()))).await;
    let answer = https_get(&addr, "/metrics", Some("reader")).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.server_cert, der,
        "the mounted certificate, not a generated one"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_renewed_certificate_is_picked_up() {
    let dir = temp_dir();
    write_pair(&dir);
    let current = tls::CurrentCert::new(tls::load_dir(&dir).unwrap());
    let first = current.get().cert[0].to_vec();
    tokio::time::pause();
    let watcher = tokio::spawn(tls::watch_dir(dir.clone(), current.clone()));
    tokio::task::yield_now().await;
    // Files with a newer modification time: what a Secret update does.
    std::thread::sleep(Duration::from_millis(20));
    let renewed = write_pair(&dir);
    for _ in 0..3 {
        tokio::time::advance(tls::RELOAD_INTERVAL).await;
        tokio::task::yield_now().await;
    }
    assert_ne!(current.get().cert[0].to_vec(), first);
    assert_eq!(current.get().cert[0].to_vec(), renewed);
    // A broken renewal keeps the last good certificate.
    std::fs::write(dir.join("tls.key"), "not a key").unwrap();
    for _ in 0..3 {
        tokio::time::advance(tls::RELOAD_INTERVAL).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(current.get().cert[0].to_vec(), renewed);
    watcher.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_certificate_settings_fail_the_start_with_a_reason() {
    let (client, _fake) = FakeApi::start();
    let start = |serving: MetricsServing| {
        let client = client.clone();
        async move { start_metrics(&serving, client, Metrics::new(), async {}).await }
    };
    let missing = temp_dir();
    match start(secure(Some(missing.clone()))).await {
        Err(MetricsServerError::Tls(TlsError::Read { path, .. })) => {
            assert_eq!(path, missing.join("tls.crt"))
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(
        missing.join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnope\n",
    )
    .unwrap();
    std::fs::write(missing.join("tls.key"), "nope").unwrap();
    let err = start(secure(Some(missing.clone()))).await.unwrap_err();
    assert!(matches!(err, MetricsServerError::Tls(_)), "{err}");
    let plain_with_dir = MetricsServing {
        secure: false,
        ..secure(Some(missing.clone()))
    };
    assert!(matches!(
        start(plain_with_dir).await,
        Err(MetricsServerError::CertDirWithoutTls)
    ));
    let _ = std::fs::remove_dir_all(&missing);
}

// ---- the flags ----

fn run_args(args: &[&str]) -> skewguard::shell::cli::RunArgs {
    use clap::Parser;
    let cli = skewguard::shell::cli::Cli::try_parse_from(
        ["skewguard", "run", "--lease-namespace", "ops"]
            .iter()
            .chain(args),
    )
    .unwrap();
    match cli.command {
        skewguard::shell::cli::Command::Run(a) => a,
        other => panic!("{other:?}"),
    }
}

#[test]
fn metrics_are_secure_unless_turned_off() {
    let serving = MetricsServing::from_args(&run_args(&[]));
    assert!(serving.secure);
    assert_eq!(serving.addr, "0.0.0.0:8443".parse().unwrap());
    assert_eq!(serving.cert_dir, None);
    assert!(
        serving
            .cert_names
            .contains(&"skewguard-metrics.ops.svc".to_string()),
        "{:?}",
        serving.cert_names
    );
    assert!(!MetricsServing::from_args(&run_args(&["--metrics-secure=false"])).secure);
    assert!(MetricsServing::from_args(&run_args(&["--metrics-secure"])).secure);
    let mounted = MetricsServing::from_args(&run_args(&["--metrics-cert-dir", "/certs"]));
    assert_eq!(mounted.cert_dir, Some(PathBuf::from("/certs")));
}
