//! Has a rollout finished? A pure predicate on an object as the API server returns it.
//!
//! Beyond "updated == available == desired" this checks that the controller has seen the
//! latest spec (`status.observedGeneration >= metadata.generation`): right after an apply the
//! status still describes the previous rollout, which looks complete. A Deployment whose
//! `Progressing` condition says `ProgressDeadlineExceeded` has failed and will not recover by
//! waiting longer.

use serde_json::Value;

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Complete,
    /// Still going, with what it waits for.
    Progressing(String),
    /// Will not complete without a change.
    Failed(String),
}

/// The rollout state of a Deployment or StatefulSet; other kinds are complete once applied.
pub fn rollout_state(object: &Value) -> Rollout {
    let kind = object["kind"].as_str().unwrap_or("");
    if !matches!(kind, "Deployment" | "StatefulSet") {
        return Rollout::Complete;
    }
    let status = &object["status"];
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = status["observedGeneration"].as_i64().unwrap_or(-1);
    if observed < generation {
        return Rollout::Progressing(format!(
            "the controller has not seen generation {generation} yet (observed {})",
            observed.max(0)
        ));
    }
    if kind == "Deployment" {
        if let Some(conditions) = status["conditions"].as_array() {
            for c in conditions {
                if c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded" {
                    return Rollout::Failed(format!(
                        "progress deadline exceeded: {}",
                        c["message"].as_str().unwrap_or("no message")
                    ));
                }
            }
        }
    }
    let desired = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let count = |field: &str| status[field].as_i64().unwrap_or(0);
    let (replicas, updated, available) = (
        count("replicas"),
        count("updatedReplicas"),
        count("availableReplicas"),
    );
    if updated < desired {
        return Rollout::Progressing(format!("{updated} of {desired} replicas updated"));
    }
    if replicas > updated {
        return Rollout::Progressing(format!(
            "{} old replicas pending termination",
            replicas - updated
        ));
    }
    if available < desired {
        return Rollout::Progressing(format!(
            "{available} of {desired} updated replicas available"
        ));
    }
    if kind == "StatefulSet" {
        let (current, update) = (&status["currentRevision"], &status["updateRevision"]);
        if update.is_string() && current != update {
            return Rollout::Progressing(format!(
                "revision {} not yet rolled out",
                update.as_str().unwrap_or("")
            ));
        }
    }
    Rollout::Complete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(yaml: &str) -> Rollout {
        let v: Value = serde_saphyr::from_str(yaml).unwrap();
        rollout_state(&v)
    }

    const DONE: &str = "kind: Deployment\nmetadata: {generation: 4}\nspec: {replicas: 3}\nstatus: {observedGeneration: 4, replicas: 3, updatedReplicas: 3, availableReplicas: 3, readyReplicas: 3}\n";

    #[test]
    fn complete_deployment() {
        assert_eq!(state(DONE), Rollout::Complete);
    }

    #[test]
    fn stale_status_is_not_complete() {
        // The status of the previous rollout, just after an apply bumped the generation.
        let s = state(&DONE.replace("generation: 4}", "generation: 5}"));
        assert_eq!(
            s,
            Rollout::Progressing(
                "the controller has not seen generation 5 yet (observed 4)".into()
            )
        );
        let s = state("kind: Deployment\nmetadata: {generation: 1}\nspec: {replicas: 1}\n");
        assert!(matches!(s, Rollout::Progressing(m) if m.contains("observed 0")));
    }

    #[test]
    fn counts() {
        let s = state(&DONE.replace("updatedReplicas: 3", "updatedReplicas: 1"));
        assert_eq!(s, Rollout::Progressing("1 of 3 replicas updated".into()));
        let s = state(&DONE.replace("replicas: 3, updated", "replicas: 4, updated"));
        assert_eq!(
            s,
            Rollout::Progressing("1 old replicas pending termination".into())
        );
        let s = state(&DONE.replace("availableReplicas: 3", "availableReplicas: 2"));
        assert_eq!(
            s,
            Rollout::Progressing("2 of 3 updated replicas available".into())
        );
        // Scaled to zero is complete; no spec.replicas means one.
        assert_eq!(
            state("kind: Deployment\nmetadata: {generation: 2}\nspec: {replicas: 0}\nstatus: {observedGeneration: 2}\n"),
            Rollout::Complete
        );
        assert!(matches!(
            state("kind: Deployment\nmetadata: {generation: 2}\nspec: {}\nstatus: {observedGeneration: 2}\n"),
            Rollout::Progressing(_)
        ));
    }

    #[test]
    fn progress_deadline_exceeded_fails() {
        let yaml = "kind: Deployment\nmetadata: {generation: 2}\nspec: {replicas: 1}\nstatus:\n  observedGeneration: 2\n  replicas: 1\n  updatedReplicas: 1\n  conditions:\n    - {type: Available, status: 'False'}\n    - {type: Progressing, status: 'False', reason: ProgressDeadlineExceeded, message: 'ReplicaSet \"web-5d\" has timed out progressing.'}\n";
        assert_eq!(
            state(yaml),
            Rollout::Failed(
                "progress deadline exceeded: ReplicaSet \"web-5d\" has timed out progressing."
                    .into()
            )
        );
    }

    #[test]
    fn statefulsets_wait_for_the_revision() {
        let sts = "kind: StatefulSet\nmetadata: {generation: 3}\nspec: {replicas: 2}\nstatus: {observedGeneration: 3, replicas: 2, updatedReplicas: 2, availableReplicas: 2, currentRevision: db-1, updateRevision: db-2}\n";
        assert_eq!(
            state(sts),
            Rollout::Progressing("revision db-2 not yet rolled out".into())
        );
        assert_eq!(state(&sts.replace("db-1", "db-2")), Rollout::Complete);
    }

    #[test]
    fn other_kinds_are_complete() {
        assert_eq!(
            state("kind: Service\nmetadata: {name: a}\n"),
            Rollout::Complete
        );
    }
}
