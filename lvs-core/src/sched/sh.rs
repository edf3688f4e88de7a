//! Placeholder for the sh scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Sh;

impl Sh {
    pub fn new(_flags: super::SchedFlags, _hash: super::HashVariant) -> Self {
        Sh
    }
}

impl Scheduler for Sh {
    fn kind(&self) -> SchedKind {
        SchedKind::Sh
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
