//! The result cache's decisions: the key that names a result (`key`), the store's policy
//! over its shared memory (`store`), and the reasons a call does not use the cache.

pub mod key;
pub mod store;

/// Event counters kept in shared memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Hits,
    Misses,
    Fills,
    Invalidations,
    Evictions,
    Stale,
    /// Calls served or filled under pitstop.cache_replica_ttl_only (standby or subscriber).
    TtlOnly,
}
pub const COUNTERS: usize = 7;

/// Why a call did not use the cache. Stored as counters after the event counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bypass {
    Disabled,
    VolatileFunction,
    StableFunction,
    ForUpdate,
    RowLevelSecurity,
    RepeatableRead,
    OwnWrite,
    TemporaryTable,
    SystemCatalog,
    ForeignTable,
    Standby,
    Subscriber,
    TooLarge,
    TooManyRelations,
    CacheFull,
    InternalError,
    Sequence,
    RelativeTime,
    /// A result column can hold anonymous records, whose type ids are private to a backend.
    AnonymousRecord,
}

impl Bypass {
    pub const ALL: [Bypass; 19] = [
        Bypass::Disabled,
        Bypass::VolatileFunction,
        Bypass::StableFunction,
        Bypass::ForUpdate,
        Bypass::RowLevelSecurity,
        Bypass::RepeatableRead,
        Bypass::OwnWrite,
        Bypass::TemporaryTable,
        Bypass::SystemCatalog,
        Bypass::ForeignTable,
        Bypass::Standby,
        Bypass::Subscriber,
        Bypass::TooLarge,
        Bypass::TooManyRelations,
        Bypass::CacheFull,
        Bypass::InternalError,
        Bypass::Sequence,
        Bypass::RelativeTime,
        Bypass::AnonymousRecord,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Bypass::Disabled => "disabled",
            Bypass::VolatileFunction => "volatile_function",
            Bypass::StableFunction => "stable_function",
            Bypass::ForUpdate => "for_update",
            Bypass::RowLevelSecurity => "row_level_security",
            Bypass::RepeatableRead => "repeatable_read",
            Bypass::OwnWrite => "own_uncommitted_write",
            Bypass::TemporaryTable => "temporary_table",
            Bypass::SystemCatalog => "system_catalog",
            Bypass::ForeignTable => "foreign_table",
            Bypass::Standby => "standby",
            Bypass::Subscriber => "logical_replication_subscriber",
            Bypass::TooLarge => "result_too_large",
            Bypass::TooManyRelations => "too_many_relations",
            Bypass::CacheFull => "cache_full",
            Bypass::InternalError => "internal_error",
            Bypass::Sequence => "sequence",
            Bypass::RelativeTime => "relative_time",
            Bypass::AnonymousRecord => "anonymous_record",
        }
    }
}
