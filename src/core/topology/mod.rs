//! The pure topology core: measuring skew and planning moves exactly as kube-scheduler counts.
//!
//! Everything here is synchronous and works on plain data ([`model`]), so it is tested with
//! tables and properties, without a cluster.

pub mod balance;
pub mod cluster;
pub mod deletion_cost;
pub mod eligibility;
pub mod fast_hash;
pub mod fixtures;
pub mod measure;
pub mod model;
pub mod outcome;
pub mod planner;
pub mod pod_memo;
pub mod scheduler;
pub mod zone_loss;

pub use balance::min_moves;
pub use cluster::{Cluster, NodeSet};
pub use deletion_cost::{CostPatch, DeletionCosts, cost_patches, cost_writes, deletion_costs};
pub use measure::{ConstraintMeasure, ExpectedView, Measurement, measure, skew_of};
pub use model::*;
pub use outcome::{Baseline, MoveOutcome, NotBetter, Replacement, distance, judge_move};
pub use planner::{Evaluation, Move, Obstacle, Plan, PlanOptions, evaluate, plan_rebalance};
pub use scheduler::{
    MAX_NODE_SCORE, Rejection, SpreadScore, accepts, candidate_nodes, node_accepts,
    replacement_scores, template_accepts, template_scores,
};
pub use zone_loss::{DomainLoss, own_pods_by_domain, pods_by_domain, worst_domain_loss};
