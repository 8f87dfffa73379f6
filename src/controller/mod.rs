//! The imperative shell: watches the cluster, hands what it sees to the core, carries out what
//! comes back.

pub mod stores;
