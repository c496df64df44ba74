//! Building the error replies a Python worker sends.

use pypool_seam::{RemoteError, RemoteErrorKind};

/// A `python_exception` [`RemoteError`] for `exception_type(message)`, with a
/// short fake traceback.
pub fn python_exception(exception_type: &str, message: &str) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::PythonException,
        message: message.to_owned(),
        exception_type: Some(exception_type.to_owned()),
        traceback: Some(format!(
            "Traceback (most recent call last):\n  File \"<mock>\", line 1, in handler\n{exception_type}: {message}"
        )),
    }
}

/// The `cancelled` [`RemoteError`] a worker answers a cancelled request with.
pub fn cancelled() -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::Cancelled,
        message: "the request was cancelled by the host".to_owned(),
        exception_type: None,
        traceback: None,
    }
}
