//! Three zones at scale (ignored by default; `make e2e-scale`).

use crate::harness::Ctx;

pub async fn three_zones_at_scale(_ctx: Ctx) {
    todo!()
}
