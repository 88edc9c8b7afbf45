//! Health in the extension: `read` gathers the inputs of the pure health logic
//! (`pitstop_core::health`) through SPI, and `sql` holds the thin SQL entry points that the views
//! of `sql/schema/health.sql` sit on (and `config_advice`).

pub(crate) mod read;
pub mod sql;
