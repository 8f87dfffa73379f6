//! What a soak recorded, as plain data: every state of the pods, ReplicaSets, workloads,
//! PodDisruptionBudgets, the Lease and the policies' status entries that the test's own (un-faulted)
//! watches saw, and every write the operator replicas sent through the fault proxy. Times are wall
//! clock (the API server's timestamps are too), so all of it can be compared; the invariant checker
//! ([`super::invariants`]) is a pure function of it.

use std::collections::BTreeMap;

use jiff::Timestamp;

/// A workload: its kind (`Deployment`, `StatefulSet`, `Rollout`, `ReplicaSet`) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub kind: String,
    pub name: String,
}

impl Workload {
    pub fn new(kind: &str, name: &str) -> Workload {
        Workload {
            kind: kind.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// One observed state of a pod (or its end: `gone`).
#[derive(Debug, Clone, PartialEq)]
pub struct PodRecord {
    pub at: Timestamp,
    pub uid: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The controller owner reference (`None`: a bare pod).
    pub owner: Option<Workload>,
    pub zone: Option<String>,
    pub ready: bool,
    /// When its Ready condition last turned (the kubelet's stamp, whole seconds): a replacement
    /// counts as Ready from then, however late the test's watch saw it.
    pub ready_since: Option<Timestamp>,
    pub terminating: bool,
    /// Deleted (or missing from a re-list).
    pub gone: bool,
    pub created: Timestamp,
    /// Carries one of the opt-out annotations.
    pub opted_out: bool,
}

impl PodRecord {
    /// Counts as available: Ready, not terminating, not gone.
    pub fn healthy(&self) -> bool {
        self.ready && !self.terminating && !self.gone
    }
}

/// A ReplicaSet and its controller owner (a Deployment or a Rollout).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerRecord {
    pub at: Timestamp,
    pub replicaset: String,
    pub owner: Option<Workload>,
}

/// A workload's wanted replicas at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadRecord {
    pub at: Timestamp,
    pub workload: Workload,
    pub replicas: i64,
}

/// A PodDisruptionBudget's selector and status at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PdbRecord {
    pub at: Timestamp,
    pub name: String,
    pub match_labels: BTreeMap<String, String>,
    pub disruptions_allowed: i64,
    /// Pods the API server's Eviction handler has just counted against the budget.
    pub disrupted_pods: Vec<String>,
}

impl PdbRecord {
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_labels.is_empty()
            && self
                .match_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// The leader Lease's holder at a moment (from the test's watch).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRecord {
    pub at: Timestamp,
    pub holder: Option<String>,
}

/// A workload's decision memory as a policy's status showed it at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRecord {
    pub at: Timestamp,
    pub workload: Workload,
    pub episode: bool,
    pub last_action: Option<Timestamp>,
}

/// What a request the proxy saw was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `POST .../pods/<pod>/eviction`; the uid from its preconditions, when given.
    Eviction { pod: String, uid: Option<String> },
    /// A write to a pod itself (a deletion-cost patch, say).
    Pod { pod: String },
    /// A write to a Lease, naming the holder it asks for.
    Lease {
        name: String,
        holder: Option<String>,
    },
    /// Any other write (status, templates, Events, ...).
    Other,
}

/// A fault the proxy injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// Delayed before forwarding.
    Latency,
    /// Answered 429 with Retry-After, not forwarded.
    TooManyRequests,
    /// Answered 500 or 503, not forwarded.
    ServerError,
    /// Connection closed before forwarding.
    ResetBefore,
    /// Forwarded, then the connection closed instead of the answer.
    ResetAfter,
    /// A watch's response ended mid-way.
    CutWatch,
    /// A Lease write held past the lease duration, then dropped.
    StalledLease,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Latency,
        Fault::TooManyRequests,
        Fault::ServerError,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::CutWatch,
        Fault::StalledLease,
    ];

    /// Whether the request never reached the API server.
    pub fn withheld(self) -> bool {
        matches!(
            self,
            Fault::TooManyRequests | Fault::ServerError | Fault::ResetBefore | Fault::StalledLease
        )
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The API server answered with this status (the answer may have been withheld from the
    /// operator: see the request's fault).
    Answered(u16),
    /// Never reached the API server (an injected fault).
    Withheld,
    /// The API server could not be reached (it was down).
    Unreachable,
}

/// A write one operator replica sent, as the proxy saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// When the proxy received it (when the replica sent it, give or take loopback).
    pub at: Timestamp,
    pub replica: String,
    pub method: String,
    pub path: String,
    pub target: Target,
    pub fault: Option<Fault>,
    pub outcome: Outcome,
}

impl RequestRecord {
    /// The API server carried it out (2xx), whether or not the replica heard so.
    pub fn applied(&self) -> bool {
        matches!(self.outcome, Outcome::Answered(code) if (200..300).contains(&code))
    }

    /// Reached the API server at all.
    pub fn forwarded(&self) -> bool {
        matches!(self.outcome, Outcome::Answered(_))
    }
}

/// Everything recorded, each list in the order it was observed.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub pods: Vec<PodRecord>,
    pub owners: Vec<OwnerRecord>,
    pub workloads: Vec<WorkloadRecord>,
    pub pdbs: Vec<PdbRecord>,
    pub leases: Vec<LeaseRecord>,
    pub statuses: Vec<StatusRecord>,
    pub requests: Vec<RequestRecord>,
}

impl History {
    /// Evictions the API server carried out.
    pub fn evictions(&self) -> impl Iterator<Item = &RequestRecord> {
        self.requests
            .iter()
            .filter(|r| matches!(r.target, Target::Eviction { .. }) && r.applied())
    }

    /// Every record as one line, in time order: what a failed soak leaves to read.
    pub fn timeline(&self) -> Vec<String> {
        let mut lines: Vec<(Timestamp, String)> = Vec::new();
        for p in &self.pods {
            let owner = p.owner.as_ref().map_or("-".into(), |o| o.to_string());
            lines.push((
                p.at,
                format!(
                    "pod {} uid={} owner={owner} zone={} ready={} since={} terminating={} gone={} created={}",
                    p.name,
                    p.uid,
                    p.zone.as_deref().unwrap_or("-"),
                    p.ready,
                    p.ready_since.map_or("-".into(), |t| t.to_string()),
                    p.terminating,
                    p.gone,
                    p.created
                ),
            ));
        }
        for o in &self.owners {
            lines.push((
                o.at,
                format!("replicaset {} owner={:?}", o.replicaset, o.owner),
            ));
        }
        for w in &self.workloads {
            lines.push((w.at, format!("replicas {} {}", w.workload, w.replicas)));
        }
        for b in &self.pdbs {
            lines.push((
                b.at,
                format!(
                    "pdb {} allowed={} disrupted={:?}",
                    b.name, b.disruptions_allowed, b.disrupted_pods
                ),
            ));
        }
        for l in &self.leases {
            lines.push((l.at, format!("lease holder={:?}", l.holder)));
        }
        for s in &self.statuses {
            lines.push((
                s.at,
                format!(
                    "status {} episode={} lastAction={:?}",
                    s.workload, s.episode, s.last_action
                ),
            ));
        }
        for r in &self.requests {
            lines.push((
                r.at,
                format!(
                    "request {} {} {} {:?} fault={:?} outcome={:?}",
                    r.replica, r.method, r.path, r.target, r.fault, r.outcome
                ),
            ));
        }
        lines.sort_by_key(|l| l.0);
        lines.into_iter().map(|(t, l)| format!("{t} {l}")).collect()
    }

    /// How often the Lease changed hands (a first holder is not a change).
    pub fn leader_changes(&self) -> usize {
        let holders: Vec<&String> = self
            .leases
            .iter()
            .filter_map(|l| l.holder.as_ref())
            .collect();
        holders.windows(2).filter(|w| w[0] != w[1]).count()
    }
}
