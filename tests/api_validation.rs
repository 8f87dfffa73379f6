//! The HAPolicy contract as the API server will enforce it: the generated CRD schema carries the
//! documented bounds, enums and defaults, and every CEL rule accepts and rejects what it should
//! (evaluated client-side with kube's `cel` feature against the generated openAPIV3Schema).

use std::collections::BTreeSet;

use kube::core::cel::{Validator, apply_defaults, compile_schema, estimate_rule_cost};
use serde_json::{Value, json};
use skewguard::api::{
    HAPolicy, HAPolicySpec, HostAntiAffinity, NodeInclusionPolicy, RebalanceSpec,
    RebalanceStrategy, ScaleInSpec, SpreadEntry, WhenUnsatisfiable, WorkloadKind, crd,
};

const UNIQUE_SPREAD: &str =
    "spread entries must have unique (topologyKey, whenUnsatisfiable) pairs";
const MIN_DOMAINS: &str =
    "minDomains is only allowed with whenUnsatisfiable: DoNotSchedule or Adaptive";
const ADAPTIVE_ALONE: &str = "an Adaptive entry must be the only entry for its topologyKey (it is published as DoNotSchedule or ScheduleAnyway)";
const ADAPTIVE_HOSTNAME: &str =
    "whenUnsatisfiable: Adaptive follows zone health; kubernetes.io/hostname has a domain per node";
const ADAPTIVE_TEMPLATE: &str = "whenUnsatisfiable: Adaptive needs admission mode (injection Admission or Auto): switching a template's constraint would roll the workload out";
const UNIQUE_EXPECTED: &str = "expectedDomains must have one entry per topologyKey";
const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

fn schema() -> Value {
    let crd = crd();
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema.expect("the CRD has an openAPIV3Schema")).unwrap()
}

/// The schema node at a JSON pointer into the openAPIV3Schema, e.g. `/properties/spec`.
fn node(pointer: &str) -> Value {
    schema()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("schema has no {pointer}"))
        .clone()
}

fn spec_prop(path: &str) -> Value {
    node(&format!("/properties/spec/properties/{path}"))
}

fn spread_prop(field: &str) -> Value {
    spec_prop(&format!("spread/items/properties/{field}"))
}

fn policy(spread: Value) -> Value {
    json!({
        "apiVersion": "skewguard.dev/v1alpha1",
        "kind": "HAPolicy",
        "metadata": {"name": "petclinic", "namespace": "petclinic"},
        "spec": {"selector": {"matchLabels": {"app": "petclinic"}}, "spread": spread},
    })
}

/// The CEL failure messages for an object, empty when every rule holds.
fn cel_failures(object: &Value) -> Vec<String> {
    match Validator::new().validate(&schema(), object, None) {
        Ok(()) => vec![],
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|e| e.message.clone())
            .collect(),
    }
}

fn assert_accepted(spread: Value) {
    let failures = cel_failures(&policy(spread.clone()));
    assert!(failures.is_empty(), "{spread} rejected: {failures:?}");
}

fn assert_rejected(spread: Value, message: &str) {
    let failures = cel_failures(&policy(spread.clone()));
    assert_eq!(failures, vec![message.to_string()], "for spread {spread}");
}

// ---- CEL: unique (topologyKey, whenUnsatisfiable) ----

#[test]
fn duplicate_key_and_when_unsatisfiable_is_rejected() {
    assert_rejected(
        json!([
            {"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"},
            {"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 2},
        ]),
        UNIQUE_SPREAD,
    );
}

#[test]
fn duplicate_through_the_default_when_unsatisfiable_is_rejected() {
    // The API server applies defaults before CEL, so an omitted whenUnsatisfiable is ScheduleAnyway.
    assert_rejected(
        json!([
            {"topologyKey": ZONE},
            {"topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
        ]),
        UNIQUE_SPREAD,
    );
}

#[test]
fn same_key_with_different_when_unsatisfiable_is_accepted() {
    assert_accepted(json!([
        {"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 1},
        {"topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 2},
    ]));
}

#[test]
fn distinct_keys_are_accepted() {
    assert_accepted(json!([{"topologyKey": ZONE}, {"topologyKey": HOST}]));
}

// ---- CEL: one expectedDomains entry per key ----

fn with_expected(expected: Value) -> Value {
    let mut p = policy(json!([{"topologyKey": ZONE}]));
    p["spec"]["expectedDomains"] = expected;
    p
}

#[test]
fn two_expected_domain_lists_for_one_key_are_rejected() {
    let failures = cel_failures(&with_expected(json!([
        {"topologyKey": ZONE, "domains": ["a", "b"]},
        {"topologyKey": ZONE, "domains": ["c"]},
    ])));
    assert_eq!(failures, vec![UNIQUE_EXPECTED.to_string()]);
}

#[test]
fn expected_domains_per_key_are_accepted() {
    let failures = cel_failures(&with_expected(json!([
        {"topologyKey": ZONE, "domains": ["a", "b", "c"]},
        {"topologyKey": "rack", "domains": ["r1"]},
    ])));
    assert!(failures.is_empty(), "{failures:?}");
}

// ---- CEL: minDomains only with DoNotSchedule ----

#[test]
fn min_domains_with_schedule_anyway_is_rejected() {
    assert_rejected(
        json!([{"topologyKey": ZONE, "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2}]),
        MIN_DOMAINS,
    );
}

#[test]
fn min_domains_with_the_default_when_unsatisfiable_is_rejected() {
    assert_rejected(json!([{"topologyKey": ZONE, "minDomains": 2}]), MIN_DOMAINS);
}

#[test]
fn min_domains_with_do_not_schedule_is_accepted() {
    assert_accepted(json!([
        {"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3},
    ]));
}

#[test]
fn min_domains_with_adaptive_is_accepted() {
    assert_accepted(json!([
        {"topologyKey": ZONE, "whenUnsatisfiable": "Adaptive", "minDomains": 3},
        {"topologyKey": HOST, "maxSkew": 2},
    ]));
}

// ---- CEL: Adaptive ----

#[test]
fn an_adaptive_entry_beside_another_for_its_key_is_rejected() {
    assert_rejected(
        json!([
            {"topologyKey": ZONE, "whenUnsatisfiable": "Adaptive"},
            {"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "maxSkew": 2},
        ]),
        ADAPTIVE_ALONE,
    );
    // The same key twice as Adaptive breaks both rules.
    let failures = cel_failures(&policy(json!([
        {"topologyKey": ZONE, "whenUnsatisfiable": "Adaptive"},
        {"topologyKey": ZONE, "whenUnsatisfiable": "Adaptive", "maxSkew": 2},
    ])));
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.contains(&ADAPTIVE_ALONE.to_string()),
        "{failures:?}"
    );
}

#[test]
fn adaptive_on_the_hostname_key_is_rejected() {
    assert_rejected(
        json!([{"topologyKey": HOST, "whenUnsatisfiable": "Adaptive"}]),
        ADAPTIVE_HOSTNAME,
    );
}

#[test]
fn adaptive_in_template_mode_is_rejected_and_accepted_otherwise() {
    let spread = json!([{"topologyKey": ZONE, "whenUnsatisfiable": "Adaptive", "minDomains": 2}]);
    let with = |injection: &str| {
        let mut p = policy(spread.clone());
        p["spec"]["injection"] = json!(injection);
        cel_failures(&p)
    };
    assert_eq!(with("Template"), vec![ADAPTIVE_TEMPLATE.to_string()]);
    assert!(with("Admission").is_empty());
    assert!(with("Auto").is_empty());
    // Template mode without Adaptive entries is fine.
    let mut p = policy(json!([{"topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule"}]));
    p["spec"]["injection"] = json!("Template");
    assert!(cel_failures(&p).is_empty());
}

#[test]
fn the_field_examples_are_accepted() {
    // petclinic (design/hapolicy-api.md) and user-service (mission/scenarios.md).
    assert_accepted(json!([
        {"topologyKey": ZONE, "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway",
         "nodeAffinityPolicy": "Honor", "nodeTaintsPolicy": "Honor"},
        {"topologyKey": HOST, "maxSkew": 1},
    ]));
    assert_accepted(json!([
        {"topologyKey": ZONE, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 3},
        {"topologyKey": HOST, "maxSkew": 2, "whenUnsatisfiable": "ScheduleAnyway"},
    ]));
}

// ---- every CEL rule is tested and cheap enough for the API server ----

/// Every (JSON pointer, rule, message) in the schema.
fn cel_rules(schema: &Value, pointer: &str, found: &mut Vec<(String, String, String)>) {
    if let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            let text = |key: &str| rule[key].as_str().unwrap_or_default().to_string();
            found.push((pointer.to_string(), text("rule"), text("message")));
        }
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            cel_rules(child, &format!("{pointer}/properties/{name}"), found);
        }
    }
    if let Some(items) = schema.get("items") {
        cel_rules(items, &format!("{pointer}/items"), found);
    }
}

fn all_cel_rules() -> Vec<(String, String, String)> {
    let mut found = vec![];
    cel_rules(&schema(), "", &mut found);
    found
}

#[test]
fn every_cel_rule_has_tests_here() {
    let messages: BTreeSet<String> = all_cel_rules().into_iter().map(|(_, _, m)| m).collect();
    let tested: BTreeSet<String> = [
        UNIQUE_SPREAD,
        MIN_DOMAINS,
        UNIQUE_EXPECTED,
        ADAPTIVE_ALONE,
        ADAPTIVE_HOSTNAME,
        ADAPTIVE_TEMPLATE,
    ]
    .map(String::from)
    .into();
    assert_eq!(
        messages, tested,
        "a CEL rule was added or changed: add accepting and rejecting examples to this file"
    );
}

/// Lists and strings a CEL rule can reach must be bounded, or the API server's cost estimate
/// assumes request-sized values and refuses the CRD. A rule reaches the properties it names (a
/// rule on the whole spec names only the fields it reads).
fn assert_bounded_for(rule: &str, schema: &Value, pointer: &str) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return assert_bounded(schema, pointer);
    };
    for (name, child) in properties {
        if rule.contains(name.as_str()) {
            assert_bounded(child, &format!("{pointer}/properties/{name}"));
        }
    }
}

fn assert_bounded(schema: &Value, pointer: &str) {
    match schema["type"].as_str() {
        Some("array") => assert!(
            schema.get("maxItems").is_some(),
            "{pointer} has no maxItems"
        ),
        Some("string") => assert!(
            schema.get("maxLength").is_some(),
            "{pointer} has no maxLength"
        ),
        _ => {}
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            assert_bounded(child, &format!("{pointer}/properties/{name}"));
        }
    }
    if let Some(items) = schema.get("items") {
        assert_bounded(items, &format!("{pointer}/items"));
    }
}

#[test]
fn cel_rules_are_within_cost_budget() {
    let rules = all_cel_rules();
    assert!(!rules.is_empty());
    for (pointer, rule, _) in rules {
        let at = node(&pointer);
        assert_bounded_for(&rule, &at, &pointer);
        // (kube-cel's scope check flags comprehension variables as unknown, so only cost is asked.)
        let warnings = estimate_rule_cost(&rule, &compile_schema(&at));
        assert!(warnings.is_empty(), "{pointer}: {rule}: {warnings:?}");
    }
}

// ---- OpenAPI structure: required fields, bounds, enums ----

#[test]
fn selector_and_spread_are_required() {
    let required = node("/properties/spec/required");
    assert_eq!(required, json!(["selector", "spread"]));
    assert_eq!(spec_prop("spread/items/required"), json!(["topologyKey"]));
}

#[test]
fn spread_has_one_to_eight_entries() {
    let spread = spec_prop("spread");
    assert_eq!(spread["minItems"].as_u64(), Some(1));
    assert_eq!(spread["maxItems"].as_u64(), Some(8));
}

#[test]
fn topology_key_is_a_bounded_non_empty_string() {
    let key = spread_prop("topologyKey");
    assert_eq!(key["type"], "string");
    assert_eq!(key["minLength"].as_u64(), Some(1));
    assert_eq!(key["maxLength"].as_u64(), Some(317));
}

#[test]
fn counts_have_their_documented_minimum() {
    for (path, minimum) in [
        ("spread/items/properties/maxSkew", 1.0),
        ("spread/items/properties/minDomains", 1.0),
        ("rebalance/properties/maxDisruptions", 1.0),
        ("rebalance/properties/stabilizationSeconds", 0.0),
        ("rebalance/properties/cooldownSeconds", 0.0),
        ("zoneHealth/properties/recoveryWindowSeconds", 0.0),
    ] {
        let field = spec_prop(path);
        assert_eq!(field["type"], "integer", "{path}");
        assert_eq!(field["minimum"].as_f64(), Some(minimum), "{path}");
    }
}

#[test]
fn enums_are_plain_string_enums() {
    for (pointer, values) in [
        (
            "/properties/spec/properties/workloadKinds/items",
            &["Deployment", "StatefulSet", "Rollout"][..],
        ),
        (
            "/properties/spec/properties/spread/items/properties/whenUnsatisfiable",
            &["ScheduleAnyway", "DoNotSchedule", "Adaptive"],
        ),
        (
            "/properties/status/properties/admission/properties/workloads/items/properties/constraints/items/properties/whenUnsatisfiable",
            &["ScheduleAnyway", "DoNotSchedule"],
        ),
        (
            "/properties/spec/properties/injection",
            &["Auto", "Template", "Admission"],
        ),
        (
            "/properties/status/properties/zones/items/properties/health",
            &["Healthy", "Out", "Recovering"],
        ),
        (
            "/properties/spec/properties/spread/items/properties/nodeAffinityPolicy",
            &["Honor", "Ignore"],
        ),
        (
            "/properties/spec/properties/spread/items/properties/nodeTaintsPolicy",
            &["Honor", "Ignore"],
        ),
        (
            "/properties/spec/properties/hostAntiAffinity",
            &["None", "Preferred"],
        ),
        (
            "/properties/spec/properties/rebalance/properties/strategy",
            &["Evict", "RolloutRestart", "None"],
        ),
        (
            "/properties/status/properties/workloads/items/properties/rebalance/properties/state",
            &[
                "Idle",
                "Waiting",
                "Queued",
                "Provisioning",
                "Evicting",
                "Restarting",
                "BackingOff",
                "Blocked",
                "Degraded",
            ],
        ),
        (
            "/properties/status/properties/workloads/items/properties/kind",
            &["Deployment", "StatefulSet", "Rollout"],
        ),
    ] {
        let field = node(pointer);
        assert_eq!(field["type"], "string", "{pointer}");
        assert_eq!(field["enum"], json!(values), "{pointer}");
        for key in ["oneOf", "anyOf", "allOf"] {
            assert!(
                field.get(key).is_none(),
                "{pointer} is not structural: has {key}"
            );
        }
    }
}

#[test]
fn workload_kinds_is_a_set() {
    assert_eq!(spec_prop("workloadKinds")["x-kubernetes-list-type"], "set");
}

// ---- defaults: the API server fills them, so they must be in the schema ----

#[test]
fn every_documented_default_is_in_the_schema() {
    for (path, default) in [
        (
            "workloadKinds",
            json!(["Deployment", "StatefulSet", "Rollout"]),
        ),
        ("spread/items/properties/maxSkew", json!(1)),
        (
            "spread/items/properties/whenUnsatisfiable",
            json!("ScheduleAnyway"),
        ),
        ("spread/items/properties/nodeAffinityPolicy", json!("Honor")),
        ("spread/items/properties/nodeTaintsPolicy", json!("Honor")),
        ("hostAntiAffinity", json!("None")),
        ("injectConstraints", json!(true)),
        // `{}` at the parent, so the nested defaults below apply when rebalance is omitted.
        ("rebalance", json!({})),
        ("rebalance/properties/strategy", json!("Evict")),
        ("rebalance/properties/stabilizationSeconds", json!(30)),
        ("rebalance/properties/cooldownSeconds", json!(300)),
        ("rebalance/properties/maxDisruptions", json!(1)),
        ("rebalance/properties/requireNodeFit", json!(true)),
        ("scaleIn", json!({})),
        ("scaleIn/properties/deletionCost", json!(true)),
        ("zoneHealth", json!({})),
        ("zoneHealth/properties/recoveryWindowSeconds", json!(120)),
        ("paused", json!(false)),
    ] {
        assert_eq!(
            spec_prop(path).get("default"),
            Some(&default),
            "default of {path}"
        );
    }
    assert!(spread_prop("minDomains").get("default").is_none());
}

/// The object as the API server stores it. The API server also defaults inside a value it just
/// defaulted (`rebalance: {}` gets its nested defaults); kube-cel's `apply_defaults` recurses only
/// into fields that were present, so it is applied until nothing changes.
fn server_defaults(object: &Value) -> Value {
    let schema = schema();
    let mut current = object.clone();
    loop {
        let next = apply_defaults(&schema, &current);
        if next == current {
            return current;
        }
        current = next;
    }
}

#[test]
fn schema_defaults_and_serde_defaults_agree() {
    // What the API server stores (schema defaults applied) must read back as the same spec the
    // operator builds from the raw object (serde defaults), or the two would disagree on behaviour.
    let raw = policy(json!([{"topologyKey": ZONE}, {"topologyKey": HOST, "maxSkew": 2}]));
    let defaulted = server_defaults(&raw);
    assert_ne!(defaulted, raw, "the schema should have filled defaults");
    let from_raw: HAPolicy = serde_json::from_value(raw).unwrap();
    let from_server: HAPolicy = serde_json::from_value(defaulted.clone()).unwrap();
    assert_eq!(from_raw, from_server);
    assert_eq!(
        defaulted["spec"],
        serde_json::to_value(&from_raw.spec).unwrap()
    );
}

// ---- CRD metadata ----

#[test]
fn names_scope_and_status_subresource() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("hapolicies.skewguard.dev")
    );
    assert_eq!(crd.spec.group, "skewguard.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "HAPolicy");
    assert_eq!(crd.spec.names.plural, "hapolicies");
    assert_eq!(crd.spec.names.short_names, Some(vec!["hap".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some(), "status subresource");
}

#[test]
fn printer_columns() {
    let crd = crd();
    let columns = crd.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap_or_default();
    let columns: Vec<(&str, &str, &str)> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        vec![
            ("Workloads", "integer", ".status.workloadCount"),
            ("Unbalanced", "integer", ".status.unbalancedCount"),
            ("MaxSkew", "integer", ".status.maxObservedSkew"),
            (
                "Ready",
                "string",
                r#".status.conditions[?(@.type=="Ready")].status"#
            ),
            (
                "Balanced",
                "string",
                r#".status.conditions[?(@.type=="Balanced")].status"#
            ),
            ("Age", "date", ".metadata.creationTimestamp"),
        ]
    );
}

// ---- serde ----

#[test]
fn minimal_policy_reads_with_all_documented_defaults() {
    let yaml = r#"
selector:
  matchLabels:
    app: petclinic
spread:
  - topologyKey: topology.kubernetes.io/zone
"#;
    let spec: HAPolicySpec = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(spec.workload_kinds, WorkloadKind::all());
    assert_eq!(
        spec.spread,
        vec![SpreadEntry {
            topology_key: ZONE.to_string(),
            max_skew: 1,
            when_unsatisfiable: WhenUnsatisfiable::ScheduleAnyway,
            min_domains: None,
            node_affinity_policy: NodeInclusionPolicy::Honor,
            node_taints_policy: NodeInclusionPolicy::Honor,
        }]
    );
    assert_eq!(spec.spread[0], SpreadEntry::new(ZONE));
    assert_eq!(spec.host_anti_affinity, HostAntiAffinity::None);
    assert!(spec.inject_constraints);
    assert_eq!(
        spec.rebalance,
        RebalanceSpec {
            strategy: RebalanceStrategy::Evict,
            stabilization_seconds: 30,
            cooldown_seconds: 300,
            max_disruptions: 1,
            require_node_fit: true,
            provisioning: skewguard::api::ProvisioningSpec {
                enabled: false,
                timeout_seconds: 600,
            },
        }
    );
    assert!(spec.expected_domains.is_empty());
    assert_eq!(spec.rebalance, RebalanceSpec::default());
    assert!(spec.scale_in.deletion_cost);
    assert_eq!(spec.scale_in, ScaleInSpec::default());
    assert!(!spec.paused);
}

#[test]
fn deletion_cost_is_on_by_default_and_can_be_turned_off() {
    // The API server fills `scaleIn: {deletionCost: true}` when the field is omitted.
    let defaulted = server_defaults(&policy(json!([{"topologyKey": ZONE}])));
    assert_eq!(defaulted["spec"]["scaleIn"], json!({"deletionCost": true}));
    let mut off = policy(json!([{"topologyKey": ZONE}]));
    off["spec"]["scaleIn"] = json!({"deletionCost": false});
    assert!(cel_failures(&off).is_empty());
    let read: HAPolicy = serde_json::from_value(server_defaults(&off)).unwrap();
    assert!(!read.spec.scale_in.deletion_cost);
    assert_eq!(
        spec_prop("scaleIn/properties/deletionCost")["type"],
        "boolean"
    );
    let empty: HAPolicySpec =
        serde_yaml::from_str("selector: {}\nspread: [{topologyKey: x}]\nscaleIn: {}\n").unwrap();
    assert!(empty.scale_in.deletion_cost);
}

#[test]
fn a_partial_rebalance_keeps_the_other_defaults() {
    let spec: HAPolicySpec = serde_yaml::from_str(
        "selector: {}\nspread: [{topologyKey: kubernetes.io/hostname}]\nrebalance: {strategy: RolloutRestart}\n",
    )
    .unwrap();
    assert_eq!(
        spec.rebalance,
        RebalanceSpec {
            strategy: RebalanceStrategy::RolloutRestart,
            ..RebalanceSpec::default()
        }
    );
}

#[test]
fn status_round_trips_and_omits_what_is_unknown() {
    let status = json!({
        "observedGeneration": 4,
        "conditions": [{"type": "Balanced", "status": "False", "reason": "SkewExceeded",
                        "message": "web: zone skew 2 > 1", "lastTransitionTime": "2026-01-13T03:40:00Z"}],
        "workloadCount": 3,
        "unbalancedCount": 1,
        "maxObservedSkew": 2,
        "workloads": [
            {"kind": "Deployment", "name": "web", "replicas": 2, "balanced": false,
             "constraints": [{"topologyKey": ZONE, "maxSkew": 1, "skew": 2,
                              "domains": {"ap-northeast-2a": 0, "ap-northeast-2c": 2}}],
             "zoneLoss": {"domain": "ap-northeast-2c", "podsLost": 2, "fraction": 1.0},
             "rebalance": {"state": "Waiting", "reason": "Stabilizing",
                           "lastActionTime": "2026-01-13T03:40:00Z", "actions": 1},
             "message": "zone skew 2 > 1 since 35s"},
            {"kind": "StatefulSet", "name": "redis-master", "replicas": 1, "balanced": true,
             "constraints": [{"topologyKey": HOST, "maxSkew": 1, "skew": 0}],
             "rebalance": {"state": "Idle", "actions": 0}},
        ],
    });
    let typed: skewguard::api::HAPolicyStatus = serde_json::from_value(status.clone()).unwrap();
    assert_eq!(serde_json::to_value(&typed).unwrap(), status);
}
