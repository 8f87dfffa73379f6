//! The operator's resident memory with 50,000 pods cached (ignored by default; run it with
//! `SKEWGUARD_E2E=1 cargo test --release --test e2e -- --ignored memory`): 500 plain Node objects
//! and 50,000 bound pods with realistic specs (two containers, env, probes, labels, annotations)
//! in 50 namespaces, then `skewguard run` until its caches have synced; the run prints the
//! operator's resident memory read from `/proc/<pid>/status`.
//!
//! The nodes are not the fake kubelet's (nothing needs to run the pods); the pods are created
//! already bound (`spec.nodeName`), as a scheduler would leave them.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::support::http_get;
use crate::harness::{Ctx, OperatorProcess};

const NODES: usize = 500;
const NAMESPACES: usize = 50;

fn pods_wanted() -> usize {
    std::env::var("SKEWGUARD_E2E_MEMORY_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}

fn realistic_pod(name: &str, namespace: &str, node: &str, app: &str) -> Pod {
    let container = |n: &str| {
        json!({
            "name": n, "image": format!("registry.example.com/{app}/{n}:1.4.2"),
            "env": [{"name": "SPRING_PROFILES_ACTIVE", "value": "prod"},
                    {"name": "JAVA_OPTS", "value": "-Xms512m -Xmx512m -XX:+UseG1GC"},
                    {"name": "REDIS_HOST", "value": "redis-master.petclinic.svc"}],
            "ports": [{"containerPort": 8080, "name": "http"}],
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                          "limits": {"memory": "1Gi"}},
            "readinessProbe": {"httpGet": {"path": "/actuator/health/readiness", "port": 8080},
                               "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/actuator/health/liveness", "port": 8080},
                              "periodSeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/config"}]
        })
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"app": app, "tier": "web", "pod-template-hash": "5f6b7c8d9",
                       "app.kubernetes.io/part-of": "petclinic", "team": namespace},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                            "kubectl.kubernetes.io/restartedAt": "2026-11-30T10:00:00Z"}
        },
        "spec": {
            "nodeName": node,
            "containers": [container("app"), container("sidecar")],
            "volumes": [{"name": "config", "configMap": {"name": format!("{app}-config")}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}]
        }
    }))
    .expect("a valid pod")
}

fn rss_kib(op: &OperatorProcess, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", op.pid()?)).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn memory_with_50000_pods(ctx: Ctx) {
    let pods = pods_wanted();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let node_names: Vec<String> = (0..NODES).map(|i| format!("mem-node-{i:03}")).collect();
    for (i, name) in node_names.iter().enumerate() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
                "kubernetes.io/hostname": name}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"}}
        }))
        .expect("a valid node");
        let _ = nodes.create(&PostParams::default(), &node).await;
    }
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("mem-{i:02}")).collect();
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    for ns in &namespaces {
        let _ = ns_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace"),
            )
            .await;
    }
    let t = Instant::now();
    futures::stream::iter(0..pods)
        .for_each_concurrent(48, |i| {
            let client = ctx.client.clone();
            let ns = namespaces[i % NAMESPACES].clone();
            let node = node_names[i % NODES].clone();
            async move {
                let pod = realistic_pod(
                    &format!("web-{i:05}"),
                    &ns,
                    &node,
                    &format!("app-{}", i % 300),
                );
                let api: Api<Pod> = Api::namespaced(client, &ns);
                let _ = api.create(&PostParams::default(), &pod).await;
            }
        })
        .await;
    println!(
        "\n  memory: {pods} pods created in {:.0}s",
        t.elapsed().as_secs_f64()
    );

    // All namespaces (no --namespace): the operator caches every pod of the cluster.
    let (metrics, health) = OperatorProcess::addrs();
    let op = OperatorProcess::start_with_addrs(
        &ctx.env,
        &[
            "run",
            "--leader-elect=false",
            "--metrics-addr",
            &metrics,
            "--health-addr",
            &health,
        ],
        metrics.clone(),
        health.clone(),
    );
    let t = Instant::now();
    loop {
        if http_get(&health, "/readyz").await.is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "the operator's caches did not sync"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the first reconciles and the allocator settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, hwm) = (rss_kib(&op, "VmRSS:"), rss_kib(&op, "VmHWM:"));
    println!(
        "  memory: caches synced in {:.1}s; operator resident {} MiB (peak {} MiB) with {pods} pods cached",
        t.elapsed().as_secs_f64(),
        rss.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
        hwm.map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0)),
    );
    assert!(rss.is_some(), "the operator's memory could be read");
    drop(op);
    for ns in &namespaces {
        let _ = ns_api.delete(ns, &DeleteParams::default()).await;
    }
    for name in &node_names {
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
}
