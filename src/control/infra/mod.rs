//! The replica's machinery the use cases share: the clock, ids, page tokens, failpoints, the
//! periodic loop, the event bus, the lease cache and the in-memory snapshot of hot state. No use case lives
//! here.

pub mod clock;
pub mod events;
pub mod every;
pub mod failpoints;
pub mod ids;
pub mod lease_cache;
pub mod paging;
pub mod snapshot;
pub mod supervise;
