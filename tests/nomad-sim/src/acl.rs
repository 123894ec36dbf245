//! ACL token checks: with a configured token every `/v1` request (except the
//! status endpoints) must carry it in `X-Nomad-Token`.

use axum::http::HeaderMap;

use crate::jobs::ApiError;

/// Paths Nomad serves without a token.
fn exempt(path: &str) -> bool {
    path.starts_with("/v1/status/") || path == "/v1/agent/health"
}

/// Checks the request's token against the configured one.
pub(crate) fn check(
    configured: Option<&str>,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let Some(want) = configured else {
        return Ok(());
    };
    if exempt(path) {
        return Ok(());
    }
    match headers.get("X-Nomad-Token").and_then(|v| v.to_str().ok()) {
        None | Some("") => Err(ApiError::Forbidden("Permission denied".into())),
        Some(got) if got == want => Ok(()),
        Some(_) => Err(ApiError::Forbidden("ACL token not found".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules() {
        let mut h = HeaderMap::new();
        assert!(check(None, "/v1/jobs", &h).is_ok());
        assert_eq!(
            check(Some("s3cret"), "/v1/jobs", &h),
            Err(ApiError::Forbidden("Permission denied".into()))
        );
        assert!(check(Some("s3cret"), "/v1/status/leader", &h).is_ok());
        h.insert("X-Nomad-Token", "wrong".parse().expect("header"));
        assert_eq!(
            check(Some("s3cret"), "/v1/jobs", &h),
            Err(ApiError::Forbidden("ACL token not found".into()))
        );
        h.insert("X-Nomad-Token", "s3cret".parse().expect("header"));
        assert!(check(Some("s3cret"), "/v1/jobs", &h).is_ok());
    }
}
