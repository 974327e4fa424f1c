//! What can go wrong inside the engine.

/// An engine failure, with its cause kept.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Window state (a store, a snapshot) refused an operation.
    #[error(transparent)]
    Ingest(#[from] yujing_ingest::IngestError),
    /// A rule's aggregate query or its grading failed.
    #[error(transparent)]
    Rules(#[from] yujing_rules::RulesError),
}
