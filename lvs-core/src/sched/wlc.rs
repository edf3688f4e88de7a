//! Placeholder for the wlc scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Wlc;

impl Wlc {
    pub fn new() -> Self {
        Wlc
    }
}

impl Scheduler for Wlc {
    fn kind(&self) -> SchedKind {
        SchedKind::Wlc
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
