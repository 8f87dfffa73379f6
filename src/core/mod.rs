//! The functional core: everything that decides, as pure functions over plain data (no I/O, no
//! clock, no client). The shell gathers what these functions read and carries out what they
//! return; tests call them directly, without a cluster.
//!
//! - [`topology`]: the scheduler's model: eligible nodes, domain counts, skew, the planner,
//!   zone loss, deletion costs.
//! - [`pipeline`]: one policy's reconcile as data: the policy phase ([`pipeline::policy`]) and, per
//!   workload, `assess` and `conclude`.
//! - [`decision`]: wait, act, back off or block for one workload, and the memory that survives
//!   restarts.
//! - [`workload`]: what a Deployment, StatefulSet or Rollout is to the operator (one descriptor per
//!   kind).
//! - [`constraints`], [`injection`]: the constraints a template gets, in template and admission
//!   mode.
//! - [`zone_health`]: Healthy, Out or Recovering for each zone of a policy's keys, which
//!   Adaptive entries follow; [`stranded`]: which Pending pods are deleted while a zone is Out.
//! - [`lease`]: when this process may write (leader election by monotonic time).
//! - [`pod_owner`]: which workload a pod is of, by its controller owner chain.
//! - [`ownership`], [`budgets`], [`policy_status`], [`snapshot`], [`errors`]: which policy governs a
//!   workload, whether a PodDisruptionBudget has room, the status a policy reports, API objects
//!   in the core's terms, and the fixed vocabulary of failures.

pub mod budgets;
pub mod capacity;
pub mod constraints;
pub mod decision;
pub mod errors;
pub mod expected;
pub mod injection;
pub mod lease;
pub mod ownership;
pub mod pipeline;
pub mod pod_owner;
pub mod policy_status;
pub mod rollout_slots;
pub mod snapshot;
pub mod stranded;
pub mod topology;
pub mod workload;
pub mod zone_health;
