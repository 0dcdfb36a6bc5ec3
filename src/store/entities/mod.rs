//! sea-orm entities, one file per table.

pub mod observation;
pub mod server_key;
