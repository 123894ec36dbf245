//! Allocation endpoints: list, read, and a job's allocations.

use super::client::{Blocking, Call, Indexed, NomadClient, Scope};
use super::error::NomadError;
use super::types::{Allocation, AllocationListStub};

impl NomadClient {
    /// `GET /v1/allocations`: the allocations of the scope (namespace `"*"` = all),
    /// optionally by ID prefix, optionally as a blocking query.
    pub async fn list_allocations(
        &self,
        scope: &Scope,
        prefix: Option<&str>,
        blocking: Option<Blocking>,
    ) -> Result<Indexed<Vec<AllocationListStub>>, NomadError> {
        let call = Call::get(scope, &["allocations"])
            .prefix(prefix)
            .blocking(blocking);
        self.execute_nullable(call).await
    }

    /// `GET /v1/allocation/:id`: one allocation (full UUID) in detail.
    pub async fn read_allocation(&self, scope: &Scope, id: &str) -> Result<Allocation, NomadError> {
        let call = Call::get(scope, &["allocation", id]);
        Ok(self.execute::<Allocation>(call).await?.value)
    }

    /// `GET /v1/job/:id/allocations`: the job's allocations (`[]` for an unknown job);
    /// with `all`, also those of earlier job instances with the same ID.
    pub async fn job_allocations(
        &self,
        scope: &Scope,
        id: &str,
        all: bool,
        blocking: Option<Blocking>,
    ) -> Result<Indexed<Vec<AllocationListStub>>, NomadError> {
        let mut call = Call::get(scope, &["job", id, "allocations"]).blocking(blocking);
        if all {
            call = call.query("all", "true");
        }
        self.execute_nullable(call).await
    }
}
