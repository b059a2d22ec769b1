//! The one error type of a session: what went wrong, and which of the three kinds it is, which
//! alone decides the exit code.

use crate::Exit;

/// Why a command stopped without a verdict of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The user's side: an option, a file, a path, a port or an interface (exit 2). Reported
    /// before any traffic is sent wherever it can be known then.
    BadInput,
    /// A target, the cluster, the registry or the deploy API failed (exit 4).
    Remote,
    /// Ctrl-C or SIGTERM ended the command before it had anything to report (exit 3).
    Interrupted,
}

/// A failure with its kind; printed as one line by the command line.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub error: anyhow::Error,
}

impl Failure {
    /// A mistake on the user's side (exit 2).
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            kind: FailureKind::BadInput,
            error: error.into(),
        }
    }

    /// [`Failure::bad_input`] from a message.
    pub fn bad_input_msg(message: impl std::fmt::Display) -> Self {
        Failure::bad_input(anyhow::anyhow!("{message}"))
    }

    /// A target, the cluster, the registry or the deploy API failed (exit 4).
    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            kind: FailureKind::Remote,
            error: error.into(),
        }
    }

    /// Interrupted before there was anything to report (exit 3).
    pub fn interrupted(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            kind: FailureKind::Interrupted,
            error: error.into(),
        }
    }

    /// The process exit code of this failure.
    pub fn exit(&self) -> Exit {
        match self.kind {
            FailureKind::BadInput => Exit::BadInput,
            FailureKind::Remote => Exit::Runtime,
            FailureKind::Interrupted => Exit::Inconclusive,
        }
    }

    /// The error and its causes on one line; a cause whose text the message already quotes
    /// is not repeated.
    pub fn message(&self) -> String {
        let mut text = String::new();
        for cause in self.error.chain() {
            let part = cause.to_string();
            if !text.contains(&part) {
                if !text.is_empty() {
                    text.push_str(": ");
                }
                text.push_str(&part);
            }
        }
        text
    }
}

/// Either an exit code chosen by the command (a verdict) or a failure.
pub type CommandResult = Result<Exit, Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_exit_codes() {
        assert_eq!(Failure::bad_input_msg("x").exit(), Exit::BadInput);
        assert_eq!(Failure::runtime(anyhow::anyhow!("x")).exit(), Exit::Runtime);
        assert_eq!(
            Failure::interrupted(anyhow::anyhow!("x")).exit(),
            Exit::Inconclusive
        );
    }

    #[test]
    fn message_does_not_repeat_quoted_causes() {
        let inner = anyhow::anyhow!("connection refused");
        let f = Failure::runtime(inner.context("cannot reach canary: connection refused"));
        assert_eq!(f.message(), "cannot reach canary: connection refused");
        let f = Failure::runtime(anyhow::anyhow!("refused").context("cannot reach canary"));
        assert_eq!(f.message(), "cannot reach canary: refused");
    }
}
