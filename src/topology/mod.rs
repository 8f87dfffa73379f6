//! The pure topology core: measuring skew and planning moves exactly as kube-scheduler counts.
