//! What to do about one workload now: wait, act, back off or block, and why. Pure: the
//! controller hands in what it observed and what it remembers, and carries out the answer.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::conditions::reason;
use crate::api::{RebalanceSpec, RebalanceState, RebalanceStrategy};
use crate::core::topology::{
    Baseline, Measurement, Move, MoveOutcome, Obstacle, Plan, Replacement, judge_move,
};

/// Longest back-off after repeated ineffective moves.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Failed moves that make a workload back off.
pub const FAILED_MOVES_BEFORE_BACKOFF: u32 = 2;
/// How long to give a replacement to land and become Ready before the move counts as failed.
pub const REPLACEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long after a move is recorded in flight its pod, if the eviction went through, shows as
/// terminating in the pod cache. The record is written before the eviction is sent, so a process
/// that lost the API server (or died) between the two leaves a record of an eviction that never
/// happened: its pod still runs, unterminated, after this long, and the record is dropped.
pub const EVICTION_SEEN_WITHIN: Duration = Duration::from_secs(30);
/// How soon to look again after a PodDisruptionBudget said no.
pub const PDB_RETRY: Duration = Duration::from_secs(10);
/// How soon to look again while waiting for replacements.
pub const POLL: Duration = Duration::from_secs(5);
/// How long a rollout skewguard started may hold its slot of `--max-concurrent-rollouts`
/// (a Deployment's default `progressDeadlineSeconds`): a rollout stuck on a broken image gives
/// its slot back, so it cannot stop injection and restarts for the whole cluster.
pub const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// What was observed about a workload in this reconcile.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub now: Timestamp,
    pub rebalance: &'a RebalanceSpec,
    pub paused: bool,
    /// Another, older policy governs this workload.
    pub conflict: bool,
    /// Not rolling out, not scaling, no unavailable replicas.
    pub settled: bool,
    pub ready_replicas: i32,
    pub within_policy: bool,
    /// A PodDisruptionBudget covering the workload allows no disruption now.
    pub budget_exhausted: bool,
    /// The workload's measured spread, to judge in-flight moves.
    pub measurement: &'a Measurement,
    /// UIDs of the workload's pods that still run (a StatefulSet's replacement keeps the name).
    pub running_pods: &'a BTreeSet<&'a str>,
    pub plan: &'a Result<Plan, Obstacle>,
}

/// An eviction whose replacement has not been judged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    pub pod: String,
    pub pod_uid: String,
    pub topology_key: String,
    pub to_domain: String,
    pub at: Timestamp,
    /// The spread the move was planned from: a finished move is judged by outcome
    /// ([`judge_move`]), not by whether the replacement landed where predicted.
    pub baseline: Baseline,
}

/// What the controller remembers about a workload between reconciles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Since when the skew has exceeded maxSkew.
    pub skewed_since: Option<Timestamp>,
    pub last_action: Option<Timestamp>,
    /// A rebalance is under way: its steps follow each other without cooldown.
    pub episode: bool,
    pub in_flight: Vec<InFlight>,
    pub failed_moves: u32,
    pub backoff: Option<Duration>,
    pub backoff_until: Option<Timestamp>,
    pub pdb_blocked_until: Option<Timestamp>,
    /// Disruptions made for the workload.
    pub actions: i64,
    /// skewguard changed the template (injection, restart): the workload rolls out up to this
    /// generation, holding a slot of the cluster-wide rollout budget until it is done.
    pub rollout_generation: Option<i64>,
    pub rollout_started: Option<Timestamp>,
    /// The rollout skewguard started did not complete within [`ROLLOUT_TIMEOUT`]: its slot was
    /// given back, and the workload is Blocked (RolloutStuck) until it settles.
    pub rollout_stuck_since: Option<Timestamp>,
    /// The room asked of the autoscaler for the next move, until that move is judged.
    pub capacity: Option<crate::api::CapacityRequest>,
    /// A request for room timed out: none is made again before this time.
    pub capacity_blocked_until: Option<Timestamp>,
}

/// Whether this reconcile may write to a workload and its pods, and if not, why: a policy that
/// lost a conflict touches nothing; paused policies and `--dry-run` say what they would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writes {
    Allowed,
    NotOwner,
    Paused,
    DryRun,
}

impl Writes {
    pub fn for_workload(dry_run: bool, paused: bool, conflict: bool) -> Self {
        match (conflict, paused, dry_run) {
            (true, _, _) => Writes::NotOwner,
            (false, true, _) => Writes::Paused,
            (false, false, true) => Writes::DryRun,
            (false, false, false) => Writes::Allowed,
        }
    }

    pub fn allowed(self) -> bool {
        self == Writes::Allowed
    }

    /// How the status prefixes what would have been done.
    pub fn label(self) -> &'static str {
        match self {
            Writes::Allowed => "",
            Writes::NotOwner => "not the governing policy",
            Writes::Paused => "paused",
            Writes::DryRun => "dry-run",
        }
    }
}

/// The decision for one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disruption {
    /// Nothing to do.
    None,
    Evict(Vec<Move>),
    Restart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub disruption: Disruption,
    pub state: RebalanceState,
    pub reason: &'static str,
    /// When to look again even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Moves judged in this reconcile: how many replacements landed where intended, and how
    /// many came back.
    pub moves_succeeded: u32,
    pub moves_failed: u32,
}

impl Decision {
    fn new(state: RebalanceState, reason: &'static str) -> Self {
        Self {
            disruption: Disruption::None,
            state,
            reason,
            requeue_after: None,
            moves_succeeded: 0,
            moves_failed: 0,
        }
    }

    fn requeue(mut self, after: Duration) -> Self {
        self.requeue_after = Some(after.max(Duration::from_secs(1)));
        self
    }

    fn act(mut self, disruption: Disruption) -> Self {
        self.disruption = disruption;
        self
    }
}

fn since(now: Timestamp, then: Timestamp) -> Duration {
    now.duration_since(then)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Decides, and updates `memory` with what the decision implies (not with its outcome: see
/// [`record_eviction`], [`record_pdb_block`], [`record_restart`]).
pub fn decide(obs: &Observation<'_>, memory: &mut Memory) -> Decision {
    let now = obs.now;
    if obs.conflict {
        return Decision::new(RebalanceState::Blocked, reason::CONFLICT);
    }
    let mut judged = (0, 0);
    if !memory.in_flight.is_empty() {
        judged = judge_in_flight(obs, memory);
        if !memory.in_flight.is_empty() {
            return with_judged(
                Decision::new(RebalanceState::Evicting, reason::AWAITING_REPLACEMENT).requeue(POLL),
                judged,
            );
        }
    }
    let decision = decide_settled(obs, memory, now);
    with_judged(decision, judged)
}

fn with_judged(mut d: Decision, (ok, failed): (u32, u32)) -> Decision {
    d.moves_succeeded = ok;
    d.moves_failed = failed;
    d
}

fn decide_settled(obs: &Observation<'_>, memory: &mut Memory, now: Timestamp) -> Decision {
    if let Some(until) = memory.backoff_until {
        if until > now {
            return Decision::new(RebalanceState::BackingOff, reason::REBALANCE_INEFFECTIVE)
                .requeue(since(until, now));
        }
        memory.backoff_until = None;
    }
    if obs.within_policy {
        memory.skewed_since = None;
        memory.episode = false;
        memory.pdb_blocked_until = None;
        return Decision::new(RebalanceState::Idle, reason::BALANCED);
    }
    let skewed_since = *memory.skewed_since.get_or_insert(now);
    if obs.paused {
        return Decision::new(RebalanceState::Blocked, reason::PAUSED);
    }
    if obs.rebalance.strategy == RebalanceStrategy::None {
        return Decision::new(RebalanceState::Idle, reason::REBALANCE_DISABLED);
    }
    if !obs.settled {
        return Decision::new(RebalanceState::Blocked, reason::ROLLOUT_IN_PROGRESS);
    }
    let stabilization = Duration::from_secs(obs.rebalance.stabilization_seconds.max(0) as u64);
    let held = since(now, skewed_since);
    if held < stabilization {
        return Decision::new(RebalanceState::Waiting, reason::STABILIZING)
            .requeue(stabilization - held);
    }
    let cooldown = Duration::from_secs(obs.rebalance.cooldown_seconds.max(0) as u64);
    if !memory.episode
        && let Some(last) = memory.last_action
        && since(now, last) < cooldown
    {
        return Decision::new(RebalanceState::Waiting, reason::COOLDOWN)
            .requeue(cooldown - since(now, last));
    }
    match obs.rebalance.strategy {
        RebalanceStrategy::Evict => decide_eviction(obs, memory, now),
        RebalanceStrategy::RolloutRestart => {
            if memory.episode {
                // The restart rolled out and the skew is still there: wait out the cooldown.
                memory.episode = false;
                return Decision::new(RebalanceState::Waiting, reason::COOLDOWN).requeue(cooldown);
            }
            Decision::new(RebalanceState::Restarting, reason::RESTARTING).act(Disruption::Restart)
        }
        RebalanceStrategy::None => Decision::new(RebalanceState::Idle, reason::REBALANCE_DISABLED),
    }
}

fn decide_eviction(obs: &Observation<'_>, memory: &mut Memory, now: Timestamp) -> Decision {
    if obs.ready_replicas < 2 {
        return Decision::new(RebalanceState::Blocked, reason::TOO_FEW_READY_REPLICAS);
    }
    if obs.budget_exhausted {
        return Decision::new(RebalanceState::Blocked, reason::POD_DISRUPTION_BUDGET)
            .requeue(PDB_RETRY);
    }
    if let Some(until) = memory.pdb_blocked_until
        && until > now
    {
        return Decision::new(RebalanceState::Blocked, reason::POD_DISRUPTION_BUDGET)
            .requeue(since(until, now));
    }
    match obs.plan {
        Ok(plan) => Decision::new(RebalanceState::Evicting, reason::EVICTING)
            .act(Disruption::Evict(plan.moves.clone()))
            .requeue(POLL),
        Err(Obstacle::AlreadyBalanced) => Decision::new(RebalanceState::Idle, reason::BALANCED),
        Err(obstacle) => Decision::new(RebalanceState::Blocked, obstacle.reason()),
    }
}

/// Judges the in-flight moves whose replacement has had its chance: the evicted pod is gone and
/// the workload is settled again (or the wait timed out). Returns (succeeded, failed).
fn judge_in_flight(obs: &Observation<'_>, memory: &mut Memory) -> (u32, u32) {
    let (mut ok, mut failed) = (0, 0);
    let mut still = Vec::new();
    for m in std::mem::take(&mut memory.in_flight) {
        let still_running = obs.running_pods.contains(m.pod_uid.as_str());
        if still_running && since(obs.now, m.at) >= EVICTION_SEEN_WITHIN {
            // Never evicted: neither a success nor a failure, and no longer in flight.
            continue;
        }
        let landed = obs.settled && !still_running;
        let timed_out = since(obs.now, m.at) >= REPLACEMENT_TIMEOUT;
        if !landed && !timed_out {
            still.push(m);
            continue;
        }
        // Landed means gone and the workload settled again: the replacement is Ready.
        let replacement = Replacement {
            ready: landed,
            domain: None,
        };
        match judge_move(&m.baseline, obs.measurement, &replacement) {
            MoveOutcome::Succeeded => ok += 1,
            MoveOutcome::Failed(_) | MoveOutcome::Pending => failed += 1,
        }
    }
    memory.in_flight = still;
    memory.failed_moves += failed;
    if ok > 0 && failed == 0 {
        memory.failed_moves = 0;
    }
    if memory.failed_moves >= FAILED_MOVES_BEFORE_BACKOFF {
        let next = memory
            .backoff
            .map(|b| (b * 2).min(MAX_BACKOFF))
            .unwrap_or(Duration::from_secs(
                obs.rebalance.cooldown_seconds.max(30) as u64
            ))
            .min(MAX_BACKOFF);
        memory.backoff = Some(next);
        memory.backoff_until = Some(plus(obs.now, next));
        memory.failed_moves = 0;
        memory.episode = false;
    }
    (ok, failed)
}

/// An eviction went through; `measurement` is the spread it was planned from.
pub fn record_eviction(memory: &mut Memory, m: &Move, measurement: &Measurement, now: Timestamp) {
    memory.in_flight.push(InFlight {
        pod: m.pod.clone(),
        pod_uid: m.pod_uid.clone(),
        topology_key: m.topology_key.clone(),
        to_domain: m.to_domain.clone(),
        at: now,
        baseline: Baseline::of(measurement, m),
    });
    memory.actions += 1;
    memory.last_action = Some(now);
    memory.episode = true;
    memory.pdb_blocked_until = None;
}

/// The Eviction API answered 429: the budget has no room now.
pub fn record_pdb_block(memory: &mut Memory, now: Timestamp) {
    memory.pdb_blocked_until = Some(plus(now, PDB_RETRY));
}

/// The workload was restarted.
pub fn record_restart(memory: &mut Memory, now: Timestamp) {
    memory.actions += 1;
    memory.last_action = Some(now);
    memory.episode = true;
}

pub mod persisted;

#[cfg(test)]
mod tests;
