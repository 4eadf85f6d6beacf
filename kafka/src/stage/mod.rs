//! A stage as the runtime sees it: the [`Processor`] it runs, the [`StageLoop`] that owns the
//! delivery semantics, and the [`Backend`] (the broker) under that loop.

mod backend;
#[cfg(test)]
mod memory;
mod processor;
mod stage_loop;
#[cfg(test)]
mod tests;

pub use backend::{Backend, Delivery, InputPosition, RecordStream, record_headers};
pub use processor::{
    CHECKPOINT_OFFSET_HEADER, CHECKPOINT_TOPIC_HEADER, CLUSTER_HEADER, Incoming, Outgoing,
    Processor, RuntimeError, StateKeeping, TopicSpec, dead_letter, header_text,
};
pub use stage_loop::{Acknowledgement, CheckpointPositions, CommitStrategy, LoopLimits, StageLoop};
