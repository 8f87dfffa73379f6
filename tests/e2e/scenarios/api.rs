//! The HAPolicy API as the real API server enforces it: defaults, validation, printer columns.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::harness::{Ctx, hapolicy_resource};

fn policy(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "skewguard.dev/v1alpha1",
        "kind": "HAPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

fn zone_entry() -> Value {
    json!({"topologyKey": "topology.kubernetes.io/zone"})
}

pub async fn crd_installs_and_server_applies_defaults(ctx: Ctx) {
    let api = ctx.dynamic(&hapolicy_resource());
    let minimal = policy(
        "minimal",
        json!({"selector": {"matchLabels": {"app": "petclinic"}}, "spread": [zone_entry()]}),
    );
    api.create(&PostParams::default(), &minimal)
        .await
        .expect("create a minimal HAPolicy");
    let stored = api.get("minimal").await.expect("read the HAPolicy back");
    let spec = &stored.data["spec"];
    let expected = json!({
        "selector": {"matchLabels": {"app": "petclinic"}},
        "workloadKinds": ["Deployment", "StatefulSet", "Rollout"],
        "spread": [{
            "topologyKey": "topology.kubernetes.io/zone",
            "maxSkew": 1,
            "whenUnsatisfiable": "ScheduleAnyway",
            "nodeAffinityPolicy": "Honor",
            "nodeTaintsPolicy": "Honor",
        }],
        "hostAntiAffinity": "None",
        "injectConstraints": true,
        "injection": "Auto",
        "rebalance": {
            "strategy": "Evict",
            "stabilizationSeconds": 30,
            "cooldownSeconds": 300,
            "maxDisruptions": 1,
            "requireNodeFit": true,
            "provisioning": {"enabled": false, "timeoutSeconds": 600},
        },
        "scaleIn": {"deletionCost": true},
        "zoneHealth": {"recoveryWindowSeconds": 120},
        "paused": false,
    });
    assert_eq!(
        spec, &expected,
        "the API server should fill every documented default"
    );

    // The short name and the printer columns.
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client.clone());
    let crd = crds
        .get("hapolicies.skewguard.dev")
        .await
        .expect("get the CRD");
    assert!(
        crd.spec
            .names
            .short_names
            .as_deref()
            .unwrap_or_default()
            .contains(&"hap".to_string()),
        "short name hap"
    );
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        columns,
        [
            "Workloads",
            "Unbalanced",
            "MaxSkew",
            "Ready",
            "Balanced",
            "Age"
        ]
    );
    if ctx.kubectl.is_some() {
        let out = ctx.kubectl(&["get", "hap", "-n", &ctx.ns]);
        assert!(
            out.status.success(),
            "kubectl get hap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let header: Vec<&str> = text
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            [
                "NAME",
                "WORKLOADS",
                "UNBALANCED",
                "MAXSKEW",
                "READY",
                "BALANCED",
                "AGE"
            ],
            "kubectl get hap output:\n{text}"
        );
        assert!(
            text.contains("minimal"),
            "kubectl get hap lists the policy:\n{text}"
        );
    }
}

pub async fn invalid_policies_are_rejected(ctx: Ctx) {
    let api = ctx.dynamic(&hapolicy_resource());
    let selector = json!({"matchLabels": {"app": "petclinic"}});
    let zone = |extra: Value| {
        let mut e = zone_entry();
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let nine: Vec<Value> = (0..9)
        .map(|i| json!({"topologyKey": format!("example.com/key-{i}")}))
        .collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "max-skew-zero",
            json!({"selector": selector, "spread": [zone(json!({"maxSkew": 0}))]}),
            "should be greater than or equal to 1",
        ),
        (
            "min-domains-schedule-anyway",
            json!({"selector": selector, "spread": [zone(json!({"minDomains": 2, "whenUnsatisfiable": "ScheduleAnyway"}))]}),
            "minDomains is only allowed with whenUnsatisfiable: DoNotSchedule",
        ),
        (
            "min-domains-default-when-unsatisfiable",
            json!({"selector": selector, "spread": [zone(json!({"minDomains": 2}))]}),
            "minDomains is only allowed with whenUnsatisfiable: DoNotSchedule",
        ),
        (
            "empty-spread",
            json!({"selector": selector, "spread": []}),
            "should have at least 1 items",
        ),
        (
            "nine-spread-entries",
            json!({"selector": selector, "spread": nine}),
            "must have at most 8 items",
        ),
        (
            "duplicate-spread",
            json!({"selector": selector, "spread": [zone(json!({})), zone(json!({"maxSkew": 2}))]}),
            "spread entries must have unique (topologyKey, whenUnsatisfiable) pairs",
        ),
        (
            "missing-selector",
            json!({"spread": [zone_entry()]}),
            "spec.selector: Required value",
        ),
        (
            "unknown-strategy",
            json!({"selector": selector, "spread": [zone_entry()], "rebalance": {"strategy": "Drain"}}),
            "Unsupported value: \"Drain\": supported values: \"Evict\", \"RolloutRestart\", \"None\"",
        ),
        (
            "max-disruptions-zero",
            json!({"selector": selector, "spread": [zone_entry()], "rebalance": {"maxDisruptions": 0}}),
            "spec.rebalance.maxDisruptions: Invalid value: 0: spec.rebalance.maxDisruptions in body should be greater than or equal to 1",
        ),
    ];
    let mut problems = Vec::new();
    for (name, spec, wanted) in cases {
        let object = policy(name, spec);
        // `report --policy`'s offline check refuses it too, with what the API server says.
        let offline = skewguard::api::validation::validate(&serde_json::to_value(&object).unwrap());
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => problems.push(format!("{name}: accepted, should be rejected ({wanted})")),
            Err(kube::Error::Api(status)) => {
                if status.code != 422 || !status.message.contains(wanted) {
                    problems.push(format!(
                        "{name}: rejected with {} {:?}, wanted 422 containing {wanted:?}",
                        status.code, status.message
                    ));
                }
                match offline {
                    Ok(()) => problems.push(format!("{name}: the offline check accepts it")),
                    Err(violations) => {
                        for v in violations {
                            if !status.message.contains(&v.path)
                                || !status.message.contains(&v.message)
                            {
                                problems.push(format!(
                                    "{name}: offline `{v}` is not what the API server says: {:?}",
                                    status.message
                                ));
                            }
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    // A valid policy with every field set is accepted (the cases above fail for their one reason).
    let full = json!({
        "selector": selector,
        "workloadKinds": ["Deployment", "Rollout"],
        "spread": [
            zone(json!({"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2})),
            zone(json!({"whenUnsatisfiable": "ScheduleAnyway"})),
            {"topologyKey": "kubernetes.io/hostname", "maxSkew": 2},
        ],
        "hostAntiAffinity": "Preferred",
        "rebalance": {"strategy": "RolloutRestart", "maxDisruptions": 2, "cooldownSeconds": 0},
        "paused": true,
    });
    let valid = policy("valid", full);
    if let Err(violations) =
        skewguard::api::validation::validate(&serde_json::to_value(&valid).unwrap())
    {
        problems.push(format!(
            "valid: the offline check refuses it: {violations:?}"
        ));
    }
    if let Err(e) = api.create(&PostParams::default(), &valid).await {
        problems.push(format!("valid: rejected: {e}"));
    }
    assert!(
        problems.is_empty(),
        "validation mismatches:\n{}",
        problems.join("\n")
    );
}
