//! The Grafana dashboard, the alert rules and the scrape config agree with what the operator exports:
//! every PromQL expression parses, every metric it names is one `Metrics::encode()` really emits, and
//! every alert links to a runbook section that exists.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

mod petclinic_metrics;

fn read(path: &str) -> String {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), path].iter().collect();
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Yaml {
    serde_yaml::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Json {
    serde_json::from_str(&read("config/grafana/skewguard-dashboard.json")).unwrap()
}

/// The names of every sample the operator emits once every family has a series.
fn exported_names() -> HashSet<String> {
    petclinic_metrics::every_family()
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .collect()
}

/// Calls `f` with every vector selector of an expression (a range selector's too).
fn for_each_selector(expr: &Expr, f: impl FnMut(&promql_parser::parser::VectorSelector)) {
    struct Visit<F>(F);
    impl<F: FnMut(&promql_parser::parser::VectorSelector)> ExprVisitor for Visit<F> {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            match e {
                Expr::VectorSelector(vs) => (self.0)(vs),
                Expr::MatrixSelector(ms) => (self.0)(&ms.vs),
                _ => {}
            }
            Ok(true)
        }
    }
    walk_expr(&mut Visit(f), expr).unwrap();
}

/// Metric names an expression selects, from its AST (a selector's name or its `__name__` matcher).
fn metric_names(expr: &Expr) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for_each_selector(expr, |vs| {
        names.extend(vs.name.clone());
        names.extend(
            vs.matchers
                .matchers
                .iter()
                .filter(|m| m.name == "__name__")
                .map(|m| m.value.clone()),
        );
    });
    names
}

/// Grafana's interval variables are not PromQL; give them a duration before parsing. Other template
/// variables only appear inside label-matcher strings, where they parse as they are.
fn without_grafana_intervals(expr: &str) -> String {
    ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(expr.to_string(), |e, v| e.replace(v, "5m"))
}

/// Parses each expression and checks that it uses only exported metrics, and at least one.
fn check_exprs<'a>(what: &str, exprs: impl IntoIterator<Item = (String, &'a str)>) -> usize {
    let exported = exported_names();
    let mut checked = 0;
    for (place, expr) in exprs {
        let ast = parser::parse(&without_grafana_intervals(expr))
            .unwrap_or_else(|e| panic!("{what} {place}: `{expr}` does not parse: {e}"));
        let names = metric_names(&ast);
        assert!(!names.is_empty(), "{what} {place}: `{expr}` uses no metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{what} {place}: `{name}` is not exported (exported: {exported:?})"
            );
        }
        checked += 1;
    }
    checked
}

/// Every `expr` string anywhere in the JSON, with the title of the panel it belongs to.
fn json_exprs<'a>(v: &'a Json, title: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Json::Object(map) => {
            let title = map.get("title").and_then(Json::as_str).unwrap_or(title);
            for (k, child) in map {
                match (k.as_str(), child) {
                    ("expr", Json::String(expr)) => out.push((title.to_string(), expr)),
                    _ => json_exprs(child, title, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| json_exprs(i, title, out)),
        _ => {}
    }
}

fn panels(d: &Json) -> Vec<&Json> {
    let mut all = Vec::new();
    let mut stack: Vec<&Json> = d["panels"].as_array().unwrap().iter().collect();
    while let Some(p) = stack.pop() {
        if let Some(nested) = p["panels"].as_array() {
            stack.extend(nested);
        }
        all.push(p);
    }
    all
}

#[test]
fn every_dashboard_query_parses_and_uses_exported_metrics() {
    let d = dashboard();
    let mut exprs = Vec::new();
    json_exprs(&d["panels"], "", &mut exprs);
    let checked = check_exprs("dashboard panel", exprs);
    assert!(checked >= 10, "only {checked} panel queries");
}

#[test]
fn dashboard_variables_query_exported_metrics() {
    let d = dashboard();
    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no template variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");

    // `label_values(SELECTOR, label)`: the selector is PromQL.
    let selectors: Vec<(String, &str)> =
        ["cluster", "namespace", "kind", "workload", "topology_key"]
            .iter()
            .map(|name| {
                let q = var(name)["query"]["query"].as_str().unwrap();
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|q| q.strip_suffix(&format!(", {name})")))
                    .unwrap_or_else(|| panic!("variable {name}: unexpected query {q}"));
                (format!("variable {name}"), inner)
            })
            .collect();
    check_exprs("dashboard", selectors);

    // Every panel and query reads from the chosen data source.
    for p in panels(&d) {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }
}

#[test]
fn dashboard_has_the_panels_users_asked_for() {
    let d = dashboard();
    let all = panels(&d);
    let find = |title: &str| {
        *all.iter()
            .find(|p| p["title"].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("no panel {title}"))
    };
    let per_zone = find("Pods per $topology_key domain");
    assert_eq!(per_zone["repeat"], "workload");
    assert_eq!(
        per_zone["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"],
        "normal"
    );
    assert!(
        all.iter()
            .any(|p| p["title"] == "Single points of failure" && p["type"] == "table")
    );
    for title in [
        "Skew vs maxSkew",
        "Unbalanced workloads",
        "Rebalance actions by result",
        "Current rebalance blocks by reason",
        "Reconcile errors",
        "Leader",
        "Pods admitted relaxed (Adaptive)",
    ] {
        find(title);
    }
    let zones = find("Zone health");
    assert_eq!(zones["type"], "state-timeline");
    let mapped = zones["fieldConfig"]["defaults"]["mappings"][0]["options"].to_string();
    for state in ["Healthy", "Recovering", "Out"] {
        assert!(
            mapped.contains(state),
            "zone health maps no {state}: {mapped}"
        );
    }
    let latency = find("Reconcile latency").to_string();
    assert!(
        latency.contains("histogram_quantile(0.5,") && latency.contains("histogram_quantile(0.99,")
    );

    let ids: Vec<_> = all.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        ids.len(),
        "panel ids repeat"
    );
}

/// What Grafana shows must name what it is: each pods-per-domain series its workload, the error rate
/// in errors (not requests) per second, the leader per pod (with honorLabels, `pod` is the target's);
/// and `kind` filters every workload query, chosen between namespace and workload.
#[test]
fn dashboard_names_workloads_kinds_pods_and_units() {
    let d = dashboard();
    let all = panels(&d);
    let find = |title: &str| {
        *all.iter()
            .find(|p| p["title"].as_str().unwrap().starts_with(title))
            .unwrap_or_else(|| panic!("no panel {title}"))
    };
    let legend = find("Pods per $topology_key domain")["targets"][0]["legendFormat"]
        .as_str()
        .unwrap();
    for part in ["{{kind}}", "{{namespace}}", "{{workload}}", "{{domain}}"] {
        assert!(
            legend.contains(part),
            "pods per domain legend {legend:?} lacks {part}"
        );
    }
    let errors = find("Reconcile errors");
    let unit = errors["fieldConfig"]["defaults"]["unit"].as_str().unwrap();
    assert_eq!(unit, "suffix: errors/s");
    let leader = &find("Leader over time")["targets"][0];
    assert_eq!(
        leader["expr"],
        r#"max by (cluster, pod) (skewguard_leader{cluster=~"$cluster"})"#
    );
    assert_eq!(leader["legendFormat"], "{{pod}}");

    let names: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "datasource",
            "cluster",
            "namespace",
            "kind",
            "workload",
            "topology_key"
        ]
    );
    let mut exprs = Vec::new();
    json_exprs(&d["panels"], "", &mut exprs);
    for (title, expr) in exprs {
        if expr.contains("$workload") {
            assert!(expr.contains(r#"kind=~"$kind""#), "{title}: {expr}");
        }
    }
}

fn rules() -> Vec<Yaml> {
    let rule = yaml("config/prometheus/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    rule["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect()
}

#[test]
fn every_rule_parses_and_uses_exported_metrics() {
    let rules = rules();
    let exprs = rules.iter().map(|r| {
        let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
        (format!("rule {name}"), r["expr"].as_str().unwrap())
    });
    assert_eq!(check_exprs("alert", exprs), rules.len());
}

/// GitHub's heading anchors: lower case, punctuation other than `-` dropped, spaces to `-`.
fn anchors(markdown: &str) -> HashSet<String> {
    markdown
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '-' || *c == ' ' || *c == '_')
                .map(|c| if c == ' ' { '-' } else { c })
                .collect()
        })
        .collect()
}

#[test]
fn every_alert_is_documented_and_links_its_runbook_section() {
    let anchors = anchors(&read("docs/runbook.md"));
    let base = runbook_base_url();
    let rules = rules();
    let names: Vec<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for required in [
        "SkewguardWorkloadSkewExceeded",
        "SkewguardSinglePointOfFailure",
        "SkewguardRebalanceBlocked",
        "SkewguardReconcileErrors",
        "SkewguardAbsent",
        "SkewguardNoLeader",
        "SkewguardAdmissionConstraintsMissing",
        "SkewguardAdmissionTypeCheckWarnings",
    ] {
        assert!(names.contains(&required), "no alert {required}");
    }
    for rule in rules.iter().filter(|r| r["alert"].is_string()) {
        let name = rule["alert"].as_str().unwrap();
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("info" | "warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        assert!(rule["for"].is_string(), "{name}: no `for`");
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{name}: no {annotation}");
        }
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_default();
        let anchor = url
            .strip_prefix(&format!("{base}#"))
            .unwrap_or_else(|| panic!("{name}: runbook_url {url:?} does not start with {base}#"));
        assert_eq!(anchor, name.to_lowercase(), "{name}: anchor");
        assert!(
            anchors.contains(anchor),
            "{name}: docs/runbook.md has no #{anchor}"
        );
    }
}

/// The reconcile-errors section tells what to do for every `error` label the operator can emit.
#[test]
fn runbook_covers_every_error_category() {
    let runbook = read("docs/runbook.md");
    let section = runbook
        .split("\n## ")
        .find(|s| s.starts_with("SkewguardReconcileErrors"))
        .expect("docs/runbook.md has a SkewguardReconcileErrors section");
    for category in skewguard::core::errors::ErrorCategory::ALL {
        let row = format!("| `{}` |", category.as_str());
        assert!(section.contains(&row), "no runbook row for error {row}");
    }
}

/// The one place an install sets the runbook links: the `runbookBaseURL` literal of
/// config/prometheus/kustomization.yaml, which a kustomize replacement puts before each `#anchor`.
/// The rule file carries the same default, so it is valid (and promtool-tested) as it is.
fn runbook_base_url() -> String {
    let k = yaml("config/prometheus/kustomization.yaml");
    let generator = k["configMapGenerator"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "skewguard-monitoring-settings")
        .expect("the skewguard-monitoring-settings generator");
    assert_eq!(
        generator["options"]["annotations"]["config.kubernetes.io/local-config"], "true",
        "the settings ConfigMap is read by kustomize, never applied"
    );
    let base = generator["literals"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str()?.strip_prefix("runbookBaseURL="))
        .next()
        .expect("a runbookBaseURL literal")
        .to_string();
    assert!(
        base.starts_with("https://") && !base.contains('#'),
        "runbookBaseURL {base:?}: an absolute URL without an anchor"
    );
    let replacement = k["replacements"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["source"]["fieldPath"] == "data.runbookBaseURL")
        .expect("a replacement from runbookBaseURL");
    let target = &replacement["targets"][0];
    assert_eq!(target["select"]["kind"], "PrometheusRule");
    assert_eq!(
        target["fieldPaths"][0],
        "spec.groups.*.rules.*.annotations.runbook_url"
    );
    assert_eq!(target["options"]["delimiter"], "#");
    assert_eq!(target["options"]["index"], 0);
    base
}

#[test]
fn service_monitor_scrapes_the_operator_service() {
    let sm = yaml("config/prometheus/servicemonitor.yaml");
    assert_eq!(sm["kind"], "ServiceMonitor");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "skewguard"
    );
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "metrics");
    assert_eq!(endpoint["path"], "/metrics");
    // Authenticated scraping: HTTPS, the scraper account's token from its Secret (`authorization`,
    // not the deprecated bearerTokenFile), the operator's self-signed certificate.
    assert_eq!(endpoint["scheme"], "https");
    assert!(endpoint["bearerTokenFile"].is_null());
    assert_eq!(endpoint["authorization"]["type"], "Bearer");
    assert_eq!(
        endpoint["authorization"]["credentials"]["name"],
        "skewguard-metrics-scraper-token"
    );
    assert_eq!(endpoint["tlsConfig"]["insecureSkipVerify"], true);
    // The workload's `namespace` label must survive the target's (see the_exported_labels_...).
    assert_eq!(endpoint["honorLabels"], true);

    let k = yaml("config/prometheus/kustomization.yaml");
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        [
            "servicemonitor.yaml",
            "metrics_scraper.yaml",
            "metrics_reader_binding.yaml",
            "prometheusrule.yaml"
        ]
    );
    let binding = yaml("config/prometheus/metrics_reader_binding.yaml");
    assert_eq!(binding["kind"], "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], "skewguard-metrics-reader");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], "skewguard-metrics-scraper");
}

/// Labels every series of the operator carries (from the exposition of every family).
fn exported_labels() -> BTreeSet<String> {
    petclinic_metrics::every_family()
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| Some(l.split_once('{')?.1.rsplit_once('}')?.0.to_string()))
        .flat_map(|labels| {
            labels
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The Prometheus Operator attaches these target labels to every scraped series (plus
/// `__meta_*` relabelled ones). skewguard exports exactly one of them, `namespace` (the workload's);
/// the ServiceMonitor's honorLabels keeps it instead of renaming it `exported_namespace`, so no other
/// exported label may collide, or honorLabels would let it override the target's.
#[test]
fn the_exported_labels_collide_with_target_labels_only_in_namespace() {
    let exported = exported_labels();
    assert!(exported.contains("workload") && exported.contains("kind"));
    let target = [
        "namespace",
        "job",
        "instance",
        "pod",
        "service",
        "endpoint",
        "container",
    ];
    let collisions: Vec<&str> = target
        .into_iter()
        .filter(|t| exported.contains(*t))
        .collect();
    assert_eq!(collisions, ["namespace"], "exported labels: {exported:?}");
}

#[test]
fn dashboard_ships_as_a_labelled_config_map() {
    let k = yaml("config/grafana/kustomization.yaml");
    assert_eq!(k["namespace"], "skewguard-system");
    let generator = &k["configMapGenerator"][0];
    assert_eq!(generator["files"][0], "skewguard-dashboard.json");
    assert_eq!(generator["options"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(generator["options"]["disableNameSuffixHash"], true);
}

/// Where one aggregation or vector match loses `cluster`: `Some(why)`. Every `by (...)` and
/// `on (...)` keeps it (two clusters' series are never merged, and with no `cluster` label the
/// grouping is the same as without it); an aggregation without a grouping is allowed only as a
/// `sum` or `count` total over per-cluster rows (the stat panels' totals).
fn cluster_lost(expr: &Expr) -> Option<String> {
    struct Lost(Option<String>);
    impl ExprVisitor for Lost {
        type Error = ();
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
            let keeps = |m: &promql_parser::parser::LabelModifier| match m {
                promql_parser::parser::LabelModifier::Include(l) => {
                    l.labels.iter().any(|l| l == "cluster")
                }
                promql_parser::parser::LabelModifier::Exclude(l) => {
                    !l.labels.iter().any(|l| l == "cluster")
                }
            };
            match e {
                Expr::Aggregate(a) => match &a.modifier {
                    Some(m) if !keeps(m) => {
                        self.0 = Some(format!("{e}: its grouping drops cluster"))
                    }
                    Some(_) => {}
                    None => {
                        let op = a.op.to_string();
                        let over_rows = matches!(&*a.expr, Expr::Aggregate(_))
                            || matches!(&*a.expr, Expr::Binary(b) if matches!(&*b.lhs, Expr::Aggregate(_)));
                        if !(matches!(op.as_str(), "sum" | "count") && over_rows) {
                            self.0 = Some(format!("{e}: aggregates without keeping cluster"));
                        }
                    }
                },
                Expr::Binary(b) => {
                    if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref())
                        && !keeps(m)
                    {
                        self.0 = Some(format!("{e}: matches without cluster"));
                    }
                }
                _ => {}
            }
            Ok(self.0.is_none())
        }
    }
    let mut lost = Lost(None);
    walk_expr(&mut lost, expr).unwrap();
    lost.0
}

/// Whether every selector of `expr` filters by `cluster=~"$cluster"`.
fn every_selector_filters_cluster(expr: &Expr) -> bool {
    let mut all = true;
    for_each_selector(expr, |vs| {
        all &= vs
            .matchers
            .matchers
            .iter()
            .any(|m| m.name == "cluster" && m.value == "$cluster");
    });
    all
}

/// Many clusters, one Prometheus (or Thanos, Mimir): every dashboard query filters by the
/// `cluster` variable and keeps `cluster` in every aggregation, and so does every alert; the
/// checker itself refuses the forms that would merge clusters.
#[test]
fn every_query_and_alert_keeps_the_cluster() {
    let d = dashboard();
    let mut exprs = Vec::new();
    json_exprs(&d["panels"], "", &mut exprs);
    assert!(exprs.len() >= 14);
    for (title, expr) in &exprs {
        let ast = parser::parse(&without_grafana_intervals(expr)).unwrap();
        assert_eq!(cluster_lost(&ast), None, "panel {title}");
        assert!(
            every_selector_filters_cluster(&ast),
            "panel {title}: a selector without cluster=~\"$cluster\": {expr}"
        );
    }
    for rule in rules() {
        let expr = rule["expr"].as_str().unwrap();
        let ast = parser::parse(expr).unwrap();
        assert_eq!(cluster_lost(&ast), None, "alert {:?}", rule["alert"]);
    }
    for bad in [
        "max(skewguard_leader) == 0",
        "max by (namespace) (skewguard_workload_replicas)",
        "a and on (namespace) b",
        "max without (cluster) (skewguard_leader)",
    ] {
        assert!(
            cluster_lost(&parser::parse(bad).unwrap()).is_some(),
            "{bad}"
        );
    }
    assert!(
        cluster_lost(&parser::parse("count(max by (cluster, workload) (x) == 0)").unwrap())
            .is_none()
    );
}

/// Every graph and stat says what its numbers are (no `none` unit) and where they turn bad
/// (thresholds); tables show labels.
#[test]
fn every_panel_has_a_unit_and_thresholds() {
    let d = dashboard();
    for p in panels(&d) {
        if matches!(p["type"].as_str(), Some("table" | "row")) {
            continue;
        }
        let defaults = &p["fieldConfig"]["defaults"];
        let unit = defaults["unit"].as_str().unwrap_or_default();
        assert!(
            !unit.is_empty() && unit != "none",
            "panel {}: unit {unit:?}",
            p["title"]
        );
        let steps = defaults["thresholds"]["steps"].as_array();
        assert!(
            steps.is_some_and(|s| !s.is_empty() && s[0]["value"].is_null()),
            "panel {}: no thresholds",
            p["title"]
        );
    }
}

/// The family renamed to Prometheus' conventions is still emitted under its old name for one
/// release (CHANGELOG), with the same series; the dashboard and the alerts use only the new name,
/// and the README documents both.
#[test]
fn the_renamed_loss_ratio_keeps_its_old_name_one_release() {
    let text = petclinic_metrics::every_family().encode();
    let series = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name))
            .filter(|rest| rest.starts_with('{'))
            .map(String::from)
            .collect()
    };
    let new = series("skewguard_workload_domain_loss_ratio");
    assert!(!new.is_empty());
    assert_eq!(new, series("skewguard_workload_zone_loss_fraction"));
    assert!(text.contains("# HELP skewguard_workload_zone_loss_fraction Deprecated"));
    for file in [
        "config/grafana/skewguard-dashboard.json",
        "config/prometheus/prometheusrule.yaml",
        "tests/promtool/skewguard_alerts_test.yaml",
    ] {
        assert!(!read(file).contains("zone_loss_fraction"), "{file}");
    }
    let changelog = read("CHANGELOG.md");
    assert!(
        changelog.contains("skewguard_workload_zone_loss_fraction")
            && changelog.contains("skewguard_workload_domain_loss_ratio")
    );
}

/// Every metric family the operator exports is in the README's metrics table.
#[test]
fn the_readme_documents_every_exported_family() {
    let readme = read("README.md");
    let families: BTreeSet<String> = petclinic_metrics::every_family()
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    for family in families {
        let documented = [family.clone(), format!("{family}_total")]
            .iter()
            .any(|name| readme.contains(&format!("`{name}`")));
        assert!(documented, "README does not document {family}");
    }
}
