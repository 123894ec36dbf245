//! How a team reaches its Nomad: the namespaced `NomadConnection` and the cluster-scoped
//! `ClusterNomadConnection`, each an address, region, TLS and ACL token (from Secrets),
//! and the Nomad namespaces jobs through it may use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What both kinds of connection say.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettings {
    /// Address of the Nomad HTTP API, such as `https://nomad.example:4646`.
    pub address: String,
    /// The Nomad region; unset leaves it to the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The Nomad namespaces jobs through this connection may use (`*` matches any run of
    /// characters, as in `team-a-*`). A job in any other namespace is refused
    /// (`PolicyDenied`) before any Nomad call. The first entry without `*` is the
    /// namespace of jobs that name none.
    pub namespaces: Vec<String>,
    /// The Secret key holding the ACL token (a NomadConnection's Secret is in its own
    /// namespace; a ClusterNomadConnection's in the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ConnectionTls>,
}

/// A key of a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key (default `token` for a token, `ca.crt` for a CA bundle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// TLS towards Nomad.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTls {
    /// The CA bundle (PEM) that signs Nomad's certificate (key default `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// A `kubernetes.io/tls` Secret with the client certificate (`tls.crt`) and key
    /// (`tls.key`), for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<String>,
    /// The name to verify Nomad's certificate against, instead of the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// A team's way to its Nomad, usable by the NomadJobs of its own namespace.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "nomadoperator.dev",
    version = "v1alpha1",
    kind = "NomadConnection",
    plural = "nomadconnections",
    shortname = "ncon",
    category = "nomad",
    namespaced,
    doc = "How the NomadJobs of this namespace reach a Nomad cluster: address, region, TLS and ACL token (from Secrets of this namespace), and the Nomad namespaces they may use.",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NomadConnectionSpec {
    /// The connection.
    #[serde(flatten)]
    pub settings: ConnectionSettings,
}

/// A platform team's way to a Nomad cluster, usable by the NomadJobs of the Kubernetes
/// namespaces it selects.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "nomadoperator.dev",
    version = "v1alpha1",
    kind = "ClusterNomadConnection",
    plural = "clusternomadconnections",
    shortname = "cncon",
    category = "nomad",
    doc = "How the NomadJobs of the selected Kubernetes namespaces reach a Nomad cluster: address, region, TLS and ACL token (from Secrets of the operator's namespace), and the Nomad namespaces they may use.",
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#,
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNomadConnectionSpec {
    /// The connection.
    #[serde(flatten)]
    pub settings: ConnectionSettings,
    /// The Kubernetes namespaces whose NomadJobs may use it, by their labels (such as
    /// `kubernetes.io/metadata.name`). Required: an empty selector selects every
    /// namespace.
    pub namespace_selector: LabelSelector,
}

/// `spec.connectionRef` of a NomadJob.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionRef {
    /// `NomadConnection` (in the object's namespace, the default) or
    /// `ClusterNomadConnection`.
    #[serde(default)]
    pub kind: ConnectionKind,
    /// Its name.
    pub name: String,
}

/// The two kinds of connection.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConnectionKind {
    /// A `NomadConnection` of the object's namespace.
    #[default]
    NomadConnection,
    /// A `ClusterNomadConnection`.
    ClusterNomadConnection,
}
