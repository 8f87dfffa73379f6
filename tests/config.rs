//! The install tree under config/ (and the generated CRD under crds/): every kustomization points
//! at files that exist, every object is valid for its kind, the samples pass the CRD's rules, the
//! operator's ClusterRole grants exactly what it needs, and the manager is locked down.
//! When kubectl is available, `kubectl kustomize config/default` must build, and its output is
//! checked the same way.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::core::cel::Validator;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use skewguard::api::HAPolicy;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every .yaml/.yml file below `dir`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The non-empty documents of a multi-document YAML text.
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn is_kustomization(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()) == Some("kustomization.yaml")
}

/// A kustomize configuration file a kustomization names (`*_replacement.yaml`): not an object.
fn is_kustomize_config(path: &Path) -> bool {
    (path.file_name().and_then(|n| n.to_str())).is_some_and(|n| n.ends_with("_replacement.yaml"))
}

/// Every object of every manifest under config/ and crds/ (kustomization files excluded).
fn objects() -> Vec<(String, Value)> {
    [root().join("config"), root().join("crds")]
        .iter()
        .flat_map(|d| yaml_files(d))
        .filter(|p| !is_kustomization(p) && !is_kustomize_config(p))
        .flat_map(|p| {
            let origin = p.strip_prefix(root()).unwrap().display().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            documents(&text, &origin)
                .into_iter()
                .map(move |v| (origin.clone(), v))
        })
        .collect()
}

fn kind_of(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

/// Deserializes into the typed object and back: any field the type does not know (a typo, a
/// wrong nesting) makes the round trip differ.
fn round_trips<K: DeserializeOwned + serde::Serialize>(origin: &str, v: &Value) -> K {
    let typed: K = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{origin}: not a valid {}: {e}", kind_of(v)));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(path) = first_difference(v, &back, String::new()) {
        panic!(
            "{origin}: {} {}: {path} is not a field of its type (or has the wrong shape)",
            kind_of(v),
            name_of(v)
        );
    }
    typed
}

/// The first path where two values differ; numbers compare by value (1 == 1.0).
fn first_difference(written: &Value, typed: &Value, path: String) -> Option<String> {
    match (written, typed) {
        (Value::Number(a), Value::Number(b)) => (a.as_f64() != b.as_f64()).then_some(path),
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .find_map(|(k, av)| match b.get(k) {
                Some(bv) => first_difference(av, bv, format!("{path}.{k}")),
                None => Some(format!("{path}.{k}")),
            })
            .or_else(|| {
                b.keys()
                    .find(|k| !a.contains_key(*k))
                    .map(|k| format!("{path}.{k} (added by the type)"))
            }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{path}[{i}]"))),
        (a, b) => (a != b).then_some(path),
    }
}

fn crd_schema() -> Value {
    let crd = skewguard::api::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).unwrap()
}

/// Checks one object against its kind's type; returns whether the kind is known.
fn check_object(origin: &str, v: &Value) -> bool {
    for field in ["apiVersion", "kind"] {
        assert!(v[field].is_string(), "{origin}: an object without {field}");
    }
    assert!(
        !name_of(v).is_empty(),
        "{origin}: {} without metadata.name",
        kind_of(v)
    );
    match (v["apiVersion"].as_str().unwrap(), kind_of(v)) {
        ("apps/v1", "Deployment") => drop(round_trips::<Deployment>(origin, v)),
        ("v1", "ServiceAccount") => drop(round_trips::<ServiceAccount>(origin, v)),
        ("v1", "Service") => drop(round_trips::<Service>(origin, v)),
        ("v1", "Namespace") => drop(round_trips::<Namespace>(origin, v)),
        ("policy/v1", "PodDisruptionBudget") => drop(round_trips::<PodDisruptionBudget>(origin, v)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            drop(round_trips::<ClusterRole>(origin, v))
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            drop(round_trips::<ClusterRoleBinding>(origin, v))
        }
        ("rbac.authorization.k8s.io/v1", "Role") => drop(round_trips::<Role>(origin, v)),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            drop(round_trips::<RoleBinding>(origin, v))
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy") => {
            drop(round_trips::<ValidatingAdmissionPolicy>(origin, v))
        }
        ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding") => {
            drop(round_trips::<ValidatingAdmissionPolicyBinding>(origin, v))
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => drop(round_trips::<NetworkPolicy>(origin, v)),
        ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema") => {
            drop(round_trips::<FlowSchema>(origin, v))
        }
        ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration") => {
            drop(round_trips::<PriorityLevelConfiguration>(origin, v))
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            drop(round_trips::<CustomResourceDefinition>(origin, v))
        }
        ("skewguard.dev/v1alpha1", "HAPolicy") => {
            let policy: HAPolicy = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("{origin}: not a valid HAPolicy: {e}"));
            assert!(
                policy.metadata.namespace.is_some(),
                "{origin}: no namespace"
            );
            if let Err(errors) = Validator::new().validate(&crd_schema(), v, None) {
                let messages: Vec<String> = errors
                    .as_slice()
                    .iter()
                    .map(|e| e.message.clone())
                    .collect();
                panic!("{origin}: the CRD's rules reject it: {messages:?}");
            }
        }
        _ => return false,
    }
    true
}

#[test]
fn every_kustomization_points_at_existing_resources() {
    let kustomizations: Vec<PathBuf> = [root().join("config"), root().join("crds")]
        .iter()
        .flat_map(|d| yaml_files(d))
        .filter(|p| is_kustomization(p))
        .collect();
    assert!(kustomizations.len() >= 6, "{kustomizations:?}");
    for k in kustomizations {
        let text = std::fs::read_to_string(&k).unwrap();
        let v: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["kind"], "Kustomization", "{}", k.display());
        let dir = k.parent().unwrap();
        for resource in v["resources"].as_array().into_iter().flatten() {
            let resource = resource.as_str().expect("a resource is a path");
            let target = dir.join(resource);
            assert!(
                target.is_file() || target.join("kustomization.yaml").is_file(),
                "{}: resource {resource} does not exist",
                k.display()
            );
        }
    }
}

#[test]
fn every_object_is_valid_for_its_kind() {
    let objects = objects();
    let mut kinds = BTreeSet::new();
    for (origin, v) in &objects {
        if check_object(origin, v) {
            kinds.insert(kind_of(v).to_string());
        }
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "CustomResourceDefinition",
        "HAPolicy",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(kinds.contains(kind), "no {kind} under config/: {kinds:?}");
    }
}

#[test]
fn the_samples_are_the_documented_policies() {
    let samples: Vec<Value> = objects()
        .into_iter()
        .filter(|(o, _)| o.starts_with("config/samples/"))
        .map(|(_, v)| v)
        .collect();
    let names: BTreeSet<(&str, &str)> = samples
        .iter()
        .map(|v| (v["metadata"]["namespace"].as_str().unwrap(), name_of(v)))
        .collect();
    assert!(names.contains(&("petclinic", "petclinic")), "{names:?}");
    let three_zones = samples
        .iter()
        .find(|v| name_of(v) == "user-service")
        .expect("a three-zone example");
    assert_eq!(three_zones["spec"]["spread"][0]["minDomains"], 3);
}

fn manager_role() -> ClusterRole {
    let (origin, v) = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ClusterRole" && name_of(v) == "skewguard-manager")
        .expect("the manager ClusterRole");
    round_trips(&origin, &v)
}

/// (apiGroup, resource, verb) triples a role grants; a rule limited to some objects names its
/// resource `resource/name`.
fn grants(rules: &[k8s_openapi::api::rbac::v1::PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{rule:?}");
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let targets: Vec<String> = match &rule.resource_names {
                    Some(names) => names.iter().map(|n| format!("{resource}/{n}")).collect(),
                    None => vec![resource.clone()],
                };
                for target in targets {
                    for verb in &rule.verbs {
                        out.insert((group.clone(), target.clone(), verb.clone()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn no_role_has_wildcards_or_secrets() {
    for (origin, v) in objects() {
        if !matches!(kind_of(&v), "ClusterRole" | "Role") {
            continue;
        }
        let rules = v["rules"].as_array().cloned().unwrap_or_default();
        for rule in rules {
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                for item in rule[field].as_array().into_iter().flatten() {
                    let item = item.as_str().unwrap_or_default();
                    assert!(!item.contains('*'), "{origin}: wildcard in {field}");
                    assert!(item != "secrets", "{origin}: grants Secrets");
                }
            }
        }
    }
}

#[test]
fn the_manager_role_grants_exactly_what_the_operator_needs() {
    let read = ["get", "list", "watch"];
    let mut expected = BTreeSet::new();
    let mut allow = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                expected.insert((group.to_string(), r.to_string(), v.to_string()));
            }
        }
    };
    allow("skewguard.dev", &["hapolicies"], &read);
    // Status is written with merge patches only.
    allow("skewguard.dev", &["hapolicies/status"], &["get", "patch"]);
    allow("", &["pods", "nodes"], &read);
    allow("policy", &["poddisruptionbudgets"], &read);
    // Every workload kind the operator knows: watched, and patched (apply, restart).
    for kind in skewguard::core::workload::kinds() {
        allow(kind.group, &[kind.plural], &read);
        allow(kind.group, &[kind.plural], &["patch"]);
    }
    allow("", &["pods"], &["patch"]);
    allow("", &["pods/eviction"], &["create"]);
    allow("events.k8s.io", &["events"], &["create", "patch"]);
    // Room asked of the autoscaler before a move, and the zones NodePools allow.
    allow("", &["pods", "podtemplates"], &["create", "delete"]);
    allow(
        "autoscaling.x-k8s.io",
        &["capacitybuffers"],
        &["create", "delete"],
    );
    allow("karpenter.sh", &["nodepools"], &read);
    allow(
        "apiextensions.k8s.io",
        &[
            "customresourcedefinitions/rollouts.argoproj.io",
            "customresourcedefinitions/hapolicies.skewguard.dev",
            "customresourcedefinitions/nodepools.karpenter.sh",
            "customresourcedefinitions/capacitybuffers.autoscaling.x-k8s.io",
        ],
        &read,
    );
    // Admission mode: only reads the shipped admission objects, by name.
    let admission_policy = skewguard::core::injection::ADMISSION_POLICY;
    allow(
        "admissionregistration.k8s.io",
        &[
            &format!("mutatingadmissionpolicies/{admission_policy}"),
            &format!("mutatingadmissionpolicybindings/{admission_policy}"),
            &format!(
                "validatingadmissionpolicies/{}",
                skewguard::core::injection::TYPE_CHECK_POLICY
            ),
        ],
        &["get"],
    );
    assert_eq!(grants(&manager_role().rules.unwrap_or_default()), expected);
}

fn cluster_role(name: &str) -> ClusterRole {
    let (origin, v) = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ClusterRole" && name_of(v) == name)
        .unwrap_or_else(|| panic!("the ClusterRole {name}"));
    round_trips(&origin, &v)
}

/// Authenticated metrics: the operator may only create token and access reviews; scrapers need
/// only `get` on the non-resource URL `/metrics`.
#[test]
fn metrics_auth_roles_grant_reviews_and_metrics_reading_only() {
    let mut expected = BTreeSet::new();
    expected.insert((
        "authentication.k8s.io".to_string(),
        "tokenreviews".to_string(),
        "create".to_string(),
    ));
    expected.insert((
        "authorization.k8s.io".to_string(),
        "subjectaccessreviews".to_string(),
        "create".to_string(),
    ));
    let auth = cluster_role("skewguard-metrics-auth");
    assert_eq!(grants(&auth.rules.unwrap_or_default()), expected);
    let binding: ClusterRoleBinding = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ClusterRoleBinding" && name_of(v) == "skewguard-metrics-auth")
        .map(|(o, v)| round_trips(&o, &v))
        .expect("the skewguard-metrics-auth binding");
    assert_eq!(binding.role_ref.name, "skewguard-metrics-auth");
    let subject = &binding.subjects.unwrap_or_default()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "skewguard", Some("skewguard-system"))
    );

    let reader = cluster_role("skewguard-metrics-reader");
    let rules = reader.rules.unwrap_or_default();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0].non_resource_urls.as_deref(),
        Some(&["/metrics".to_string()][..])
    );
    assert_eq!(rules[0].verbs, ["get"]);
    assert!(rules[0].resources.is_none() && rules[0].api_groups.is_none());
}

#[test]
fn leases_are_granted_only_in_the_operators_namespace() {
    let objects = objects();
    let role: Role = objects
        .iter()
        .find(|(_, v)| kind_of(v) == "Role")
        .map(|(o, v)| round_trips(o, v))
        .expect("the leader-election Role");
    assert_eq!(role.metadata.namespace.as_deref(), Some("skewguard-system"));
    let granted = grants(&role.rules.unwrap_or_default());
    assert!(
        granted
            .iter()
            .all(|(g, r, _)| g == "coordination.k8s.io" && r == "leases"),
        "{granted:?}"
    );
    let cluster_wide: Vec<String> = objects
        .iter()
        .filter(|(_, v)| kind_of(v) == "ClusterRole")
        .flat_map(|(o, v)| round_trips::<ClusterRole>(o, v).rules.unwrap_or_default())
        .flat_map(|r| r.resources.unwrap_or_default())
        .collect();
    assert!(!cluster_wide.iter().any(|r| r == "leases"));
}

#[test]
fn the_manager_is_locked_down_spread_and_probed() {
    let (origin, v) = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "Deployment")
        .expect("the manager Deployment");
    let d: Deployment = round_trips(&origin, &v);
    let spec = d.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some("skewguard"));
    let keys: Vec<(String, String)> = pod
        .topology_spread_constraints
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.topology_key, c.when_unsatisfiable))
        .collect();
    assert_eq!(
        keys,
        vec![
            (
                "topology.kubernetes.io/zone".into(),
                "ScheduleAnyway".into()
            ),
            ("kubernetes.io/hostname".into(), "ScheduleAnyway".into()),
        ]
    );
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("skewguard:latest"));
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(
        args,
        [
            "run",
            "--leader-elect",
            "--metrics-addr=0.0.0.0:8443",
            "--health-addr=0.0.0.0:8081",
            "--log-format=json"
        ]
    );
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|h| h.path.clone().unwrap_or_default())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    let resources = c.resources.clone().unwrap();
    assert!(
        resources
            .requests
            .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
    );
    assert!(resources.limits.is_some_and(|l| l.contains_key("memory")));
    let env: Vec<String> = c.env.iter().flatten().map(|e| e.name.clone()).collect();
    assert_eq!(env, ["POD_NAMESPACE", "POD_NAME"]);

    let sa: ServiceAccount = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ServiceAccount" && name_of(v) == "skewguard")
        .map(|(o, v)| round_trips(&o, &v))
        .unwrap();
    assert_eq!(sa.automount_service_account_token, Some(false));
    let pdb: PodDisruptionBudget = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "PodDisruptionBudget")
        .map(|(o, v)| round_trips(&o, &v))
        .unwrap();
    assert_eq!(
        pdb.spec.unwrap().min_available,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

/// kubectl on the PATH, else the one envtest installs.
fn kubectl() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let envtest = Path::new(&home).join(".local/share/kubebuilder-envtest/k8s");
        std::fs::read_dir(envtest)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("kubectl")))
            .find(|p| p.is_file())
    })
}

/// `kubectl kustomize DIR` (DIR relative to the repository, or absolute), its objects.
fn kustomize(kubectl: &Path, dir: &Path) -> Vec<Value> {
    let output = Command::new(kubectl)
        .arg("kustomize")
        .arg(root().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    documents(
        &String::from_utf8(output.stdout).unwrap(),
        &format!("kubectl kustomize {}", dir.display()),
    )
}

#[test]
fn kustomize_builds_the_default_install() {
    let Some(kubectl) = kubectl() else {
        println!("note: kubectl not found; skipping `kubectl kustomize config/default`");
        return;
    };
    let rendered = kustomize(&kubectl, Path::new("config/default"));
    let mut known = 0;
    for v in &rendered {
        known += usize::from(check_object("kubectl kustomize config/default", v));
        if v["metadata"]["namespace"].is_string() {
            assert_eq!(
                v["metadata"]["namespace"],
                "skewguard-system",
                "{}",
                name_of(v)
            );
        }
    }
    assert!(known >= 10, "only {known} known objects rendered");
    for kind in [
        "Deployment",
        "ClusterRole",
        "Namespace",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ] {
        assert!(rendered.iter().any(|v| kind_of(v) == kind), "no {kind}");
    }
}

/// The install as a platform team renders it: the CRD apart (config/crd alone, config/default and
/// every overlay on it without it, so removing the operator keeps every HAPolicy); the manager
/// sized to hold 50,000 cached pods (the README's measured table) and scheduled as
/// `system-cluster-critical`; the ServiceMonitor and PrometheusRule labelled for
/// kube-prometheus-stack's default selectors, from one setting, with a token Secret instead of the
/// deprecated `bearerTokenFile`; and the image set by `make deploy` on the one line it rewrites.
#[test]
fn the_rendered_install_keeps_crds_apart_and_is_sized_and_labelled() {
    let Some(kubectl) = kubectl() else {
        println!("note: kubectl not found; skipping the rendered install's checks");
        return;
    };
    let crd = kustomize(&kubectl, Path::new("config/crd"));
    assert_eq!(
        crd.iter().map(kind_of).collect::<Vec<_>>(),
        ["CustomResourceDefinition"]
    );
    assert_eq!(name_of(&crd[0]), "hapolicies.skewguard.dev");
    for overlay in ["config/default", "config/certmanager", "config/prometheus"] {
        let rendered = kustomize(&kubectl, Path::new(overlay));
        assert!(
            !rendered
                .iter()
                .any(|v| kind_of(v) == "CustomResourceDefinition"),
            "{overlay} holds a CRD: deleting it would delete every HAPolicy"
        );
    }
    let makefile = std::fs::read_to_string(root().join("Makefile")).unwrap();
    let recipe = |target: &str| -> String {
        let start = makefile
            .find(&format!("\n{target}:"))
            .unwrap_or_else(|| panic!("no make target {target}"));
        makefile[start + 1..]
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with('\t'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(recipe("undeploy").contains("delete -k config/default"));
    assert!(!recipe("undeploy").contains("config/crd"));
    assert!(recipe("install").contains("apply -k config/crd"));
    assert!(recipe("uninstall").contains("delete -k config/crd"));

    let default = kustomize(&kubectl, Path::new("config/default"));
    let (origin, v) = (
        "kubectl kustomize config/default",
        default
            .iter()
            .find(|v| kind_of(v) == "Deployment")
            .expect("the manager"),
    );
    let d: Deployment = round_trips(origin, v);
    let pod = d.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    let resources = pod.containers[0].resources.clone().unwrap();
    let mib = |q: &Quantity| -> f64 {
        let text = &q.0;
        let (number, factor) = [("Gi", 1024.0), ("Mi", 1.0), ("Ki", 1.0 / 1024.0)]
            .iter()
            .find_map(|(suffix, f)| text.strip_suffix(suffix).map(|n| (n, *f)))
            .unwrap_or_else(|| panic!("memory {text} in Ki, Mi or Gi"));
        number.parse::<f64>().unwrap() * factor
    };
    let limit = mib(&resources.limits.unwrap()["memory"]);
    let request = mib(&resources.requests.as_ref().unwrap()["memory"]);
    let resident_50k = readme_resident_mib(50_000);
    assert!(
        limit >= resident_50k * 1.5,
        "the memory limit {limit} MiB leaves too little room over the {resident_50k} MiB measured at 50,000 pods"
    );
    assert!(request <= limit && request >= readme_resident_mib(10_000));
    assert!(resources.requests.unwrap().contains_key("cpu"));
    let images: Vec<&str> = serde_yaml::to_string(v)
        .unwrap()
        .lines()
        .filter(|l| l.trim_start().starts_with("image:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .into_iter()
        .map(|l| {
            if l.ends_with("skewguard:latest") {
                "default"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(
        images,
        ["default"],
        "make deploy rewrites `image: skewguard:latest`"
    );

    // Monitoring: the release label from one setting, on both objects kube-prometheus-stack selects.
    let dir = copy_dir(&root().join("config/prometheus"));
    let k = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(text.contains("prometheusRelease=kube-prometheus-stack\n"));
    std::fs::write(
        &k,
        text.replace(
            "prometheusRelease=kube-prometheus-stack",
            "prometheusRelease=monitoring",
        ),
    )
    .unwrap();
    let rendered = kustomize(&kubectl, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    for kind in ["ServiceMonitor", "PrometheusRule"] {
        let v = rendered
            .iter()
            .find(|v| kind_of(v) == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        assert_eq!(v["metadata"]["labels"]["release"], "monitoring", "{kind}");
        assert_eq!(
            v["metadata"]["labels"]["app.kubernetes.io/name"],
            "skewguard"
        );
    }
    let monitor = rendered
        .iter()
        .find(|v| kind_of(v) == "ServiceMonitor")
        .unwrap();
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert!(endpoint["bearerTokenFile"].is_null());
    assert_eq!(endpoint["authorization"]["type"], "Bearer");
    let secret_name = endpoint["authorization"]["credentials"]["name"]
        .as_str()
        .unwrap();
    let secret = rendered
        .iter()
        .find(|v| kind_of(v) == "Secret" && name_of(v) == secret_name)
        .expect("the token Secret the ServiceMonitor names");
    assert_eq!(secret["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        secret["metadata"]["namespace"],
        monitor["metadata"]["namespace"]
    );
    let account = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        .as_str()
        .unwrap();
    let binding: ClusterRoleBinding = round_trips(
        "kubectl kustomize config/prometheus",
        rendered
            .iter()
            .find(|v| kind_of(v) == "ClusterRoleBinding")
            .unwrap(),
    );
    assert_eq!(binding.role_ref.name, "skewguard-metrics-reader");
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].name, account);
    assert_eq!(subjects[0].namespace.as_deref(), Some("skewguard-system"));
    // The Service the ServiceMonitor selects carries its selector's labels.
    let service = default.iter().find(|v| kind_of(v) == "Service").unwrap();
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&service["metadata"]["labels"][key], value, "{key}");
    }
}

/// The resident memory the README's sizing table gives for `pods` cached pods, in MiB.
fn readme_resident_mib(pods: u64) -> f64 {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let wanted = format!("| {} |", group_thousands(pods));
    let row = readme
        .lines()
        .find(|l| l.starts_with(&wanted))
        .unwrap_or_else(|| panic!("no README sizing row {wanted}"));
    row.split('|')
        .nth(2)
        .and_then(|cell| cell.trim().strip_suffix(" MiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("README sizing row {row}: resident `N MiB` in the second column"))
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Copies the files of `from` (no subdirectories) into a fresh temporary directory.
fn copy_dir(from: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let to = std::env::temp_dir().join(format!(
        "skewguard-kustomize-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
    to
}

/// The runbook base URL is set in one place: the `runbookBaseURL` literal of
/// config/prometheus/kustomization.yaml becomes the prefix of every alert's runbook_url, the anchor
/// stays, and the settings ConfigMap is not part of the output.
#[test]
fn kustomize_sets_every_runbook_url_from_one_base() {
    let Some(kubectl) = kubectl() else {
        println!("note: kubectl not found; skipping `kubectl kustomize config/prometheus`");
        return;
    };
    let dir = copy_dir(&root().join("config/prometheus"));
    let k = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    let base = "https://wiki.example.com/ops/skewguard-runbook";
    let (before, after) = text
        .split_once("runbookBaseURL=")
        .expect("a runbookBaseURL literal");
    let rest = after.split_once('\n').map_or("", |(_, r)| r);
    std::fs::write(&k, format!("{before}runbookBaseURL={base}\n{rest}")).unwrap();
    let rendered = kustomize(&kubectl, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let kinds: Vec<&str> = rendered.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "ClusterRoleBinding",
            "Secret",
            "PrometheusRule",
            "ServiceMonitor"
        ],
        "the settings ConfigMap stays local"
    );
    let rule = rendered
        .iter()
        .find(|v| kind_of(v) == "PrometheusRule")
        .unwrap();
    let source_path = root().join("config/prometheus/prometheusrule.yaml");
    let source = documents(
        &std::fs::read_to_string(&source_path).unwrap(),
        "config/prometheus/prometheusrule.yaml",
    );
    let alerts = (source[0]["spec"]["groups"].as_array().unwrap().iter())
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter(|r| r["alert"].is_string())
        .count();
    assert!(alerts >= 8, "{alerts} alerts in the source");
    let mut urls = 0;
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap();
            assert_eq!(
                r["annotations"]["runbook_url"],
                format!("{base}#{}", name.to_lowercase())
            );
            urls += 1;
        }
    }
    assert_eq!(
        urls, alerts,
        "every alert's runbook_url is set from the one base"
    );
}

/// config/certmanager: the install with a cert-manager certificate mounted where
/// `--metrics-cert-dir` reads it, for the metrics Service's DNS name.
#[test]
fn kustomize_builds_the_cert_manager_install() {
    let Some(kubectl) = kubectl() else {
        println!("note: kubectl not found; skipping `kubectl kustomize config/certmanager`");
        return;
    };
    let rendered = kustomize(&kubectl, Path::new("config/certmanager"));
    for v in &rendered {
        check_object("kubectl kustomize config/certmanager", v);
    }
    let certificate = rendered
        .iter()
        .find(|v| kind_of(v) == "Certificate")
        .expect("a Certificate");
    let secret = certificate["spec"]["secretName"].as_str().unwrap();
    let service: Service = rendered
        .iter()
        .find(|v| kind_of(v) == "Service")
        .map(|v| round_trips("config/certmanager", v))
        .unwrap();
    let dns = format!(
        "{}.{}.svc",
        service.metadata.name.unwrap(),
        service.metadata.namespace.unwrap()
    );
    assert!(
        certificate["spec"]["dnsNames"]
            .as_array()
            .unwrap()
            .contains(&Value::String(dns.clone())),
        "the certificate names {dns}"
    );
    let d: Deployment = rendered
        .iter()
        .find(|v| kind_of(v) == "Deployment")
        .map(|v| round_trips("config/certmanager", v))
        .unwrap();
    let pod = d.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let dir = c
        .args
        .iter()
        .flatten()
        .find_map(|a| a.strip_prefix("--metrics-cert-dir="))
        .expect("--metrics-cert-dir")
        .to_string();
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .expect("the certificate is mounted at --metrics-cert-dir");
    assert_eq!(mount.read_only, Some(true));
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let from = volume.secret.as_ref().expect("a Secret volume");
    assert_eq!(from.secret_name.as_deref(), Some(secret));
    let files: Vec<&str> = from
        .items
        .iter()
        .flatten()
        .map(|i| i.path.as_str())
        .collect();
    assert_eq!(files, ["tls.crt", "tls.key"]);
}

/// The typed admission policies and bindings under config/admission/.
fn admission() -> (
    Vec<ValidatingAdmissionPolicy>,
    Vec<ValidatingAdmissionPolicyBinding>,
) {
    let objects: Vec<(String, Value)> = objects()
        .into_iter()
        .filter(|(o, _)| o.starts_with("config/admission/"))
        .collect();
    let policies = objects
        .iter()
        .filter(|(_, v)| kind_of(v) == "ValidatingAdmissionPolicy")
        .map(|(o, v)| round_trips(o, v))
        .collect();
    let bindings = objects
        .iter()
        .filter(|(_, v)| kind_of(v) == "ValidatingAdmissionPolicyBinding")
        .map(|(o, v)| round_trips(o, v))
        .collect();
    (policies, bindings)
}

#[test]
fn the_wider_patch_rights_are_narrowed_by_admission_policies() {
    let (policies, bindings) = admission();
    let names: BTreeSet<String> = policies
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "skewguard-evictions-scoped".to_string(),
            "skewguard-pod-deletion-cost-only".to_string(),
            "skewguard-published-admission-from-spec".to_string(),
            "skewguard-room-requests-only".to_string(),
            "skewguard-spread-from-policy".to_string(),
            "skewguard-workload-owned-fields-only".to_string(),
        ])
    );
    // Every policy is bound, denying.
    let bound: BTreeSet<String> = bindings
        .iter()
        .filter_map(|b| b.spec.as_ref())
        .filter(|s| s.validation_actions.as_deref() == Some(&["Deny".to_string()][..]))
        .filter_map(|s| s.policy_name.clone())
        .collect();
    assert_eq!(bound, names);

    // Only requests of the operator's own ServiceAccount, as config/rbac names it.
    let sa: ServiceAccount = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ServiceAccount" && name_of(v) == "skewguard")
        .map(|(o, v)| round_trips(&o, &v))
        .unwrap();
    let username = format!(
        "system:serviceaccount:{}:{}",
        sa.metadata.namespace.unwrap(),
        sa.metadata.name.unwrap()
    );
    // (verb, group/resource) guarded by some policy.
    let mut resources = BTreeSet::new();
    for p in &policies {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.failure_policy.as_deref(), Some("Fail"));
        let conditions = spec.match_conditions.clone().unwrap_or_default();
        assert_eq!(conditions.len(), 1, "{:?}", p.metadata.name);
        assert_eq!(
            conditions[0].expression,
            format!("request.userInfo.username == '{username}'")
        );
        assert!(!spec.validations.clone().unwrap_or_default().is_empty());
        let rules = spec
            .match_constraints
            .as_ref()
            .and_then(|m| m.resource_rules.clone())
            .unwrap_or_default();
        for rule in rules {
            for operation in rule.operations.iter().flatten() {
                let verb = match operation.as_str() {
                    "UPDATE" => "patch",
                    "CREATE" => "create",
                    "DELETE" => "delete",
                    other => panic!("{:?} guards {other}", p.metadata.name),
                };
                for group in rule.api_groups.iter().flatten() {
                    for r in rule.resources.iter().flatten() {
                        resources.insert(format!("{verb} {group}/{r}"));
                    }
                }
            }
        }
    }
    // Evictions and the status (which the MutatingAdmissionPolicy reads) are guarded too.
    for subresource in [
        "create /pods/eviction",
        "patch skewguard.dev/hapolicies/status",
    ] {
        assert!(
            resources.contains(subresource),
            "{subresource}: {resources:?}"
        );
    }
    resources.retain(|r| r.matches('/').count() == 1);
    // Every resource the manager role may patch, create or delete is guarded (Events excepted).
    let written: BTreeSet<String> = grants(&manager_role().rules.unwrap_or_default())
        .into_iter()
        .filter(|(_, r, v)| matches!(v.as_str(), "patch" | "create" | "delete") && !r.contains('/'))
        .filter(|(g, _, _)| g != "events.k8s.io")
        .map(|(g, r, v)| format!("{v} {g}/{r}"))
        .collect();
    assert_eq!(resources, written);

    let default: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("config/default/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert!(
        default["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "../admission"),
        "config/default does not install config/admission"
    );
}

/// The objects under config/admission-mode/, by kind.
fn admission_mode_object(kind: &str) -> Value {
    let found: Vec<Value> = objects()
        .into_iter()
        .filter(|(o, v)| o.starts_with("config/admission-mode/") && kind_of(v) == kind)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one {kind} under config/admission-mode/");
    found.into_iter().next().unwrap()
}

#[test]
fn admission_mode_ships_one_static_policy_whose_parameters_are_the_hapolicies() {
    let name = skewguard::core::injection::ADMISSION_POLICY;
    let policy = admission_mode_object("MutatingAdmissionPolicy");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(name_of(&policy), name);
    let spec = &policy["spec"];
    let crd = skewguard::api::crd();
    assert_eq!(
        spec["paramKind"],
        serde_json::json!({
            "apiVersion": format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
            "kind": crd.spec.names.kind,
        })
    );
    // Availability first: a failing expression or a missing parameter never blocks a pod.
    assert_eq!(spec["failurePolicy"], "Ignore");
    assert_eq!(spec["reinvocationPolicy"], "Never");
    assert_eq!(
        spec["matchConstraints"],
        serde_json::json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                             "operations": ["CREATE"], "resources": ["pods"]}]})
    );
    let mutations = spec["mutations"].as_array().unwrap();
    assert_eq!(mutations.len(), 2);
    for m in mutations {
        // An apply configuration cannot add to topologySpreadConstraints (atomic fields).
        assert_eq!(m["patchType"], "JSONPatch");
        let expression = m["jsonPatch"]["expression"].as_str().unwrap();
        // Typed Object literals panicked the API server's handler; the values are plain maps.
        assert!(!expression.contains("Object."), "{expression}");
        assert!(
            !expression.contains("params"),
            "only variables: {expression}"
        );
    }
    // What the expressions read from the parameter is what the operator publishes.
    let text = serde_json::to_string(spec).unwrap();
    for field in [
        "params.status.admission.workloads",
        "w.podSelector",
        "variables.owners[0].constraints",
        "variables.owners[0].?antiAffinity",
    ] {
        assert!(text.contains(field), "{field}");
    }
    let schema = serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let entry = &schema["properties"]["status"]["properties"]["admission"]["properties"]["workloads"]
        ["items"];
    for field in [
        "podSelector",
        "constraints",
        "antiAffinity",
        "kind",
        "name",
        "since",
    ] {
        assert!(
            entry["properties"][field].is_object(),
            "status.admission.workloads[].{field}"
        );
    }
    assert_eq!(
        entry["properties"]["constraints"]["x-kubernetes-list-map-keys"],
        serde_json::json!(["topologyKey", "whenUnsatisfiable"]),
        "the API server refuses duplicate constraints in the parameter"
    );

    let binding = admission_mode_object("MutatingAdmissionPolicyBinding");
    assert_eq!(name_of(&binding), name);
    assert_eq!(
        binding["spec"],
        serde_json::json!({
            "policyName": name,
            // Every HAPolicy of the pod's own namespace (no namespace, no name); none: allowed.
            "paramRef": {"selector": {}, "parameterNotFoundAction": "Allow"},
        })
    );
}

#[test]
fn the_type_check_policy_restates_every_admission_expression_and_is_never_bound() {
    let mutating = admission_mode_object("MutatingAdmissionPolicy");
    let checker = admission_mode_object("ValidatingAdmissionPolicy");
    assert_eq!(
        name_of(&checker),
        skewguard::core::injection::TYPE_CHECK_POLICY
    );
    for field in ["paramKind", "matchConstraints", "variables"] {
        assert_eq!(checker["spec"][field], mutating["spec"][field], "{field}");
    }
    let mut expected: Vec<String> = mutating["spec"]["matchConditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["expression"].as_str().unwrap().to_string())
        .collect();
    expected.extend(
        mutating["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| format!("[({})].size() == 1", v["expression"].as_str().unwrap())),
    );
    let validations: Vec<String> = checker["spec"]["validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["expression"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(validations, expected);
    let bound: Vec<String> = objects()
        .into_iter()
        .filter(|(_, v)| kind_of(v) == "ValidatingAdmissionPolicyBinding")
        .map(|(_, v)| {
            v["spec"]["policyName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        !bound.contains(&skewguard::core::injection::TYPE_CHECK_POLICY.to_string()),
        "{bound:?}"
    );
}

#[test]
fn no_role_may_change_admission_policies_and_the_default_install_works_without_them() {
    for (origin, v) in objects() {
        if !matches!(kind_of(&v), "ClusterRole" | "Role") {
            continue;
        }
        for rule in v["rules"].as_array().into_iter().flatten() {
            let admission = rule["apiGroups"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|g| g == "admissionregistration.k8s.io");
            if admission {
                assert_eq!(
                    rule["verbs"],
                    serde_json::json!(["get"]),
                    "{origin}: {rule}"
                );
            }
        }
    }
    // config/default installs on any supported cluster (1.33+): admission mode is a second,
    // separate step where the API server serves it.
    let default: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root().join("config/default/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert!(
        !default["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("admission-mode"))),
        "{default:?}"
    );
}

/// Every workload kind skewguard may patch is one the field guard looks at: a kind added to
/// `workload::kinds()` without it would be patched unguarded.
#[test]
fn the_field_guard_covers_every_workload_kind() {
    let path = root().join("config/admission/workload_owned_fields_only.yaml");
    let policy = documents(&std::fs::read_to_string(&path).unwrap(), "field guard")
        .into_iter()
        .next()
        .unwrap();
    let rules = policy["spec"]["matchConstraints"]["resourceRules"]
        .as_array()
        .unwrap();
    let covered = |group: &str, version: &str, plural: &str| {
        rules.iter().any(|r| {
            let has = |field: &str, value: &str| {
                r[field]
                    .as_array()
                    .is_some_and(|vs| vs.iter().any(|v| v == value))
            };
            has("apiGroups", group)
                && has("apiVersions", version)
                && has("resources", plural)
                && has("operations", "UPDATE")
        })
    };
    for kind in skewguard::core::workload::kinds() {
        assert!(
            covered(kind.group, kind.version, kind.plural),
            "{}.{}/{} is not guarded",
            kind.plural,
            kind.group,
            kind.version
        );
    }
}

/// The usernames the guards' `only-skewguard` match conditions compare with, per policy.
fn guarded_users(rendered: &[Value]) -> Vec<(String, String)> {
    rendered
        .iter()
        .filter(|v| kind_of(v) == "ValidatingAdmissionPolicy")
        .filter_map(|v| {
            let conditions = v["spec"]["matchConditions"].as_array()?;
            let only = conditions.iter().find(|c| c["name"] == "only-skewguard")?;
            let expression = only["expression"].as_str()?;
            let user = expression.split('\'').nth(1)?.to_string();
            Some((name_of(v).to_string(), user))
        })
        .collect()
}

/// The admission guards match the operator's ServiceAccount in the namespace config/ installs
/// into: as shipped, and from an overlay that installs into another namespace (with the
/// replacement its kustomization lists, as the README says). Every guard of config/admission has
/// the condition the replacement rewrites.
#[test]
fn the_admission_guards_follow_the_install_namespace() {
    let Some(kubectl) = kubectl() else {
        println!("note: kubectl not found; skipping the overlay in another namespace");
        return;
    };
    let shipped = guarded_users(&kustomize(&kubectl, Path::new("config/default")));
    let guards = kustomize(&kubectl, Path::new("config/admission"));
    let policies = guards
        .iter()
        .filter(|v| kind_of(v) == "ValidatingAdmissionPolicy")
        .count();
    assert!(policies >= 6, "{policies} guards");
    assert_eq!(shipped.len(), policies, "{shipped:?}");
    for (policy, user) in &shipped {
        assert_eq!(
            user, "system:serviceaccount:skewguard-system:skewguard",
            "{policy}"
        );
    }

    let dir = copy_dir(&root().join("config/default"));
    // kustomize takes a relative path to a base.
    let up = "../".repeat(dir.components().count().saturating_sub(1));
    let base = root().join("config/default");
    let base = base.strip_prefix("/").unwrap_or(&base);
    std::fs::write(
        dir.join("kustomization.yaml"),
        format!(
            "namespace: platform-ops\nresources:\n  - {up}{}\nreplacements:\n  - path: operator_namespace_replacement.yaml\n",
            base.display()
        ),
    )
    .unwrap();
    for stray in std::fs::read_dir(&dir).unwrap() {
        let path = stray.unwrap().path();
        let keep = ["kustomization.yaml", "operator_namespace_replacement.yaml"];
        if !keep.iter().any(|k| path.ends_with(k)) {
            std::fs::remove_file(path).unwrap();
        }
    }
    let rendered = kustomize(&kubectl, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let moved = guarded_users(&rendered);
    assert_eq!(moved.len(), policies, "{moved:?}");
    for (policy, user) in &moved {
        assert_eq!(
            user, "system:serviceaccount:platform-ops:skewguard",
            "{policy}"
        );
    }
    let account = rendered
        .iter()
        .find(|v| kind_of(v) == "ServiceAccount" && name_of(v) == "skewguard")
        .unwrap();
    assert_eq!(account["metadata"]["namespace"], "platform-ops");
    // The FlowSchemas follow too: the account, and the namespace of its Lease.
    let schemas: Vec<&Value> = rendered
        .iter()
        .filter(|v| kind_of(v) == "FlowSchema")
        .collect();
    assert_eq!(schemas.len(), 2);
    for schema in schemas {
        let rule = &schema["spec"]["rules"][0];
        assert_eq!(
            rule["subjects"][0]["serviceAccount"]["namespace"],
            "platform-ops"
        );
        if name_of(schema) == "skewguard-leader-election" {
            assert_eq!(
                rule["resourceRules"][0]["namespaces"],
                serde_json::json!(["platform-ops"])
            );
        }
    }
}

/// API Priority and Fairness for the operator's account: its lease renewals match first and go to
/// the built-in leader-election level; everything else it sends goes to its own level, which
/// neither lends nor borrows. The NetworkPolicy admits the monitoring namespace on the metrics
/// port only, to the operator's pods.
#[test]
fn the_operator_is_confined_by_flow_control_and_network_policy() {
    let found = |kind: &str| -> Vec<Value> {
        objects()
            .into_iter()
            .filter(|(o, v)| o.starts_with("config/manager/") && kind_of(v) == kind)
            .map(|(_, v)| v)
            .collect()
    };
    let sa: ServiceAccount = objects()
        .into_iter()
        .find(|(_, v)| kind_of(v) == "ServiceAccount" && name_of(v) == "skewguard")
        .map(|(o, v)| round_trips(&o, &v))
        .unwrap();
    let mut schemas: Vec<FlowSchema> = found("FlowSchema")
        .iter()
        .map(|v| round_trips("config/manager/flow_control.yaml", v))
        .collect();
    schemas.sort_by_key(|s| s.spec.as_ref().unwrap().matching_precedence);
    let levels: Vec<String> = schemas
        .iter()
        .map(|s| {
            s.spec
                .as_ref()
                .unwrap()
                .priority_level_configuration
                .name
                .clone()
        })
        .collect();
    assert_eq!(levels, ["leader-election", "skewguard"]);
    for schema in &schemas {
        let spec = schema.spec.as_ref().unwrap();
        assert!(
            spec.matching_precedence.unwrap() < 1000,
            "before the built-in schemas"
        );
        for rule in spec.rules.iter().flatten() {
            let subject = &rule.subjects[0];
            let account = subject.service_account.as_ref().unwrap();
            assert_eq!(Some(&account.name), sa.metadata.name.as_ref());
            assert_eq!(Some(&account.namespace), sa.metadata.namespace.as_ref());
        }
    }
    let leases = &schemas[0].spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
    let leases = &leases.resource_rules.as_ref().unwrap()[0];
    assert_eq!(leases.resources, ["leases"]);
    assert_eq!(
        leases.namespaces.as_deref(),
        Some(&[sa.metadata.namespace.clone().unwrap()][..])
    );
    let level: PriorityLevelConfiguration = round_trips(
        "config/manager/flow_control.yaml",
        &found("PriorityLevelConfiguration")[0],
    );
    let limited = level.spec.unwrap().limited.unwrap();
    assert_eq!(limited.lendable_percent, Some(0));
    assert_eq!(limited.borrowing_limit_percent, Some(0));
    assert_eq!(limited.limit_response.unwrap().type_, "Queue");

    let policy: NetworkPolicy = round_trips(
        "config/manager/network_policy.yaml",
        &found("NetworkPolicy")[0],
    );
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string()][..])
    );
    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1);
    let from = ingress[0].from.as_ref().unwrap();
    assert_eq!(from.len(), 1);
    let namespaces = from[0].namespace_selector.as_ref().unwrap();
    assert_eq!(
        namespaces.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(from[0].pod_selector.is_none() && from[0].ip_block.is_none());
    let ports = ingress[0].ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(
        ports[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into()))
    );
}
