//! Placeholder for the lblc scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Lblc;

impl Lblc {
    pub fn new(_config: &super::SchedConfig) -> Self {
        Lblc
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lblc
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
