//! Placeholder for the lblcr scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Lblcr;

impl Lblcr {
    pub fn new(_config: &super::SchedConfig) -> Self {
        Lblcr
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblcr
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
