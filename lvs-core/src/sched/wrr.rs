//! Placeholder for the wrr scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Wrr;

impl Wrr {
    pub fn new() -> Self {
        Wrr
    }
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedKind {
        SchedKind::Wrr
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
