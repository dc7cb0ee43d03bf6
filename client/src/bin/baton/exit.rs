//! The CLI's exit statuses, and which error gets which.

use baton::ErrorCode;

/// Any error not listed below.
pub const FAILURE: u8 = 1;
/// No such node.
pub const NO_NODE: u8 = 3;
/// A version conflict, or the node already exists.
pub const CONFLICT: u8 = 4;

/// The exit status for `err`: the first client error in its chain decides.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    let code = err.chain().find_map(|cause| cause.downcast_ref::<baton::Error>()).and_then(baton::Error::code);
    match code {
        Some(ErrorCode::NoNode) => NO_NODE,
        Some(ErrorCode::BadVersion | ErrorCode::NodeExists) => CONFLICT,
        _ => FAILURE,
    }
}

/// Whether `err` is a write to a closed pipe (`baton watch | head -n 1`): not worth a
/// message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    fn server(code: ErrorCode) -> anyhow::Error {
        anyhow::Error::new(baton::Error::Server { code, message: "/a".into() })
    }

    #[test]
    fn maps_node_errors_to_their_statuses() {
        assert_eq!(exit_status(&server(ErrorCode::NoNode)), NO_NODE);
        assert_eq!(exit_status(&server(ErrorCode::BadVersion)), CONFLICT);
        assert_eq!(exit_status(&server(ErrorCode::NodeExists)), CONFLICT);
        assert_eq!(exit_status(&server(ErrorCode::NotEmpty)), FAILURE);
        assert_eq!(exit_status(&anyhow::Error::new(baton::Error::SessionExpired)), FAILURE);
        assert_eq!(exit_status(&anyhow::anyhow!("other")), FAILURE);
    }

    #[test]
    fn looks_through_context() {
        let err = Err::<(), _>(baton::Error::Server { code: ErrorCode::NoNode, message: String::new() })
            .context("/a")
            .unwrap_err();
        assert_eq!(exit_status(&err), NO_NODE);
    }

    #[test]
    fn recognises_a_broken_pipe() {
        let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&err.context("writing")));
        assert!(!is_broken_pipe(&anyhow::anyhow!("x")));
    }
}
