//! The pure topology core: measuring skew and planning moves exactly as kube-scheduler counts.
//!
//! Everything here is synchronous and works on plain data ([`model`]), so it is tested with
//! tables and properties, without a cluster.

pub mod balance;
pub mod cluster;
pub mod deletion_cost;
pub mod eligibility;
pub mod fast_hash;
pub mod measure;
pub mod model;
pub mod planner;
pub mod zone_loss;

pub use balance::min_moves;
pub use cluster::Cluster;
pub use deletion_cost::{DeletionCosts, cost_patches, deletion_costs};
pub use measure::{ConstraintMeasure, Measurement, measure, skew_of};
pub use model::*;
pub use planner::{Evaluation, Move, Obstacle, Plan, PlanOptions, evaluate, plan_rebalance};
pub use zone_loss::{DomainLoss, pods_by_domain, worst_domain_loss};
