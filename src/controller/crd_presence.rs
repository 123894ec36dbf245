//! Whether the `NomadJob` CRD itself is going away (one read, and a pure decision).
//!
//! `kubectl delete -f deploy/` deletes the CRD, and Kubernetes then deletes every
//! `NomadJob`. Those deletions are the operator being uninstalled, not users asking for
//! their Nomad jobs to stop, so cleanup leaves the jobs running while the CRD is going.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::{Client, CustomResourceExt};

use crate::crd::NomadJob;

/// Reads the `nomadjobs.nomadoperator.dev` CustomResourceDefinition's metadata and says
/// whether it is being deleted ([`terminating`]).
///
/// Deleting the CRD deletes every `NomadJob`; without this check each of those deletions
/// would stop or purge its Nomad job, so uninstalling the operator would take down every
/// job it ever registered. A CRD that is already gone (404) counts as terminating: the
/// objects still in the operator's cache are being deleted with it.
///
/// Needs `get` on that one CRD (the chart's `<fullname>-crd` ClusterRole). Any other error
/// (403 included) is returned as is, for the caller to retry rather than guess.
pub async fn crd_terminating(client: &Client) -> Result<bool, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let found = crds.get_metadata_opt(NomadJob::crd_name()).await?;
    Ok(terminating(found.as_ref().map(|crd| &crd.metadata)))
}

/// Whether a CRD, given its metadata (`None`: not found), is going away: it is gone, or it
/// has a `deletionTimestamp`.
pub fn terminating(crd: Option<&ObjectMeta>) -> bool {
    crd.is_none_or(|meta| meta.deletion_timestamp.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn gone_or_being_deleted_is_terminating_and_present_is_not() {
        let present = ObjectMeta {
            name: Some(NomadJob::crd_name().into()),
            ..ObjectMeta::default()
        };
        let deleting = ObjectMeta {
            deletion_timestamp: Some(Time(Timestamp::UNIX_EPOCH)),
            ..present.clone()
        };
        assert!(!terminating(Some(&present)));
        assert!(terminating(Some(&deleting)));
        assert!(terminating(None));
    }

    #[test]
    fn reads_the_operators_own_crd() {
        assert_eq!(NomadJob::crd_name(), "nomadjobs.nomadoperator.dev");
    }
}
