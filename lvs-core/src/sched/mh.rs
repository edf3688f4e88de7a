//! Placeholder for the mh scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Mh;

impl Mh {
    pub fn new(_flags: super::SchedFlags, _m: u32) -> Self {
        Mh
    }
}

impl Scheduler for Mh {
    fn kind(&self) -> SchedKind {
        SchedKind::Mh
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
