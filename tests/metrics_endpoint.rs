//! Scrapes the real `/metrics`, `/healthz` and `/readyz` endpoints over TCP with the petclinic field
//! scenario: web's 2 pods both in ap-northeast-2c, redis-master a single point of failure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use skewguard::shell::http::{
    Health, OPENMETRICS_CONTENT_TYPE, health_router, metrics_router, serve,
};
use skewguard::shell::metrics::{ActionResult, ErrorCategory, Metrics, WriteKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

mod petclinic_metrics;
use petclinic_metrics::{HOST, every_family, redis_master, was};

struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A minimal HTTP/1.1 GET over a raw TCP connection.
async fn get(addr: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut raw))
        .await
        .expect("response within 10s")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Serves a router on an ephemeral port of 127.0.0.1; the server stops when the sender drops.
async fn start(router: axum::Router) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, router, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Sample lines of an exposition: `name{labels}` -> value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.to_string())
        })
        .collect()
}

fn with_name<'a>(samples: &'a BTreeMap<String, String>, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}{{");
    samples
        .keys()
        .filter(|k| k.starts_with(&prefix) || k.as_str() == name)
        .map(String::as_str)
        .collect()
}

async fn scrape(addr: SocketAddr) -> (String, BTreeMap<String, String>) {
    let response = get(addr, "/metrics").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], OPENMETRICS_CONTENT_TYPE);
    assert!(response.body.ends_with("# EOF\n"), "{}", response.body);
    let parsed = samples(&response.body);
    (response.body, parsed)
}

#[tokio::test]
async fn metrics_endpoint_tells_the_petclinic_story() {
    // The scenario observed, one eviction of web, one kube_api error, one 10ms reconcile.
    let metrics = every_family();
    let (addr, _stop) = start(metrics_router(metrics.clone())).await;

    let (text, s) = scrape(addr).await;
    let web_zone = r#"namespace="petclinic",policy="petclinic",kind="Deployment",workload="web",topology_key="topology.kubernetes.io/zone""#;
    for line in [
        format!("skewguard_workload_skew{{{web_zone}}} 2"),
        format!("skewguard_workload_max_skew{{{web_zone}}} 1"),
        r#"skewguard_workload_balanced{namespace="petclinic",policy="petclinic",kind="Deployment",workload="web"} 0"#.into(),
        r#"skewguard_workload_balanced{namespace="petclinic",policy="petclinic",kind="Rollout",workload="was"} 1"#.into(),
        r#"skewguard_workload_domain_pods{namespace="petclinic",kind="Deployment",workload="web",topology_key="topology.kubernetes.io/zone",domain="ap-northeast-2a"} 0"#.into(),
        r#"skewguard_workload_domain_pods{namespace="petclinic",kind="Deployment",workload="web",topology_key="topology.kubernetes.io/zone",domain="ap-northeast-2c"} 2"#.into(),
        r#"skewguard_workload_domain_loss_ratio{namespace="petclinic",kind="StatefulSet",workload="redis-master",topology_key="topology.kubernetes.io/zone"} 1.0"#.into(),
        r#"skewguard_workload_domain_loss_ratio{namespace="petclinic",kind="Rollout",workload="was",topology_key="topology.kubernetes.io/zone"} 0.5"#.into(),
        // The old name, kept one release (CHANGELOG): the same series.
        r#"skewguard_workload_zone_loss_fraction{namespace="petclinic",kind="StatefulSet",workload="redis-master",topology_key="topology.kubernetes.io/zone"} 1.0"#.into(),
        r#"skewguard_workload_zone_loss_fraction{namespace="petclinic",kind="Rollout",workload="was",topology_key="topology.kubernetes.io/zone"} 0.5"#.into(),
        r#"skewguard_workload_replicas{namespace="petclinic",kind="StatefulSet",workload="redis-master"} 1"#.into(),
        r#"skewguard_rebalance_blocked{namespace="petclinic",kind="Deployment",workload="web",reason="NoCapacity"} 1"#.into(),
        r#"skewguard_policies{namespace="petclinic"} 1"#.into(),
        "skewguard_leader 1".into(),
        format!(
            r#"skewguard_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        ),
        r#"skewguard_reconcile_errors_total{error="kube_api"} 1"#.into(),
        r#"skewguard_reconcile_errors_total{error="apply"} 0"#.into(),
        "skewguard_reconcile_duration_seconds_count 1".into(),
        r#"skewguard_reconcile_duration_seconds_bucket{le="0.01"} 1"#.into(),
        r#"skewguard_reconcile_duration_seconds_bucket{le="0.005"} 0"#.into(),
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    assert!(text.contains("# TYPE skewguard_reconcile_duration_seconds histogram"));
    assert!(text.contains("# UNIT skewguard_reconcile_duration_seconds seconds"));

    // Hostname over 3 nodes has per-domain series; over 17 nodes it has none, but skew still shows.
    let domains = with_name(&s, "skewguard_workload_domain_pods");
    let host = |w: &str| {
        domains
            .iter()
            .filter(|k| k.contains(&format!("workload=\"{w}\"")) && k.contains(HOST))
            .count()
    };
    assert_eq!(host("web"), 3);
    assert_eq!(host("redis-master"), 0);
    assert!(
        with_name(&s, "skewguard_workload_skew")
            .iter()
            .any(|k| k.contains("redis-master") && k.contains(HOST))
    );
    assert_eq!(domains.len(), 3 + 2 + 2 + 2, "{domains:?}");

    // Rebalance actions count, with enum label values only.
    let web_evicts = r#"skewguard_rebalance_actions_total{namespace="petclinic",policy="petclinic",kind="Deployment",workload="web",action="evict",result="success"}"#;
    assert_eq!(s[web_evicts], "1");
    metrics.record_action(
        "petclinic",
        "petclinic",
        "Deployment",
        "web",
        WriteKind::Evict,
        ActionResult::Success,
    );
    metrics.record_action(
        "petclinic",
        "petclinic",
        "Rollout",
        "was",
        WriteKind::Restart,
        ActionResult::DryRun,
    );
    metrics.record_error(ErrorCategory::Eviction);
    let (_, s) = scrape(addr).await;
    assert_eq!(s[web_evicts], "2");
    let was_restarts = r#"skewguard_rebalance_actions_total{namespace="petclinic",policy="petclinic",kind="Rollout",workload="was",action="restart",result="dry_run"}"#;
    assert_eq!(s[was_restarts], "1");
    assert_eq!(
        s[r#"skewguard_reconcile_errors_total{error="eviction"}"#],
        "1"
    );

    // web leaves the policy: every series naming it disappears, the others stay.
    metrics.observe_policy("petclinic", "petclinic", &[was(), redis_master()]);
    let (text, s) = scrape(addr).await;
    assert!(
        !text.contains(r#"workload="web""#),
        "web series left behind:\n{text}"
    );
    assert_eq!(s[was_restarts], "1");
    assert!(s.contains_key(
        r#"skewguard_workload_replicas{namespace="petclinic",kind="Rollout",workload="was"}"#
    ));

    // The policy is deleted: nothing of its workloads is left.
    metrics.forget_policy("petclinic", "petclinic");
    metrics.set_policies("petclinic", 0);
    let (text, _) = scrape(addr).await;
    assert!(!text.contains("petclinic"), "{text}");
    assert!(text.contains("skewguard_leader 1"));
}

#[tokio::test]
async fn health_and_readiness() {
    let health = Health::new();
    let (addr, stop) = start(health_router(health.clone())).await;

    let healthz = get(addr, "/healthz").await;
    assert_eq!((healthz.status, healthz.body.as_str()), (200, "ok"));

    let readyz = get(addr, "/readyz").await;
    assert_eq!((readyz.status, readyz.body.as_str()), (503, "starting"));
    health.set_not_ready("HAPolicy CRD not installed");
    let readyz = get(addr, "/readyz").await;
    assert_eq!(
        (readyz.status, readyz.body.as_str()),
        (503, "HAPolicy CRD not installed")
    );

    health.set_ready();
    let readyz = get(addr, "/readyz").await;
    assert_eq!((readyz.status, readyz.body.as_str()), (200, "ok"));
    assert_eq!(get(addr, "/metrics").await.status, 404);

    drop(stop);
    // After shutdown the port stops answering.
    let refused = async {
        loop {
            if TcpStream::connect(addr).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("server stops after shutdown");
}

/// A watch task that died (its cache frozen) fails `/healthz`, so the kubelet restarts the
/// operator; readiness is another matter and stays as it was.
#[tokio::test]
async fn healthz_fails_once_a_watch_task_died() {
    let health = Health::new();
    health.set_ready();
    let (addr, _stop) = start(health_router(health.clone())).await;
    let tasks = health.watch_tasks();
    let pods = tasks.register("pods");
    let _nodes = tasks.register("nodes");
    assert_eq!(get(addr, "/healthz").await.status, 200);
    // What a panic in the pod-watch task amounts to: its guard unwinds unfinished.
    let died = tokio::spawn(async move {
        let _pods = pods;
        panic!("overflow inside the pod watch");
    })
    .await;
    assert!(died.is_err());
    let healthz = get(addr, "/healthz").await;
    assert_eq!(
        (healthz.status, healthz.body.as_str()),
        (503, "the pods watch task died")
    );
    assert_eq!(get(addr, "/readyz").await.status, 200);
}

#[tokio::test]
async fn one_port_can_serve_both() {
    let metrics = Metrics::new();
    let (addr, _stop) = start(metrics_router(metrics).merge(health_router(Health::new()))).await;
    assert_eq!(get(addr, "/metrics").await.status, 200);
    assert_eq!(get(addr, "/healthz").await.status, 200);
}
