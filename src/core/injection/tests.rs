//! Table tests of the mode choice, the published entries, and the check of new pods.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::*;
use crate::api::HAPolicySpec;
use crate::core::constraints::{injected_constraint, plan_template};
use crate::core::topology::Pod;

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn installed() -> AdmissionSupport {
    AdmissionSupport {
        served: true,
        policy_installed: true,
        binding_installed: true,
        warnings: Vec::new(),
    }
}

fn previous(mode: InjectionMode) -> InjectionStatus {
    InjectionStatus {
        mode,
        reason: reason::ADMISSION_POLICY_INSTALLED.into(),
        message: String::new(),
    }
}

/// Requested, what the cluster offers, the previous mode; the mode and reason expected.
type Case<'a> = (
    Injection,
    Option<&'a AdmissionSupport>,
    Option<&'a InjectionStatus>,
    Option<(InjectionMode, &'a str)>,
);

#[test]
fn the_mode_follows_the_spec_then_what_the_cluster_offers() {
    let not_served = AdmissionSupport::default();
    let no_binding = AdmissionSupport {
        binding_installed: false,
        ..installed()
    };
    let warning = AdmissionSupport {
        warnings: vec!["spec.validations[0].expression: undefined field".into()],
        ..installed()
    };
    let admission = previous(InjectionMode::Admission);
    use InjectionMode::{Admission, Template};
    let cases: [Case; 10] = [
        (
            Injection::Template,
            Some(&installed()),
            None,
            Some((Template, reason::REQUESTED)),
        ),
        (
            Injection::Template,
            None,
            Some(&admission),
            Some((Template, reason::REQUESTED)),
        ),
        (
            Injection::Admission,
            Some(&not_served),
            None,
            Some((Admission, reason::REQUESTED)),
        ),
        (
            Injection::Admission,
            None,
            None,
            Some((Admission, reason::REQUESTED)),
        ),
        (
            Injection::Auto,
            Some(&installed()),
            None,
            Some((Admission, reason::ADMISSION_POLICY_INSTALLED)),
        ),
        // Warnings are told by the Admitted condition; they do not roll every workload out.
        (
            Injection::Auto,
            Some(&warning),
            None,
            Some((Admission, reason::ADMISSION_POLICY_INSTALLED)),
        ),
        (
            Injection::Auto,
            Some(&not_served),
            Some(&admission),
            Some((Template, reason::ADMISSION_NOT_SERVED)),
        ),
        (
            Injection::Auto,
            Some(&no_binding),
            None,
            Some((Template, reason::ADMISSION_POLICY_NOT_INSTALLED)),
        ),
        // Not known: what the policy was in stays; a policy never in a mode waits.
        (
            Injection::Auto,
            None,
            Some(&admission),
            Some((Admission, reason::ADMISSION_SUPPORT_UNKNOWN)),
        ),
        (Injection::Auto, None, None, None),
    ];
    for (requested, support, previous, expected) in cases {
        let chosen = choose_mode(requested, support, previous);
        assert_eq!(
            chosen.as_ref().map(|c| (c.mode, c.reason.as_str())),
            expected,
            "{requested:?} {support:?} {previous:?}: {chosen:?}"
        );
    }
    let forced = choose_mode(Injection::Admission, Some(&not_served), None).unwrap();
    assert!(
        forced.message.contains("does not serve"),
        "{}",
        forced.message
    );
    let missing = choose_mode(Injection::Auto, Some(&no_binding), None).unwrap();
    assert!(
        missing.message.contains("MutatingAdmissionPolicyBinding")
            && !missing.message.contains("MutatingAdmissionPolicy and")
            && missing.message.contains("config/admission-mode"),
        "{}",
        missing.message
    );
}

fn map_object(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
           "metadata": {"name": ADMISSION_POLICY}, "spec": spec})
}

#[test]
fn support_is_read_from_the_objects_the_api_server_returned() {
    let policy = map_object(
        "MutatingAdmissionPolicy",
        json!({"paramKind": {"apiVersion": "skewguard.dev/v1alpha1", "kind": "HAPolicy"}}),
    );
    let other_params = map_object(
        "MutatingAdmissionPolicy",
        json!({"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"}}),
    );
    let binding = map_object(
        "MutatingAdmissionPolicyBinding",
        json!({"policyName": ADMISSION_POLICY}),
    );
    let other_binding = map_object(
        "MutatingAdmissionPolicyBinding",
        json!({"policyName": "someone-elses"}),
    );
    let checked = json!({"status": {"typeChecking": {"expressionWarnings": [
        {"fieldRef": "spec.validations[1].expression",
         "warning": "/v1, Kind=Pod: ERROR: undefined field 'admision'\n"}]}}});
    let clean = json!({"status": {"observedGeneration": 1}});

    assert_eq!(
        support_from(true, Some(&policy), Some(&binding), Some(&clean)),
        installed()
    );
    assert!(support_from(true, Some(&policy), Some(&binding), None).installed());
    // Not served: nothing else counts.
    assert_eq!(
        support_from(false, Some(&policy), Some(&binding), None),
        AdmissionSupport::default()
    );
    let s = support_from(true, Some(&other_params), Some(&binding), None);
    assert!(!s.policy_installed && s.binding_installed);
    let s = support_from(true, Some(&policy), Some(&other_binding), None);
    assert!(s.policy_installed && !s.binding_installed);
    assert!(!support_from(true, None, Some(&binding), None).installed());
    let s = support_from(true, Some(&policy), Some(&binding), Some(&checked));
    assert_eq!(
        s.warnings,
        ["spec.validations[1].expression: /v1, Kind=Pod: ERROR: undefined field 'admision'"]
    );
}

fn spec(extra: Value) -> HAPolicySpec {
    let mut spec = json!({
        "selector": {"matchLabels": {"app": "petclinic"}},
        "spread": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1},
                   {"topologyKey": "kubernetes.io/hostname", "maxSkew": 2,
                    "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}],
    });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    serde_json::from_value(spec).unwrap()
}

fn web(template_constraints: Value) -> WorkloadObject {
    let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "petclinic", "labels": {"app": "petclinic"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "petclinic", "tier": "web"}},
                 "template": {"metadata": {"labels": {"app": "petclinic", "tier": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}],
                                       "topologySpreadConstraints": template_constraints}}}
    }))
    .unwrap();
    WorkloadObject::from_object(&d).unwrap()
}

#[test]
fn an_entry_carries_what_template_injection_would_write() {
    let w = web(json!([]));
    let spec = spec(json!({"hostAntiAffinity": "Preferred"}));
    let entry = admitted_workload(&w, &plan_template(&spec, &w), None, now()).unwrap();
    assert_eq!((entry.kind, entry.name.as_str()), (w.kind, "web"));
    assert_eq!(entry.pod_selector, w.selector);
    assert_eq!(entry.since, Time(now()));
    // Field for field the template's constraints, so the pods get what a template would carry.
    let written: Vec<Value> = spec
        .spread
        .iter()
        .map(|e| serde_json::to_value(injected_constraint(e, &w)).unwrap())
        .collect();
    let published: Vec<Value> = entry
        .constraints
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(published, written);
    assert_eq!(published[1]["matchLabelKeys"], json!(["pod-template-hash"]));
    assert_eq!(published[1]["minDomains"], json!(2));
    assert_eq!(
        serde_json::to_value(&entry.anti_affinity).unwrap(),
        json!({"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
               "labelSelector": {"matchLabels": {"app": "petclinic", "tier": "web"}}}})
    );
}

#[test]
fn the_users_own_constraints_win_and_a_covered_workload_gets_no_entry() {
    let own_zone = json!([{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 3,
                           "whenUnsatisfiable": "DoNotSchedule",
                           "labelSelector": {"matchLabels": {"tier": "web"}}}]);
    let w = web(own_zone);
    let spec = spec(json!({}));
    let entry = admitted_workload(&w, &plan_template(&spec, &w), None, now()).unwrap();
    let keys: Vec<&str> = entry
        .constraints
        .iter()
        .map(|c| c.topology_key.as_str())
        .collect();
    assert_eq!(keys, ["kubernetes.io/hostname"]);

    let both = json!([
        {"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"},
        {"topologyKey": "kubernetes.io/hostname", "maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}]);
    let w = web(both);
    assert_eq!(
        admitted_workload(&w, &plan_template(&spec, &w), None, now()),
        None
    );
    let off = spec_off();
    let w = web(json!([]));
    assert_eq!(
        admitted_workload(&w, &plan_template(&off, &w), None, now()),
        None
    );
}

fn spec_off() -> HAPolicySpec {
    spec(json!({"injectConstraints": false}))
}

#[test]
fn since_stays_while_the_entry_stays_the_same() {
    let w = web(json!([]));
    let later: Timestamp = "2026-06-01T01:00:00Z".parse().unwrap();
    let spec1 = spec(json!({}));
    let first = admitted_workload(&w, &plan_template(&spec1, &w), None, now()).unwrap();
    let again = admitted_workload(&w, &plan_template(&spec1, &w), Some(&first), later).unwrap();
    assert_eq!(again, first);
    let spec2 =
        spec(json!({"spread": [{"topologyKey": "topology.kubernetes.io/zone", "maxSkew": 2}]}));
    let changed = admitted_workload(&w, &plan_template(&spec2, &w), Some(&first), later).unwrap();
    assert_eq!(changed.since, Time(later));
    assert_eq!(changed.constraints[0].max_skew, 2);
}

fn pod(name: &str, created: &str, keys: &[&str], anti_affinity: bool) -> Pod {
    Pod {
        name: name.into(),
        created: created.parse::<Timestamp>().unwrap().as_second(),
        spread_keys: keys.iter().map(|k| k.to_string()).collect(),
        preferred_anti_affinity: anti_affinity,
        ..Default::default()
    }
}

const ZONE: &str = "topology.kubernetes.io/zone";
const HOST: &str = "kubernetes.io/hostname";

#[test]
fn only_pods_created_after_the_grace_are_judged_and_each_names_what_it_lacks() {
    let w = web(json!([]));
    let entry = admitted_workload(
        &w,
        &plan_template(&spec(json!({"hostAntiAffinity": "Preferred"})), &w),
        None,
        now(),
    )
    .unwrap();
    let pods = [
        // Before the entry, and within the grace: not judged.
        pod("old", "2026-05-31T23:00:00Z", &[], false),
        pod("racing", "2026-06-01T00:00:04Z", &[], false),
        // After: judged.
        pod(
            "good",
            "2026-06-01T00:00:10Z",
            &[ZONE, HOST, "example.com/rack"],
            true,
        ),
        pod("no-host", "2026-06-01T00:01:00Z", &[ZONE], true),
        pod("bare", "2026-06-01T00:02:00Z", &[], false),
        Pod {
            finished: true,
            ..pod("done", "2026-06-01T00:02:00Z", &[], false)
        },
        Pod {
            created: 0,
            ..pod("ageless", "2026-06-01T00:02:00Z", &[], false)
        },
    ];
    let check = check_admitted(&entry, &pods);
    assert_eq!(
        check.checked,
        ["bare", "good", "no-host"].map(String::from).into()
    );
    assert_eq!(
        check.missing,
        [
            PodMissing {
                pod: "bare".into(),
                missing: vec![ZONE.into(), HOST.into(), "anti-affinity".into()]
            },
            PodMissing {
                pod: "no-host".into(),
                missing: vec![HOST.into()]
            },
        ]
    );
}

#[test]
fn the_admitted_condition_says_the_first_thing_wrong() {
    let admission = previous(InjectionMode::Admission);
    let template = previous(InjectionMode::Template);
    let names = |range: std::ops::Range<usize>, prefix: &str| -> BTreeSet<String> {
        range.map(|i| format!("{prefix}-{i}")).collect()
    };
    let good = AdmissionCheck {
        checked: names(0..4, "api"),
        missing: Vec::new(),
    };
    let none = AdmissionCheck::default();
    let bad = AdmissionCheck {
        checked: names(0..9, "web"),
        missing: (0..7)
            .map(|i| PodMissing {
                pod: format!("web-{i}"),
                missing: vec![ZONE.into()],
            })
            .collect(),
    };
    let warning = AdmissionSupport {
        warnings: vec!["spec.validations[1].expression: undefined field".into()],
        ..installed()
    };
    let no_policy = AdmissionSupport {
        policy_installed: false,
        ..installed()
    };
    let cond = |injection: &InjectionStatus,
                support: Option<&AdmissionSupport>,
                checks: &[&AdmissionCheck]| {
        let named: Vec<(&str, &AdmissionCheck)> = checks.iter().map(|c| ("w", *c)).collect();
        admitted_condition(Some(injection), support, &named)
    };
    assert_eq!(cond(&template, Some(&installed()), &[&good]), None);
    assert_eq!(
        cond(&admission, Some(&installed()), &[]),
        None,
        "nothing published"
    );
    let (s, r, _) = cond(&admission, Some(&installed()), &[&good, &none]).unwrap();
    assert_eq!((s, r), ("True", reason::CONSTRAINTS_ADMITTED));
    let (s, r, _) = cond(&admission, None, &[&none]).unwrap();
    assert_eq!((s, r), ("Unknown", reason::NO_NEW_PODS));
    let (s, r, m) = cond(&admission, Some(&installed()), &[&good, &bad]).unwrap();
    assert_eq!((s, r), ("False", reason::CONSTRAINTS_MISSING));
    assert!(
        m.starts_with("7 of 13 pod(s)")
            && m.contains("web-0 (topology.kubernetes.io/zone)")
            && m.ends_with("and 2 more"),
        "{m}"
    );
    let (s, r, m) = cond(&admission, Some(&warning), &[&good]).unwrap();
    assert_eq!((s, r), ("False", reason::TYPE_CHECK_WARNINGS));
    assert!(m.contains("undefined field"), "{m}");
    let (s, r, _) = cond(&admission, Some(&no_policy), &[&bad]).unwrap();
    assert_eq!((s, r), ("False", reason::ADMISSION_POLICY_NOT_INSTALLED));
    let (s, r, _) = cond(&admission, Some(&AdmissionSupport::default()), &[&good]).unwrap();
    assert_eq!((s, r), ("False", reason::ADMISSION_NOT_SERVED));
}

#[test]
fn an_unpublished_admission_is_written_as_null_so_the_merge_patch_removes_it() {
    use crate::core::policy_status::status_patch;
    let mut status = crate::api::HAPolicyStatus::default();
    assert_eq!(
        status_patch(&status)["status"].get("admission"),
        Some(&Value::Null)
    );
    status.admission = Some(crate::api::AdmissionParameters::default());
    assert_eq!(
        status_patch(&status)["status"]["admission"],
        json!({"workloads": []})
    );
}

#[test]
fn a_pod_two_selectors_select_is_told_once_as_an_overlap() {
    let admission = previous(InjectionMode::Admission);
    let canary_pod = PodMissing {
        pod: "dup-canary-1".into(),
        missing: vec![ZONE.into()],
    };
    // dup's selector selects the canary's pods too.
    let dup = AdmissionCheck {
        checked: ["dup-1".to_string(), "dup-canary-1".to_string()].into(),
        missing: vec![canary_pod.clone()],
    };
    let canary = AdmissionCheck {
        checked: ["dup-canary-1".to_string()].into(),
        missing: vec![canary_pod],
    };
    let (status, why, message) = admitted_condition(
        Some(&admission),
        Some(&installed()),
        &[("dup", &dup), ("dup-canary", &canary)],
    )
    .unwrap();
    assert_eq!((status, why), ("False", reason::CONSTRAINTS_MISSING));
    assert_eq!(
        message,
        "1 of 2 pod(s) created since the constraints were published lack them: dup-canary-1 \
         (topology.kubernetes.io/zone; selected by dup and dup-canary: overlapping pod selectors)"
    );
}
