//! A fake API server for controller tests (tower-test, the kube-rs way): it records every request
//! the reconciler makes and answers each from a rule, so tests assert on the requests themselves.

use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::watch;

/// One request as the API server saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub content_type: String,
    pub body: Value,
}

impl Recorded {
    pub fn is(&self, method: &str, path_part: &str) -> bool {
        self.method == method && self.uri.contains(path_part)
    }
}

/// How the fake answers a request: a status code and a JSON body.
pub type Rule = Box<dyn Fn(&Recorded) -> Option<(u16, Value)> + Send + Sync>;

/// Which requests the fake never answers (a hung API server, or a network that lost them).
pub type Hang = Arc<dyn Fn(&Recorded) -> bool + Send + Sync>;

pub struct FakeApi {
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeApi {
    /// A client whose requests go to the fake; `rules` are tried in order, the default echoes the
    /// request body with 200 (201 for creates).
    pub fn start(rules: Vec<Rule>) -> (Client, FakeApi) {
        Self::start_hanging(rules, Arc::new(|_: &Recorded| false))
    }

    /// [`FakeApi::start`], leaving the requests `hang` picks unanswered for good.
    pub fn start_hanging(rules: Vec<Rule>, hang: Hang) -> (Client, FakeApi) {
        Self::start_gated(rules, hang, None)
    }

    /// [`FakeApi::start`], answering the requests `hang` picks only once `open` turns true (never,
    /// without `open`).
    pub fn start_gated(
        rules: Vec<Rule>,
        hang: Hang,
        open: Option<watch::Receiver<bool>>,
    ) -> (Client, FakeApi) {
        let rules = Arc::new(rules);
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let content_type = parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = serde_json::from_slice(&bytes)
                    .or_else(|_| serde_yaml::from_slice::<Value>(&bytes))
                    .unwrap_or(Value::Null);
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    content_type,
                    body,
                };
                if hang(&recorded) {
                    seen.lock().unwrap().push(recorded.clone());
                    match open.clone() {
                        Some(mut open) => {
                            let rules = rules.clone();
                            tokio::spawn(async move {
                                let _ = open.wait_for(|o| *o).await;
                                respond.send_response(answer(&rules, &recorded));
                            });
                        }
                        None => held.push(respond),
                    }
                    continue;
                }
                let response = answer(&rules, &recorded);
                seen.lock().unwrap().push(recorded);
                respond.send_response(response);
            }
        });
        (Client::new(service, "default"), FakeApi { requests })
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests other than Events.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.uri.contains("/events"))
            .collect()
    }

    /// Evictions requested through the Eviction API.
    pub fn evictions(&self) -> usize {
        self.writes()
            .iter()
            .filter(|r| r.is("POST", "/eviction"))
            .count()
    }

    /// The reasons of the Events published, once the publishing tasks (which run beside the
    /// reconcile) have had their turn.
    pub async fn event_reasons(&self) -> Vec<String> {
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        self.requests()
            .into_iter()
            .filter(|r| r.uri.contains("/events"))
            .filter_map(|r| {
                r.body
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect()
    }

    /// The status the reconciler last wrote.
    pub fn last_status(&self) -> Value {
        self.requests()
            .into_iter()
            .rev()
            .find(|r| r.is("PATCH", "/hapolicies/") && r.uri.contains("/status"))
            .map(|r| r.body["status"].clone())
            .unwrap_or(Value::Null)
    }
}

/// The first rule's answer to `recorded`, or the default one.
fn answer(rules: &[Rule], recorded: &Recorded) -> Response<Body> {
    let (code, reply) = rules
        .iter()
        .find_map(|rule| rule(recorded))
        .unwrap_or_else(|| default_reply(recorded));
    Response::builder()
        .status(code)
        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
        .unwrap()
}

fn default_reply(r: &Recorded) -> (u16, Value) {
    let code = if r.method == "POST" { 201 } else { 200 };
    let mut body = if r.body.is_null() {
        json!({})
    } else {
        r.body.clone()
    };
    if r.uri.contains("/eviction") {
        body = json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201});
    }
    if r.uri.contains("/hapolicies/") {
        // A status patch answers with the whole (here: minimal) policy.
        body = json!({"apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy",
            "metadata": {"name": "p", "namespace": "petclinic"},
            "spec": {"selector": {}, "spread": [{"topologyKey": "topology.kubernetes.io/zone"}]},
            "status": r.body.get("status").cloned().unwrap_or(Value::Null)});
    }
    if body.get("metadata").is_none() {
        body["metadata"] = json!({"name": "x", "namespace": "petclinic"});
    }
    (code, body)
}

/// A rule answering evictions with 429, as the API server does when a PDB has no room.
pub fn evictions_refused() -> Rule {
    Box::new(|r| {
        r.uri.contains("/eviction").then(|| {
            (
                429,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                       "reason": "TooManyRequests",
                       "message": "Cannot evict pod as it would violate the pod's disruption budget."}),
            )
        })
    })
}
