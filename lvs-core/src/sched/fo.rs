//! Placeholder for the fo scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Fo;

impl Fo {
    pub fn new() -> Self {
        Fo
    }
}

impl Scheduler for Fo {
    fn kind(&self) -> SchedKind {
        SchedKind::Fo
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
