//! Deletes that Nomad (or something in front of it) answers badly never lose a job: a
//! 404 that is not Nomad's does not count as "the job is gone", and a token refused
//! during a delete keeps the finalizer with a way out. These need fault injection, so
//! they run on the simulator.

mod support;

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::operator::{Backend, Harness, ready_message};

/// Whether the job `id` runs in the simulator (exists and is not stopped).
async fn runs(h: &Harness, id: &str) -> bool {
    h.nomad_job(id)
        .await
        .is_some_and(|job| job["Stop"] != json!(true))
}

#[tokio::test]
async fn a_proxys_404_during_a_delete_is_not_the_job_being_gone() {
    let h = Harness::start_on(Backend::Sim, "delete-404", &[]).await;
    let sim = h.sim().expect("simulator");
    h.apply_ready(
        "web",
        json!({"job": h.service_job(1, "/bin/sleep", &["3600"], false)}),
    )
    .await;
    // Something in front of Nomad answers the cleanup's read of the job with a bare 404,
    // three times.
    sim.add_fault(nomad_sim::Fault {
        method: Some("GET".into()),
        path: "/v1/job/web".into(),
        status: Some(404),
        body: Some(String::new()),
        times: Some(3),
        ..Default::default()
    });
    h.delete_and_wait("web").await;
    assert_eq!(
        h.count("DELETE", "/v1/job/web"),
        1,
        "the job was deregistered once the real answer came: {:?}",
        h.requests()
    );
    assert!(!runs(&h, "web").await, "the job does not run on, orphaned");
}

#[tokio::test]
async fn a_token_refused_during_a_delete_keeps_the_job_and_says_how_out() {
    let h = Harness::start_on(Backend::Sim, "delete-403", &[]).await;
    let sim = h.sim().expect("simulator");
    let spec = |policy: &str| json!({"job": h.service_job(1, "/bin/sleep", &["3600"], false), "deletionPolicy": policy});
    h.apply_ready("web", spec("Deregister")).await;
    sim.add_fault(nomad_sim::Fault {
        method: Some("DELETE".into()),
        path: "/v1/job/web".into(),
        status: Some(403),
        body: Some("Permission denied".into()),
        ..Default::default()
    });
    h.api()
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = h
        .wait_condition("web", "Stalled", "True", Some("PermissionDenied"))
        .await;
    let message = ready_message(&obj);
    assert!(
        message.contains("finalizer stays") && message.contains("deletionPolicy to Orphan"),
        "{message}"
    );
    assert!(runs(&h, "web").await);
    let events = h.events("web").await;
    assert_eq!(
        events
            .iter()
            .filter(|(r, _)| r == "PermissionDenied")
            .count(),
        1,
        "{events:?}"
    );

    // The way out the message names: leave the job in Nomad.
    h.api()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Orphan"}})),
        )
        .await
        .expect("patch");
    support::operator::wait_until("the object to go", || async {
        h.api().get_opt("web").await.expect("get").is_none()
    })
    .await;
    assert!(runs(&h, "web").await, "the job is left running, as asked");
}
