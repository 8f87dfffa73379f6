//! A fault injector between operator replicas and the API server: a plain-HTTP proxy on loopback,
//! one port per replica (so every request is known by its sender), forwarding over the test's own
//! HTTPS client with the suite's credentials (`kube::Client::send`: TLS, authentication and the
//! server's address come from the kubeconfig). While faults are on it draws, from a seeded
//! [`Rng`], per request: latency, a 429 with Retry-After, a 500 or 503, a connection reset before
//! forwarding or after the answer, a watch ended mid-way, and a Lease write held past the lease
//! duration and then dropped. Every write (and every eviction) it sees is logged as a
//! [`RequestRecord`] with the sender, the fault and the API server's answer.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::history::{Fault, Outcome, RequestRecord, Target};
use super::rng::Rng;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("listen on loopback: {0}")]
    Listen(#[from] std::io::Error),
    #[error("read kubeconfig {0}: {1}")]
    Kubeconfig(PathBuf, #[source] kube::config::KubeconfigError),
    #[error("client for {0}: {1}")]
    Client(PathBuf, #[source] kube::Error),
}

/// How often each fault is drawn while faults are on.
#[derive(Debug, Clone)]
pub struct FaultRates {
    /// Share of requests given one of latency, 429, 5xx or a reset.
    pub request: f64,
    /// Share of watches ended early (at a random moment up to `watch_cut_within`).
    pub watch_cut: f64,
    pub watch_cut_within: Duration,
    /// Share of Lease writes stalled past `lease_duration`.
    pub lease_stall: f64,
    pub lease_duration: Duration,
    /// Latency is drawn up to this.
    pub max_latency: Duration,
}

/// The running proxy; its listeners stop when it is dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
    ports: BTreeMap<String, u16>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    upstream: Client,
    rates: FaultRates,
    on: AtomicBool,
    rng: Mutex<Rng>,
    injected: Mutex<BTreeMap<Fault, u64>>,
    requests: AtomicU64,
    log: Mutex<Vec<RequestRecord>>,
}

impl FaultProxy {
    /// A client for `kubeconfig` without a read timeout (watches stay open as long as the
    /// operator keeps them).
    pub async fn upstream(kubeconfig: &Path) -> Result<Client, ProxyError> {
        let kc = Kubeconfig::read_from(kubeconfig)
            .map_err(|e| ProxyError::Kubeconfig(kubeconfig.to_path_buf(), e))?;
        let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .map_err(|e| ProxyError::Kubeconfig(kubeconfig.to_path_buf(), e))?;
        config.read_timeout = None;
        Client::try_from(config).map_err(|e| ProxyError::Client(kubeconfig.to_path_buf(), e))
    }

    /// Listens on one loopback port per replica name; faults start off.
    pub async fn start(
        upstream: Client,
        replicas: &[&str],
        seed: u64,
        rates: FaultRates,
    ) -> Result<FaultProxy, ProxyError> {
        let shared = Arc::new(Shared {
            upstream,
            rates,
            on: AtomicBool::new(false),
            rng: Mutex::new(Rng::new(seed)),
            injected: Mutex::default(),
            requests: AtomicU64::new(0),
            log: Mutex::default(),
        });
        let mut ports = BTreeMap::new();
        let mut tasks = Vec::new();
        for replica in replicas {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ports.insert(replica.to_string(), listener.local_addr()?.port());
            tasks.push(tokio::spawn(serve(
                listener,
                shared.clone(),
                Arc::from(*replica),
            )));
        }
        Ok(FaultProxy {
            shared,
            ports,
            tasks,
        })
    }

    /// Writes a kubeconfig that sends `replica`'s requests through its port (no credentials:
    /// the proxy adds the suite's) into `dir`, and returns its path.
    pub fn kubeconfig(&self, replica: &str, dir: &Path) -> std::io::Result<PathBuf> {
        let port = self.ports.get(replica).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no port for {replica}"),
            )
        })?;
        let path = dir.join(format!("kubeconfig-proxy-{replica}"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    \
                 server: http://127.0.0.1:{port}\nusers:\n- name: proxy\n  user: {{}}\n\
                 contexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: proxy\n\
                 current-context: proxy\n"
            ),
        )?;
        Ok(path)
    }

    /// Turns fault injection on or off (requests are forwarded and logged either way).
    pub fn set_faults(&self, on: bool) {
        self.shared.on.store(on, Ordering::SeqCst);
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> BTreeMap<Fault, u64> {
        self.shared.injected.lock().unwrap().clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Every write received so far, in order.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, replica: Arc<str>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (shared, replica) = (shared.clone(), replica.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), replica.clone(), req));
            // A connection that ends in an error is what some faults are made of.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

impl Shared {
    /// The fault for this request, if any (none while faults are off).
    fn draw(&self, target: &Target, watch: bool) -> Option<Fault> {
        if !self.on.load(Ordering::SeqCst) {
            return None;
        }
        let mut rng = self.rng.lock().unwrap();
        if matches!(target, Target::Lease { .. }) && rng.chance(self.rates.lease_stall) {
            return Some(Fault::StalledLease);
        }
        if watch && rng.chance(self.rates.watch_cut) {
            return Some(Fault::CutWatch);
        }
        if !rng.chance(self.rates.request) {
            return None;
        }
        rng.pick(&[
            Fault::Latency,
            Fault::Latency,
            Fault::TooManyRequests,
            Fault::ServerError,
            Fault::ResetBefore,
            Fault::ResetAfter,
        ])
        .copied()
    }

    fn millis_up_to(&self, max: Duration) -> Duration {
        let max = max.as_millis().max(1) as u64;
        Duration::from_millis(self.rng.lock().unwrap().between(max / 20, max))
    }

    fn count(&self, fault: Fault) {
        *self.injected.lock().unwrap().entry(fault).or_default() += 1;
    }

    fn log(&self, record: Option<RequestRecord>) {
        if let Some(r) = record {
            self.log.lock().unwrap().push(r);
        }
    }
}

/// What a request is about (see [`Target`]); `body` names a Lease's holder and an eviction's uid.
pub fn classify(method: &Method, path: &str, body: &[u8]) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let json = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    match parts.as_slice() {
        ["api", "v1", "namespaces", _, "pods", pod, "eviction"] if method == Method::POST => {
            let uid = json()["deleteOptions"]["preconditions"]["uid"]
                .as_str()
                .map(str::to_string);
            Target::Eviction {
                pod: pod.to_string(),
                uid,
            }
        }
        ["api", "v1", "namespaces", _, "pods", pod] => Target::Pod {
            pod: pod.to_string(),
        },
        [
            "apis",
            "coordination.k8s.io",
            "v1",
            "namespaces",
            _,
            "leases",
            rest @ ..,
        ] => {
            let body = json();
            let name = rest
                .first()
                .map(|s| s.to_string())
                .or_else(|| body["metadata"]["name"].as_str().map(str::to_string))
                .unwrap_or_default();
            let holder = body["spec"]["holderIdentity"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_string);
            Target::Lease { name, holder }
        }
        _ => Target::Other,
    }
}

/// A Status answer the proxy makes up.
fn status_answer(code: StatusCode, reason: &str, retry_after: Option<u64>) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": format!("injected by the soak's fault proxy: {reason}"),
        "reason": reason, "code": code.as_u16(),
        "details": {"retryAfterSeconds": retry_after.unwrap_or(0)},
    });
    let mut resp = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = retry_after
        && let Ok(v) = header::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Headers that belong to one hop (or to the credentials the proxy replaces).
fn forwardable(
    headers: &HeaderMap,
) -> impl Iterator<Item = (&header::HeaderName, &header::HeaderValue)> {
    headers.iter().filter(|(name, _)| {
        !matches!(
            name.as_str(),
            "host"
                | "authorization"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "content-length"
                | "upgrade"
                | "proxy-connection"
                | "te"
                | "trailer"
        )
    })
}

fn injected(what: &str) -> BoxError {
    format!("injected by the soak's fault proxy: {what}").into()
}

async fn handle(
    shared: Arc<Shared>,
    replica: Arc<str>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, BoxError> {
    let at = Timestamp::now();
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let body = body.collect().await?.to_bytes();
    let path = parts.uri.path().to_string();
    let watch = (parts.uri.query().unwrap_or("").split('&'))
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let write = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let target = classify(&parts.method, &path, &body);
    let fault = shared.draw(&target, watch);
    if let Some(f) = fault {
        shared.count(f);
    }
    let mut record = write.then(|| RequestRecord {
        at,
        replica: replica.to_string(),
        method: parts.method.to_string(),
        path: path.clone(),
        target,
        fault,
        outcome: Outcome::Withheld,
    });
    match fault {
        Some(Fault::Latency) => {
            tokio::time::sleep(shared.millis_up_to(shared.rates.max_latency)).await
        }
        Some(Fault::TooManyRequests) => {
            shared.log(record);
            return Ok(status_answer(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                Some(1),
            ));
        }
        Some(Fault::ServerError) => {
            shared.log(record);
            let code = if at.as_millisecond() % 2 == 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok(status_answer(code, "InternalError", None));
        }
        Some(Fault::ResetBefore) => {
            shared.log(record);
            return Err(injected("connection reset"));
        }
        Some(Fault::StalledLease) => {
            tokio::time::sleep(shared.rates.lease_duration + Duration::from_secs(2)).await;
            shared.log(record);
            return Err(injected("lease write stalled"));
        }
        _ => {}
    }
    let uri = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut up = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in forwardable(&parts.headers) {
        up = up.header(name, value);
    }
    let up = up.body(kube::client::Body::from(body))?;
    let resp = match shared.upstream.send(up).await {
        Ok(resp) => resp,
        Err(e) => {
            if let Some(r) = record.as_mut() {
                r.outcome = Outcome::Unreachable;
            }
            shared.log(record);
            return Err(e.into());
        }
    };
    if let Some(r) = record.as_mut() {
        r.outcome = Outcome::Answered(resp.status().as_u16());
    }
    shared.log(record);
    if fault == Some(Fault::ResetAfter) {
        return Err(injected("connection reset after the answer"));
    }
    let (mut head, body) = resp.into_parts();
    for name in [
        "connection",
        "transfer-encoding",
        "content-length",
        "keep-alive",
    ] {
        head.headers.remove(name);
    }
    let body: ProxyBody = if fault == Some(Fault::CutWatch) {
        let after = shared.millis_up_to(shared.rates.watch_cut_within);
        Cut {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(after)),
        }
        .boxed_unsync()
    } else {
        body.map_err(|e| -> BoxError { e.into() }).boxed_unsync()
    };
    Ok(Response::from_parts(head, body))
}

/// A response body that fails at `deadline`: the connection is dropped mid-stream.
struct Cut {
    inner: kube::client::Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl HttpBody for Cut {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(injected("watch cut"))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|e| -> BoxError { e.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_apart_by_path_and_body() {
        let evict = br#"{"deleteOptions":{"preconditions":{"uid":"u1"}}}"#;
        assert_eq!(
            classify(
                &Method::POST,
                "/api/v1/namespaces/s/pods/web-1/eviction",
                evict
            ),
            Target::Eviction {
                pod: "web-1".into(),
                uid: Some("u1".into())
            }
        );
        assert_eq!(
            classify(&Method::PATCH, "/api/v1/namespaces/s/pods/web-1", b"{}"),
            Target::Pod {
                pod: "web-1".into()
            }
        );
        let lease = br#"{"metadata":{"name":"l"},"spec":{"holderIdentity":"a-1"}}"#;
        assert_eq!(
            classify(
                &Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/s/leases",
                lease
            ),
            Target::Lease {
                name: "l".into(),
                holder: Some("a-1".into())
            }
        );
        let released = br#"{"spec":{"holderIdentity":null}}"#;
        assert_eq!(
            classify(
                &Method::PUT,
                "/apis/coordination.k8s.io/v1/namespaces/s/leases/l",
                released
            ),
            Target::Lease {
                name: "l".into(),
                holder: None
            }
        );
        assert_eq!(
            classify(
                &Method::PATCH,
                "/apis/apps/v1/namespaces/s/deployments/web",
                b"{}"
            ),
            Target::Other
        );
    }
}
