//! Placeholder for the nq scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Nq;

impl Nq {
    pub fn new() -> Self {
        Nq
    }
}

impl Scheduler for Nq {
    fn kind(&self) -> SchedKind {
        SchedKind::Nq
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
