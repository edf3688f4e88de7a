//! Placeholder for the ovf scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Ovf;

impl Ovf {
    pub fn new() -> Self {
        Ovf
    }
}

impl Scheduler for Ovf {
    fn kind(&self) -> SchedKind {
        SchedKind::Ovf
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
