//! `skewguard report` on fixtures of cluster state: the petclinic field scenario (every pod in
//! ap-northeast-2c), its table and JSON, and what the petclinic policy would do.

use k8s_openapi::api::core::v1::Node;
use kube::api::DynamicObject;
use serde_json::{Value, json};
use skewguard::api::WorkloadKind;
use skewguard::core::snapshot::LeanPod as Pod;
use skewguard::report::build::{ClusterState, PolicyInput, Report, build_report};
use skewguard::report::gather::Scope;
use skewguard::report::render::render;
use skewguard::report::{ReportError, parse_policy, policy_in_scope};
use skewguard::shell::cli::OutputFormat;

const ZONE: &str = "topology.kubernetes.io/zone";
const NS: &str = "petclinic";

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {ZONE: zone, "kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    }))
    .unwrap()
}

/// A pod whose controller is `owner` (`kind/name`, e.g. `ReplicaSet/web-h1`).
fn pod(name: &str, labels: Value, node: &str, owner: &str) -> Pod {
    let (kind, owner) = owner.split_once('/').unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": labels, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}]},
        "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}
        ]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap()
}

fn spec(replicas: i32, tier: &str, extra_template: Value) -> Value {
    let mut template_spec = json!({"containers": [
        {"name": "c", "image": "i", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}
    ]});
    if let (Some(t), Some(extra)) = (template_spec.as_object_mut(), extra_template.as_object()) {
        t.extend(extra.clone());
    }
    json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "petclinic", "tier": tier}},
        "template": {"metadata": {"labels": {"app": "petclinic", "tier": tier}},
                     "spec": template_spec}
    })
}

fn status(replicas: i32) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
           "readyReplicas": replicas, "availableReplicas": replicas})
}

/// A workload as the API server lists it, in its dynamic form.
fn workload(api_version: &str, kind: &str, mut object: Value) -> DynamicObject {
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    serde_json::from_value(object).unwrap()
}

fn deployment(object: Value) -> DynamicObject {
    workload("apps/v1", "Deployment", object)
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": NS, "generation": 1, "labels": {"app": "petclinic"}})
}

/// The field report: web x2, was x2, redis-master x1, all in ap-northeast-2c; 2a is empty.
fn petclinic() -> ClusterState {
    let web = |i| json!({"app": "petclinic", "tier": "web", "pod-template-hash": format!("h{i}")});
    let was = json!({"app": "petclinic", "tier": "was", "rollouts-pod-template-hash": "r1"});
    let redis = json!({"app": "petclinic", "tier": "redis"});
    ClusterState {
        nodes: vec![
            node("ip-10-0-1-10", "ap-northeast-2a"),
            node("ip-10-0-3-20", "ap-northeast-2c"),
        ],
        pods: vec![
            pod(
                "web-7d9c-abcde",
                web(1),
                "ip-10-0-3-20",
                "ReplicaSet/web-h1",
            ),
            pod(
                "web-7d9c-fghij",
                web(1),
                "ip-10-0-3-20",
                "ReplicaSet/web-h1",
            ),
            pod(
                "was-5f6b-klmno",
                was.clone(),
                "ip-10-0-3-20",
                "ReplicaSet/was-r1",
            ),
            pod("was-5f6b-pqrst", was, "ip-10-0-3-20", "ReplicaSet/was-r1"),
            pod(
                "redis-master-0",
                redis,
                "ip-10-0-3-20",
                "StatefulSet/redis-master",
            ),
        ],
        workloads: vec![
            deployment(json!({
                "metadata": meta("web"), "spec": spec(2, "web", json!({})), "status": status(2)
            })),
            workload(
                "apps/v1",
                "StatefulSet",
                json!({
                    "metadata": meta("redis-master"), "spec": spec(1, "redis", json!({})),
                    "status": status(1)
                }),
            ),
            workload(
                "argoproj.io/v1alpha1",
                "Rollout",
                json!({
                    "metadata": meta("was"), "spec": spec(2, "was", json!({})),
                    "status": {"observedGeneration": "1", "replicas": 2, "updatedReplicas": 2,
                               "readyReplicas": 2, "availableReplicas": 2}
                }),
            ),
        ],
        kinds_served: WorkloadKind::all(),
        budgets: vec![],
        policies: vec![],
        // A cluster that does not serve MutatingAdmissionPolicies (before 1.36).
        admission: Some(skewguard::core::injection::AdmissionSupport::default()),
        nodepools: None,
    }
}

#[test]
fn a_zone_a_nodepool_may_fill_but_that_has_no_node_is_shown_with_0_pods() {
    // web is 1/1 over 2a and 2c; Karpenter may launch nodes in 2b too, which has none.
    let mut state = petclinic();
    state.pods[0].spec.node_name = Some("ip-10-0-1-10".into());
    state.nodepools = Some(vec![json!({
        "metadata": {"name": "default"},
        "spec": {"template": {"spec": {"requirements": [
            {"key": ZONE, "operator": "In",
             "values": ["ap-northeast-2a", "ap-northeast-2b", "ap-northeast-2c"]}]}}}
    })]);
    let report = build_report(&state, ZONE, None);
    let web = report.workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(web.missing_domains, ["ap-northeast-2b"]);
    assert_eq!(
        web.domains,
        [
            ("ap-northeast-2a", 1),
            ("ap-northeast-2b", 0),
            ("ap-northeast-2c", 1)
        ]
        .map(|(d, n)| (d.to_string(), n))
        .into()
    );
    assert_eq!(web.skew, 1, "1/0/1 over the expected zones");
    // Without NodePools, only the zones with nodes count, as before.
    let plain = build_report(&petclinic(), ZONE, None);
    assert!(plain.workloads.iter().all(|w| w.missing_domains.is_empty()));
}

fn petclinic_report() -> Report {
    build_report(&petclinic(), ZONE, None)
}

#[test]
fn the_field_scenario_as_a_table() {
    let text = render(&petclinic_report(), OutputFormat::Table).unwrap();
    let expected = "\
NAMESPACE  KIND         NAME          REPLICAS  PODS PER ZONE                        SKEW   SPREAD CONSTRAINTS  WORST DOMAIN LOSS
petclinic  Deployment   web           2/2       ap-northeast-2a=0 ap-northeast-2c=2  2 > 1  none                ap-northeast-2c 2/2 (100%)  SPOF
petclinic  StatefulSet  redis-master  1/1       ap-northeast-2a=0 ap-northeast-2c=1  1      none                ap-northeast-2c 1/1 (100%)  SPOF
petclinic  Rollout      was           2/2       ap-northeast-2a=0 ap-northeast-2c=2  2 > 1  none                ap-northeast-2c 2/2 (100%)  SPOF

Single points of failure:
  petclinic/web (Deployment): all 2 running replicas in ap-northeast-2c — losing ap-northeast-2c loses 100%
  petclinic/redis-master (StatefulSet): its only running replica is in ap-northeast-2c — losing ap-northeast-2c loses 100%
  petclinic/was (Rollout): all 2 running replicas in ap-northeast-2c — losing ap-northeast-2c loses 100%
";
    assert_eq!(text, expected, "got:\n{text}");
}

#[test]
fn the_field_scenario_as_json() {
    let text = render(&petclinic_report(), OutputFormat::Json).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["topologyKey"], ZONE);
    assert_eq!(v.get("kindsNotServed"), None, "every kind is served");
    let rows = v["workloads"].as_array().unwrap();
    let summary: Vec<(String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
                r["skew"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Deployment".into(), "web".into(), 2),
            ("StatefulSet".into(), "redis-master".into(), 1),
            ("Rollout".into(), "was".into(), 2),
        ]
    );
    let redis = &rows[1];
    assert_eq!(redis["replicas"], 1);
    assert_eq!(redis["maxSkew"], 1);
    assert_eq!(redis["measuredBy"], "Default");
    assert_eq!(redis["spreadConstraintKeys"], json!([]));
    assert_eq!(
        redis["domains"],
        json!({"ap-northeast-2a": 0, "ap-northeast-2c": 1})
    );
    assert_eq!(
        redis["worstDomainLoss"],
        json!({"domain": "ap-northeast-2c", "podsLost": 1, "total": 1, "fraction": 1.0,
               "singlePointOfFailure": true})
    );
    assert!(v.get("policy").is_none() && v.get("warnings").is_none());
}

#[test]
fn yaml_output_carries_the_same_report() {
    let text = render(&petclinic_report(), OutputFormat::Yaml).unwrap();
    let v: Value = serde_yaml::from_str(&text).unwrap();
    let json: Value =
        serde_json::from_str(&render(&petclinic_report(), OutputFormat::Json).unwrap()).unwrap();
    assert_eq!(v, json);
}

#[test]
fn after_the_manual_fix_the_template_constraint_measures_and_nothing_is_a_spof() {
    // web with the team's hand-written zone constraint, one pod in each zone.
    let mut state = petclinic();
    let constraint = json!({"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}}
    }]});
    state.workloads[0] = deployment(json!({
        "metadata": meta("web"), "spec": spec(2, "web", constraint), "status": status(2)
    }));
    state.pods[0].spec.node_name = Some("ip-10-0-1-10".into());
    let report = build_report(&state, ZONE, None);
    let web = &report.workloads[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.skew, 0);
    assert_eq!(web.spread_constraint_keys, vec![ZONE.to_string()]);
    assert_eq!(format!("{:?}", web.measured_by), "Template");
    assert!(!web.is_single_point_of_failure());
    let loss = web.worst_domain_loss.as_ref().unwrap();
    assert_eq!((loss.pods_lost, loss.total), (1, 2));
    let text = render(&report, OutputFormat::Table).unwrap();
    assert!(text.contains("ap-northeast-2a 1/2 (50%)\n"), "{text}");
    assert!(!text.contains("petclinic/web (Deployment): all"), "{text}");
}

#[test]
fn no_rollout_crd_and_no_workloads_say_so() {
    let state = ClusterState {
        nodes: vec![node("n1", "a")],
        ..Default::default()
    };
    let text = render(&build_report(&state, ZONE, None), OutputFormat::Table).unwrap();
    assert_eq!(
        text,
        "No Deployments, StatefulSets or Rollouts found.\n\n\
         (CRD rollouts.argoproj.io not installed: no Rollouts listed.)\n"
    );
}

#[test]
fn a_workload_with_an_invalid_selector_is_a_warning_not_a_failure() {
    let mut state = petclinic();
    state.workloads[0] = deployment(json!({
        "metadata": meta("web"),
        "spec": {"selector": {"matchExpressions": [{"key": "tier", "operator": "Sideways"}]},
                 "template": {}}
    }));
    let report = build_report(&state, ZONE, None);
    assert_eq!(report.workloads.len(), 2);
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("web"), "{:?}", report.warnings);
}

fn sample_policy(file: &str) -> skewguard::api::HAPolicy {
    let path = format!("{}/config/samples/{file}", env!("CARGO_MANIFEST_DIR"));
    parse_policy(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_petclinic_policy_shows_what_the_operator_would_do() {
    let policy = sample_policy("petclinic-hapolicy.yaml");
    let input = policy_in_scope(&policy, &Scope::Namespace(NS.into()), "default").unwrap();
    let report = build_report(&petclinic(), ZONE, Some(&input));
    let evaluation = report.policy.as_ref().unwrap();
    assert_eq!(
        (evaluation.name.as_str(), evaluation.namespace.as_str()),
        ("petclinic", NS)
    );
    let names: Vec<&str> = evaluation
        .workloads
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(names, vec!["web", "redis-master", "was"]);

    let web = &evaluation.workloads[0];
    let injected: Vec<(&str, &str)> = web
        .inject
        .iter()
        .map(|c| (c.topology_key.as_str(), c.when_unsatisfiable.as_str()))
        .collect();
    assert_eq!(
        injected,
        vec![
            (ZONE, "ScheduleAnyway"),
            ("kubernetes.io/hostname", "ScheduleAnyway")
        ]
    );
    assert!(web.changes_template && web.host_anti_affinity);
    assert_eq!(web.constraints[0].skew, 2);
    assert_eq!(format!("{:?}", web.constraints[0].source), "Policy");
    assert_eq!(web.plan.moves_needed, 1);
    let m = &web.plan.moves[0];
    assert!(m.pod.starts_with("web-"), "{m:?}");
    assert_eq!(
        (
            m.from_domain.as_str(),
            m.to_domain.as_str(),
            m.to_node.as_str()
        ),
        ("ap-northeast-2c", "ap-northeast-2a", "ip-10-0-1-10")
    );

    let redis = &evaluation.workloads[1];
    assert!(redis.plan.moves.is_empty());
    assert_eq!(redis.plan.obstacle.as_deref(), Some("AlreadyBalanced"));

    // The decision step, as the controller takes it.
    assert_eq!(
        (
            format!("{:?}", web.decision.state),
            web.decision.reason.as_str()
        ),
        ("Evicting".to_string(), "Evicting")
    );
    assert_eq!(
        web.decision.would,
        vec![
            "inject 2 spread constraint(s)".to_string(),
            // No deletion cost in a step that evicts: the move changes the ranks.
            format!("evict {} (zone ap-northeast-2c -> ap-northeast-2a)", m.pod),
        ]
    );
    assert_eq!(
        (
            format!("{:?}", redis.decision.state),
            redis.decision.reason.as_str()
        ),
        ("Idle".to_string(), "Balanced")
    );

    let text = render(&report, OutputFormat::Table).unwrap();
    let section = text.split_once("\nHAPolicy ").map(|(_, s)| s).unwrap();
    let expected_web = "\
  Deployment web
    inject: topology.kubernetes.io/zone maxSkew 1 ScheduleAnyway; kubernetes.io/hostname maxSkew 1 ScheduleAnyway + preferred hostname anti-affinity (changes the template: one rolling update, the first rebalance)
    topology.kubernetes.io/zone: skew 2 > maxSkew 1 [ap-northeast-2a=0 ap-northeast-2c=2], measured by the Policy constraint
    kubernetes.io/hostname: skew 2 > maxSkew 1 [ip-10-0-1-10=0 ip-10-0-3-20=2], measured by the Policy constraint
    plan: 1 move(s) needed in all; next step:
";
    assert!(
        section.starts_with("petclinic/petclinic (strategy Evict; nothing was changed):\n"),
        "{section}"
    );
    assert!(section.contains(expected_web), "{section}");
    assert!(
        section.contains(&format!(
            "      move {}: ap-northeast-2c -> ap-northeast-2a (node ip-10-0-3-20 -> ip-10-0-1-10)\n",
            m.pod
        )),
        "{section}"
    );
    assert!(
        section.contains("  StatefulSet redis-master\n"),
        "{section}"
    );
    assert!(
        section.contains("    decision: Evicting (Evicting), once the skew has held for the stabilization window\n      would inject 2 spread constraint(s)\n"),
        "{section}"
    );
    assert!(
        section.contains("    plan: no move (AlreadyBalanced)\n"),
        "{section}"
    );

    let json: Value = serde_json::from_str(&render(&report, OutputFormat::Json).unwrap()).unwrap();
    assert_eq!(json["policy"]["strategy"], "Evict");
    assert_eq!(json["policy"]["workloads"][0]["plan"]["movesNeeded"], 1);
    assert_eq!(
        json["policy"]["workloads"][0]["constraints"][0]["domains"],
        json!({"ap-northeast-2a": 0, "ap-northeast-2c": 2})
    );
}

#[test]
fn a_policy_selects_by_workload_labels_and_kinds_in_its_namespace() {
    let mut policy = sample_policy("petclinic-hapolicy.yaml");
    policy.spec.workload_kinds = vec![skewguard::api::WorkloadKind::StatefulSet];
    let input = PolicyInput::new(&policy, NS.into());
    let report = build_report(&petclinic(), ZONE, Some(&input));
    let names: Vec<&str> = report
        .policy
        .as_ref()
        .unwrap()
        .workloads
        .iter()
        .map(|w| w.name.as_str())
        .collect();
    assert_eq!(names, vec!["redis-master"]);

    let elsewhere = PolicyInput::new(&policy, "other".into());
    let report = build_report(&petclinic(), ZONE, Some(&elsewhere));
    assert!(report.policy.unwrap().workloads.is_empty());
}

#[test]
fn a_policy_for_another_namespace_than_the_report_is_refused() {
    let policy = sample_policy("petclinic-hapolicy.yaml");
    let err = policy_in_scope(&policy, &Scope::Namespace("default".into()), "default").unwrap_err();
    assert!(matches!(err, ReportError::NamespaceMismatch { .. }));
    assert!(err.to_string().contains("-n petclinic"));
    let all = policy_in_scope(&policy, &Scope::All, "default").unwrap();
    assert_eq!(all.namespace(), NS);
}

#[test]
fn a_file_that_is_not_an_hapolicy_is_a_clear_error() {
    assert!(parse_policy("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").is_err());
    assert!(parse_policy(": not yaml: [").is_err());
    let missing = skewguard::report::read_policy(std::path::Path::new("/nonexistent/policy.yaml"));
    assert!(matches!(missing, Err(ReportError::PolicyRead { .. })));
}

#[test]
fn the_report_shows_a_budget_without_room_blocking_the_decision() {
    let policy = sample_policy("petclinic-hapolicy.yaml");
    let input = policy_in_scope(&policy, &Scope::Namespace(NS.into()), "default").unwrap();
    let mut state = petclinic();
    state.budgets = vec![
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": NS, "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"tier": "web"}}},
            "status": {"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 2,
                       "desiredHealthy": 2, "expectedPods": 2}
        }))
        .unwrap(),
    ];
    let report = build_report(&state, ZONE, Some(&input));
    let web = &report.policy.as_ref().unwrap().workloads[0];
    assert_eq!(
        (
            format!("{:?}", web.decision.state),
            web.decision.reason.as_str()
        ),
        ("Blocked".to_string(), "PodDisruptionBudget")
    );
    assert!(web.plan.moves_needed > 0, "the plan is still shown");
    assert!(!web.decision.would.iter().any(|w| w.starts_with("evict")));
}

#[test]
fn in_admission_mode_the_report_shows_what_each_new_pod_gets_and_each_workloads_mode() {
    use skewguard::core::injection::AdmissionSupport;
    let mut state = petclinic();
    state.admission = Some(AdmissionSupport {
        served: true,
        policy_installed: true,
        binding_installed: true,
        warnings: vec![],
    });
    let policy = sample_policy("petclinic-hapolicy.yaml");
    let input = policy_in_scope(&policy, &Scope::Namespace(NS.into()), "default").unwrap();
    let report = build_report(&state, ZONE, Some(&input));
    let evaluation = report.policy.as_ref().unwrap();
    let injection = evaluation.injection.as_ref().unwrap();
    assert_eq!(
        (format!("{:?}", injection.mode), injection.reason.as_str()),
        ("Admission".to_string(), "AdmissionPolicyInstalled")
    );
    let web = &evaluation.workloads[0];
    assert_eq!(format!("{:?}", web.injection), "Some(Admission)");
    assert!(!web.changes_template, "nothing is written to the template");
    assert_eq!(
        web.decision.would[0],
        format!(
            "evict {} (zone ap-northeast-2c -> ap-northeast-2a)",
            web.plan.moves[0].pod
        ),
        "no injection write: {:?}",
        web.decision.would
    );
    let text = render(&report, OutputFormat::Table).unwrap();
    assert!(
        text.contains("  injection: Admission (AdmissionPolicyInstalled: "),
        "{text}"
    );
    assert!(
        text.contains("    admission adds to each new pod: topology.kubernetes.io/zone maxSkew 1 ScheduleAnyway; kubernetes.io/hostname maxSkew 1 ScheduleAnyway + preferred hostname anti-affinity (nothing is written to the workload)\n"),
        "{text}"
    );

    // The table shows the mode the governing policy reports for each workload it adds to.
    let mut governing = policy.clone();
    governing.metadata.namespace = Some(NS.into());
    governing.status = Some(
        serde_json::from_value(json!({"workloads": [
            {"kind": "Deployment", "name": "web", "replicas": 2, "balanced": false,
             "injection": "Admission"}]}))
        .unwrap(),
    );
    state.policies = vec![governing];
    let report = build_report(&state, ZONE, None);
    let text = render(&report, OutputFormat::Table).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header.contains("WORST DOMAIN LOSS") && header.ends_with("  INJECTION"),
        "{text}"
    );
    let web_row = text.lines().find(|l| l.contains(" web ")).unwrap();
    assert!(web_row.ends_with("SPOF  Admission"), "{web_row}");
    let redis_row = text.lines().find(|l| l.contains("redis-master")).unwrap();
    assert!(redis_row.ends_with(" -"), "{redis_row}");
}

/// `--fail-on`'s findings, from the report alone: every single point of failure, every workload
/// over its maxSkew, named by cluster when there are several; nothing when not asked.
#[test]
fn fail_on_names_what_it_finds_per_cluster() {
    use skewguard::report::{ClusterReport, findings};
    use skewguard::shell::cli::FailOn;
    let one = [ClusterReport {
        cluster: "prod-eu".into(),
        report: petclinic_report(),
    }];
    assert_eq!(
        findings(&one, &[FailOn::Spof, FailOn::Unbalanced]),
        [
            "3 single point(s) of failure: Deployment petclinic/web, StatefulSet petclinic/redis-master, Rollout petclinic/was",
            "2 workload(s) over their maxSkew: Deployment petclinic/web, Rollout petclinic/was",
        ]
    );
    assert!(findings(&one, &[]).is_empty());
    let two = [
        one[0].clone(),
        ClusterReport {
            cluster: "prod-us".into(),
            report: petclinic_report(),
        },
    ];
    let found = findings(&two, &[FailOn::Unbalanced]);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].starts_with("4 workload(s) over their maxSkew: prod-eu: Deployment petclinic/web"),
        "{found:?}"
    );
    // Several clusters print as one table, CLUSTER first; JSON as {"clusters": [...]}.
    let table = skewguard::report::render::render_clusters(&two, OutputFormat::Table).unwrap();
    assert!(table.starts_with("CLUSTER  NAMESPACE  KIND"), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("prod-us  petclinic"))
            .count(),
        3
    );
    let json: Value = serde_json::from_str(
        &skewguard::report::render::render_clusters(&two, OutputFormat::Json).unwrap(),
    )
    .unwrap();
    assert_eq!(json["clusters"][1]["cluster"], "prod-us");
    assert_eq!(json["clusters"][1]["topologyKey"], ZONE);
}

#[test]
fn a_cordoned_zone_is_reported_out_and_a_policy_shows_its_zones() {
    // The drill: every node of ap-northeast-2a cordoned. As the scheduler counts it (2a is no
    // domain under nodeTaintsPolicy Honor) the skew is fine; the report says 2a is Out.
    let mut state = petclinic();
    state.nodes[0].spec = Some(
        serde_json::from_value(json!({"unschedulable": true, "taints": [
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}))
        .unwrap(),
    );
    let report = build_report(&state, ZONE, None);
    let zones: Vec<(String, String)> = (report.zones.iter())
        .map(|z| (z.domain.clone(), z.health.as_str().to_string()))
        .collect();
    assert_eq!(
        zones,
        [
            ("ap-northeast-2a".to_string(), "Out".to_string()),
            ("ap-northeast-2c".to_string(), "Healthy".to_string())
        ]
    );
    let text = render(&report, OutputFormat::Table).unwrap();
    assert!(
        text.contains(
            "zones that cannot take pods (not counted by the scheduler):\n  \
             ap-northeast-2a Out (NodesCordoned: 0 of 1 node(s) can take pods)\n"
        ),
        "{text}"
    );
    let v: Value = serde_json::from_str(&render(&report, OutputFormat::Json).unwrap()).unwrap();
    assert_eq!(v["zones"][0]["reason"], "NodesCordoned");
    // Healthy zones only: nothing about zones in the table.
    let healthy = render(&petclinic_report(), OutputFormat::Table).unwrap();
    assert!(!healthy.contains("cannot take pods"), "{healthy}");

    // Under a policy: its zones, with what its status remembers (Out since then).
    let policy = sample_policy("petclinic-hapolicy.yaml");
    let input = policy_in_scope(&policy, &Scope::Namespace(NS.into()), "default").unwrap();
    let report = build_report(&state, ZONE, Some(&input));
    let evaluation = report.policy.as_ref().unwrap();
    assert!(
        (evaluation.zones.iter())
            .any(|z| z.domain == "ap-northeast-2a" && z.reason == "NodesCordoned"),
        "{:?}",
        evaluation.zones
    );
    let text = render(&report, OutputFormat::Table).unwrap();
    assert!(
        text.contains("  zones: zone ap-northeast-2a Out (NodesCordoned, since "),
        "{text}"
    );
}
