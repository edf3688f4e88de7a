//! Placeholder for the rr scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Rr;

impl Rr {
    pub fn new() -> Self {
        Rr
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedKind {
        SchedKind::Rr
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
