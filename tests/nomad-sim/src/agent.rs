//! The Nomad release the simulator emulates (`SimConfig::version`) and
//! `GET /v1/agent/self`, which tells clients what release they talk to.
//!
//! What differs between releases in the simulator: `POST /v1/jobs/parse` takes a
//! request's `Variables` (var-file text) from [`PARSE_VARIABLES_SINCE`] on, and then
//! prefixes its HCL2 errors with `Failed to parse job: `; `hclv1` is gone from
//! [`HCL1_REMOVED_IN`] on (the field is ignored, every file is HCL2).

use serde_json::{Value, json};

/// First release whose `JobsParseRequest` has `Variables` (Nomad 1.6.0; 1.5.x has none).
pub(crate) const PARSE_VARIABLES_SINCE: (u64, u64, u64) = (1, 6, 0);
/// First release without the HCL1 parser (`hclv1` no longer exists).
pub(crate) const HCL1_REMOVED_IN: (u64, u64, u64) = (1, 9, 0);

/// A release as `1.6.3`, `1.6.0-beta.1` or `1.10.2+ent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Release {
    pub number: (u64, u64, u64),
    pub version: String,
    pub prerelease: String,
    pub metadata: String,
}

impl Default for Release {
    /// 1.1.2, the release the simulator was measured against.
    fn default() -> Self {
        Release {
            number: (1, 1, 2),
            version: "1.1.2".into(),
            prerelease: String::new(),
            metadata: String::new(),
        }
    }
}

impl Release {
    /// Parses `MAJOR.MINOR.PATCH[-PRERELEASE][+METADATA]` (a leading `v` allowed).
    pub(crate) fn parse(text: &str) -> Option<Release> {
        let text = text.trim().trim_start_matches('v');
        let (rest, metadata) = text.split_once('+').unwrap_or((text, ""));
        let (version, prerelease) = rest.split_once('-').unwrap_or((rest, ""));
        let mut parts = version.split('.').map(|p| p.parse::<u64>().ok());
        let number = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => (a, b, c),
            _ => return None,
        };
        Some(Release {
            number,
            version: version.to_string(),
            prerelease: prerelease.to_string(),
            metadata: metadata.to_string(),
        })
    }

    /// Whether this release is `at` or later (a prerelease counts as its release).
    pub(crate) fn at_least(&self, at: (u64, u64, u64)) -> bool {
        self.number >= at
    }
}

/// What the parse endpoint of this release does with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ParseFeatures {
    /// `Variables` is read (and errors start with `Failed to parse job: `).
    pub variables: bool,
    /// `hclv1` is read.
    pub hcl1: bool,
}

impl Release {
    pub(crate) fn parse_features(&self) -> ParseFeatures {
        ParseFeatures {
            variables: self.at_least(PARSE_VARIABLES_SINCE),
            hcl1: !self.at_least(HCL1_REMOVED_IN),
        }
    }
}

/// `GET /v1/agent/self` of a single dev-mode agent (server and client) of `release`,
/// shaped like Nomad's: `config`, `member`, `stats`.
pub(crate) fn agent_self(release: &Release, node_id: &str, acl: bool, port: u16) -> Value {
    let version = &release.version;
    json!({
        "config": {
            "ACL": {"Enabled": acl, "PolicyTTL": 30_000_000_000u64, "ReplicationToken": "",
                    "TokenTTL": 30_000_000_000u64},
            "Addresses": {"HTTP": "127.0.0.1", "RPC": "127.0.0.1", "Serf": "127.0.0.1"},
            "AdvertiseAddrs": {"HTTP": format!("127.0.0.1:{port}"), "RPC": "127.0.0.1:4647",
                               "Serf": "127.0.0.1:4648"},
            "BindAddr": "127.0.0.1",
            "Client": {"Enabled": true, "NodeClass": "", "Meta": {}, "Options": {}},
            "DataDir": "",
            "Datacenter": "dc1",
            "DevMode": true,
            "DisableUpdateCheck": true,
            "LogLevel": "INFO",
            "NodeName": "",
            "Ports": {"HTTP": port, "RPC": 4647, "Serf": 4648},
            "Region": "global",
            "Server": {"Enabled": true, "BootstrapExpect": 1, "EnabledSchedulers": null,
                       "NumSchedulers": null},
            "Version": {
                "Revision": "",
                "Version": version,
                "VersionMetadata": release.metadata,
                "VersionPrerelease": release.prerelease,
            },
        },
        "member": {
            "Addr": "127.0.0.1",
            "DelegateCur": 4, "DelegateMax": 5, "DelegateMin": 2,
            "Name": "nomad-sim.global",
            "Port": 4648,
            "ProtocolCur": 2, "ProtocolMax": 5, "ProtocolMin": 1,
            "Status": "alive",
            "Tags": {
                "bootstrap": "1", "build": version, "dc": "dc1", "expect": "1",
                "id": node_id, "mvn": "1", "port": "4647", "raft_vsn": "3",
                "region": "global", "role": "nomad", "rpc_addr": "127.0.0.1", "vsn": "1",
            },
        },
        "stats": {
            "client": {"heartbeat_ttl": "15s", "known_servers": "127.0.0.1:4647",
                       "last_heartbeat": "1s", "node_id": node_id, "num_allocations": "0"},
            "nomad": {"bootstrap": "true", "known_regions": "1", "leader": "true",
                      "leader_addr": "127.0.0.1:4647", "server": "true"},
            "raft": {"state": "Leader", "num_peers": "0", "protocol_version": "3"},
            "runtime": {"arch": "amd64", "cpu_count": "1", "goroutines": "100",
                        "kernel.name": "linux", "max_procs": "1", "version": "go"},
            "serf": {"members": "1", "failed": "0", "left": "0", "encrypted": "false"},
            "vault": {"token_expire_time": "", "token_ttl": "0s", "tracked_for_revoked": "0"},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_and_their_parse_features() {
        let r = Release::parse("1.10.2-beta.1+ent").expect("parse");
        assert_eq!(r.number, (1, 10, 2));
        assert_eq!(
            (
                r.version.as_str(),
                r.prerelease.as_str(),
                r.metadata.as_str()
            ),
            ("1.10.2", "beta.1", "ent")
        );
        assert!(Release::parse("1.6").is_none());
        assert!(Release::parse("latest").is_none());
        let features = |v: &str| Release::parse(v).expect("parse").parse_features();
        assert_eq!(
            features("1.1.2"),
            ParseFeatures {
                variables: false,
                hcl1: true
            }
        );
        assert!(!features("1.5.17").variables);
        assert!(features("v1.6.0").variables);
        assert!(features("1.8.4").hcl1);
        assert!(!features("1.9.0").hcl1);
    }
}
