//! Placeholder for the twos scheduler (being implemented).
#![allow(missing_docs)]
use super::*;

#[derive(Debug, Default)]
pub struct Twos;

impl Twos {
    pub fn new() -> Self {
        Twos
    }
}

impl Scheduler for Twos {
    fn kind(&self) -> SchedKind {
        SchedKind::Twos
    }
    fn update(&mut self, _dests: &[DestInfo], _change: DestChange) {}
    fn schedule(&mut self, _d: &[DestInfo], _f: &FlowKey, _c: &mut SchedContext<'_>) -> Option<usize> {
        None
    }
}
