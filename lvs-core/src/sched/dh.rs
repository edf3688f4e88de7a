//! Placeholder for the dh scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Dh;

impl Dh {
    pub fn new(_hash: super::HashVariant) -> Self {
        Dh
    }
}

impl Scheduler for Dh {
    fn kind(&self) -> SchedKind {
        SchedKind::Dh
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
