//! Printing a [`Report`]: a table for people, JSON or YAML for tools.

use std::fmt::Write;

use super::build::{PolicyReport, PolicyWorkload, Report, WorkloadRow};
use super::{ClusterReport, ReportError};
use crate::api::{InjectionMode, RebalanceStrategy, WorkloadKind, ZoneHealth};
use crate::core::policy_status::key_name;
use crate::shell::cli::OutputFormat;

/// The report in the requested format.
pub fn render(report: &Report, format: OutputFormat) -> Result<String, ReportError> {
    match format {
        OutputFormat::Table => Ok(table(report)),
        OutputFormat::Wide => Ok(tables(&[(None, report)], true)),
        OutputFormat::Json | OutputFormat::Yaml => serialized(report, format),
    }
}

/// Several clusters' reports in one: a table with a CLUSTER column (each cluster's single points
/// of failure, policy evaluation and warnings after it, named by cluster), or for tools
/// `{"clusters": [{"cluster": NAME, ...report}]}`.
pub fn render_clusters(
    reports: &[ClusterReport],
    format: OutputFormat,
) -> Result<String, ReportError> {
    let named: Vec<(Option<&str>, &Report)> = reports
        .iter()
        .map(|r| (Some(r.cluster.as_str()), &r.report))
        .collect();
    match format {
        OutputFormat::Table => Ok(tables(&named, false)),
        OutputFormat::Wide => Ok(tables(&named, true)),
        OutputFormat::Json | OutputFormat::Yaml => {
            serialized(&serde_json::json!({ "clusters": reports }), format)
        }
    }
}

fn serialized<T: serde::Serialize>(value: &T, format: OutputFormat) -> Result<String, ReportError> {
    let text = if format == OutputFormat::Yaml {
        serde_yaml::to_string(value).map_err(|e| e.to_string())
    } else {
        serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    };
    text.map_err(ReportError::Serialize)
}

/// The human table, then single points of failure, the policy's evaluation and warnings.
pub fn table(report: &Report) -> String {
    tables(&[(None, report)], false)
}

/// One table for the reports (a CLUSTER column first when they are named), then what follows it.
fn tables(reports: &[(Option<&str>, &Report)], wide: bool) -> String {
    let mut out = String::new();
    let rows: Vec<(Option<&str>, &WorkloadRow)> = reports
        .iter()
        .flat_map(|(cluster, r)| r.workloads.iter().map(move |w| (*cluster, w)))
        .collect();
    let topology_key = reports.first().map_or("", |(_, r)| r.topology_key.as_str());
    if rows.is_empty() {
        let mut kinds: Vec<String> = (WorkloadKind::ALL.iter())
            .map(|k| format!("{}s", k.name()))
            .collect();
        let last = kinds.pop().unwrap_or_default();
        let _ = writeln!(out, "No {} or {last} found.", kinds.join(", "));
    } else {
        out.push_str(&workload_table(&rows, topology_key, wide));
        let spofs: Vec<&(Option<&str>, &WorkloadRow)> = rows
            .iter()
            .filter(|(_, w)| w.is_single_point_of_failure())
            .collect();
        if !spofs.is_empty() {
            out.push_str("\nSingle points of failure:\n");
            for (cluster, w) in spofs {
                if let Some(loss) = &w.worst_domain_loss {
                    let where_ = if loss.total == 1 {
                        format!("its only running replica is in {}", loss.domain)
                    } else {
                        format!("all {} running replicas in {}", loss.total, loss.domain)
                    };
                    let _ = writeln!(
                        out,
                        "  {}{}/{} ({}): {where_} — losing {} loses 100%",
                        cluster.map(|c| format!("{c}: ")).unwrap_or_default(),
                        w.namespace,
                        w.name,
                        w.kind_name(),
                        loss.domain
                    );
                }
            }
        }
    }
    for (cluster, report) in reports {
        let prefix = cluster.map(|c| format!("{c}: ")).unwrap_or_default();
        // Zones only when one cannot take pods: the skew then leaves it out.
        if report.zones.iter().any(|z| z.health != ZoneHealth::Healthy) {
            let _ = writeln!(
                out,
                "\n{prefix}{}s that cannot take pods (not counted by the scheduler):",
                key_name(&report.topology_key)
            );
            for z in (report.zones.iter()).filter(|z| z.health != ZoneHealth::Healthy) {
                let _ = writeln!(
                    out,
                    "  {} {} ({}: {})",
                    z.domain,
                    z.health.as_str(),
                    z.reason,
                    z.message
                );
            }
        }
        for kind in &report.kinds_not_served {
            if let Some(crd) = kind.descriptor().crd {
                let _ = writeln!(
                    out,
                    "\n({prefix}CRD {crd} not installed: no {kind}s listed.)"
                );
            }
        }
        if let Some(policy) = &report.policy {
            out.push('\n');
            if let Some(cluster) = cluster {
                let _ = writeln!(out, "== {cluster}");
            }
            out.push_str(&policy_text(policy));
        }
        for w in &report.warnings {
            let _ = writeln!(out, "warning: {prefix}{w}");
        }
    }
    out
}

/// The workloads' table: CLUSTER first when rows are named; INJECTION when a policy adds
/// constraints to some workload (always when wide); MAXSKEW and MEASURED BY when wide.
fn workload_table(rows: &[(Option<&str>, &WorkloadRow)], topology_key: &str, wide: bool) -> String {
    let with_cluster = rows.iter().any(|(c, _)| c.is_some());
    let with_mode = wide || rows.iter().any(|(_, w)| w.injection.is_some());
    let mut header: Vec<String> = Vec::new();
    if with_cluster {
        header.push("CLUSTER".into());
    }
    header.extend([
        "NAMESPACE".to_string(),
        "KIND".to_string(),
        "NAME".to_string(),
        "REPLICAS".to_string(),
        format!("PODS PER {}", key_name(topology_key).to_uppercase()),
        "SKEW".to_string(),
    ]);
    if wide {
        header.extend(["MAXSKEW".to_string(), "MEASURED BY".to_string()]);
    }
    header.extend([
        "SPREAD CONSTRAINTS".to_string(),
        "WORST DOMAIN LOSS".to_string(),
    ]);
    if with_mode {
        header.push("INJECTION".to_string());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(cluster, w)| {
            let mut cells: Vec<String> = cluster.iter().map(|c| c.to_string()).collect();
            let [namespace, kind, name, replicas, domains, skew, spread, loss] = row_cells(w);
            cells.extend([namespace, kind, name, replicas, domains, skew]);
            if wide {
                cells.push(w.max_skew.to_string());
                cells.push(format!("{:?}", w.measured_by));
            }
            cells.extend([spread, loss]);
            if with_mode {
                cells.push(w.injection.map_or("-", |m| m.as_str()).to_string());
            }
            cells
        })
        .collect();
    columns(&header, &cells)
}

impl WorkloadRow {
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind)
    }
}

fn row_cells(w: &WorkloadRow) -> [String; 8] {
    let domains = if w.domains.is_empty() {
        "-".to_string()
    } else {
        w.domains
            .iter()
            .map(|(d, n)| format!("{d}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let skew = if w.skew > w.max_skew {
        format!("{} > {}", w.skew, w.max_skew)
    } else {
        w.skew.to_string()
    };
    let spread = if w.spread_constraint_keys.is_empty() {
        "none".to_string()
    } else {
        w.spread_constraint_keys
            .iter()
            .map(|k| key_name(k))
            .collect::<Vec<_>>()
            .join(",")
    };
    let loss = match &w.worst_domain_loss {
        None => "no running pods".to_string(),
        Some(l) => {
            let percent = (l.fraction * 100.0).round();
            let mark = if l.single_point_of_failure {
                "  SPOF"
            } else {
                ""
            };
            format!(
                "{} {}/{} ({percent}%){mark}",
                l.domain, l.pods_lost, l.total
            )
        }
    };
    [
        w.namespace.clone(),
        w.kind_name(),
        w.name.clone(),
        format!("{}/{}", w.ready, w.replicas),
        domains,
        skew,
        spread,
        loss,
    ]
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
fn columns(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn policy_text(policy: &PolicyReport) -> String {
    let mut out = String::new();
    let mode = if policy.paused {
        "paused: would measure and report only".to_string()
    } else {
        match policy.strategy {
            RebalanceStrategy::None => "strategy None: would measure and report only".to_string(),
            s => format!("strategy {s:?}"),
        }
    };
    let _ = writeln!(
        out,
        "HAPolicy {}/{} ({mode}; nothing was changed):",
        policy.namespace, policy.name
    );
    let _ = match &policy.injection {
        Some(i) => writeln!(out, "  injection: {} ({}: {})", i.mode, i.reason, i.message),
        None => writeln!(
            out,
            "  injection: not known (whether admission policies are served and installed could not be read)"
        ),
    };
    let unhealthy: Vec<String> = (policy.zones.iter())
        .filter(|z| z.health != ZoneHealth::Healthy)
        .map(|z| {
            format!(
                "{} {} {} ({}, since {})",
                key_name(&z.topology_key),
                z.domain,
                z.health.as_str(),
                z.reason,
                z.since.0.strftime("%Y-%m-%dT%H:%M:%SZ")
            )
        })
        .collect();
    if !unhealthy.is_empty() {
        let _ = writeln!(out, "  zones: {}", unhealthy.join("; "));
    }
    if policy.workloads.is_empty() {
        out.push_str("  selects no workload\n");
    }
    for w in &policy.workloads {
        out.push_str(&policy_workload_text(w));
    }
    out
}

fn policy_workload_text(w: &PolicyWorkload) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "  {:?} {}", w.kind, w.name);
    let inject = if w.inject.is_empty() {
        "nothing".to_string()
    } else {
        w.inject
            .iter()
            .map(|c| {
                let min = c
                    .min_domains
                    .map(|m| format!(" minDomains {m}"))
                    .unwrap_or_default();
                format!(
                    "{} maxSkew {} {}{min}",
                    c.topology_key, c.max_skew, c.when_unsatisfiable
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let affinity = if w.host_anti_affinity {
        " + preferred hostname anti-affinity"
    } else {
        ""
    };
    if w.injection == Some(InjectionMode::Admission) {
        let _ = writeln!(
            out,
            "    admission adds to each new pod: {inject}{affinity} (nothing is written to the workload)"
        );
    } else {
        let change = if w.changes_template {
            " (changes the template: one rolling update, the first rebalance)"
        } else {
            " (template already as wanted)"
        };
        let _ = writeln!(out, "    inject: {inject}{affinity}{change}");
    }
    for c in &w.constraints {
        let state = if c.skew > c.max_skew {
            format!("skew {} > maxSkew {}", c.skew, c.max_skew)
        } else {
            format!("skew {} (maxSkew {})", c.skew, c.max_skew)
        };
        let domains = c
            .domains
            .as_ref()
            .map(|d| {
                if d.is_empty() {
                    return " [no eligible domain]".to_string();
                }
                let list: Vec<String> = d.iter().map(|(k, n)| format!("{k}={n}")).collect();
                format!(" [{}]", list.join(" "))
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    {}: {state}{domains}, measured by the {:?} constraint",
            c.topology_key, c.source
        );
    }
    if w.plan.moves.is_empty() {
        let reason = w.plan.obstacle.as_deref().unwrap_or("NothingMovable");
        let _ = writeln!(out, "    plan: no move ({reason})");
    } else {
        let _ = writeln!(
            out,
            "    plan: {} move(s) needed in all; next step:",
            w.plan.moves_needed
        );
        for m in &w.plan.moves {
            let _ = writeln!(
                out,
                "      move {}: {} -> {} (node {} -> {})",
                m.pod, m.from_domain, m.to_domain, m.from_node, m.to_node
            );
        }
        if let Some(reason) = &w.plan.obstacle {
            let _ = writeln!(out, "      stops short of balance: {reason}");
        }
    }
    let _ = writeln!(
        out,
        "    decision: {:?} ({}), once the skew has held for the stabilization window",
        w.decision.state, w.decision.reason
    );
    for would in &w.decision.would {
        let _ = writeln!(out, "      would {would}");
    }
    out
}
