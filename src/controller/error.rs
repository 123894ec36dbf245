//! Errors of a reconcile, with the category used as Event reason and metric label.

use crate::nomad::NomadError;

/// What stopped a reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Nomad call failed.
    #[error("Nomad: {0}")]
    Nomad(#[from] NomadError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object lacks a namespace or a name.
    #[error("the object has no namespace or name")]
    MissingObjectKey,
    /// Someone else kept changing the job between plan and register.
    #[error(
        "the Nomad job kept changing between plan and register (check-and-set failed {0} times); will re-plan"
    )]
    CasExhausted(u32),
    /// A write to Kubernetes was not made: this replica no longer leads.
    #[error("not written: this replica is no longer the leader")]
    NotLeader,
    /// Adding or removing the finalizer failed, or the cleanup failed.
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// The error with the values of Secrets replaced in Nomad's messages (which may echo
    /// the job).
    pub fn redacted(self, redactor: &crate::jobspec::Redactor) -> Self {
        match self {
            Self::Nomad(e) if !redactor.is_empty() => {
                Self::Nomad(e.map_message(|m| redactor.text(m)))
            }
            other => other,
        }
    }

    /// A stable snake_case label, used as metric label and in logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Nomad(e) => e.category(),
            Self::Kube(_) => "kubernetes",
            Self::MissingObjectKey => "invalid_object",
            Self::CasExhausted(_) => "conflict",
            Self::NotLeader => "not_leader",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                _ => "kubernetes",
            },
        }
    }
}
