//! Placeholder for the sed scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Sed;

impl Sed {
    pub fn new() -> Self {
        Sed
    }
}

impl Scheduler for Sed {
    fn kind(&self) -> SchedKind {
        SchedKind::Sed
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
