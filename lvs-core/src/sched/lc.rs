//! Placeholder for the lc scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Lc;

impl Lc {
    pub fn new() -> Self {
        Lc
    }
}

impl Scheduler for Lc {
    fn kind(&self) -> SchedKind {
        SchedKind::Lc
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
