"""What a failed read means: a fact about the input, a fault of the store, or of the setup.

Judged from the exception alone, for every FileSystem Beam has (local OSErrors, GCS's
google.api_core exceptions, their HTTP status codes):

  MISSING     the input is not there (404, ENOENT)                 -> rejected, missing_file
  NOT_A_FILE  the input is not a readable file (a folder, a symlink -> rejected, read_error
              loop, a name too long)
  FATAL       no read can succeed as configured (401/403, EACCES,  -> the job stops now
              credentials, another 4xx such as a bad bucket name)
  TRANSIENT   anything else: 408/429/5xx, timeouts, resets, I/O    -> retried, then raised
              errors, the client's own retries running out            (the bundle is retried)
"""

from __future__ import annotations

import errno

__all__ = [
    "FATAL",
    "MISSING",
    "NOT_A_FILE",
    "TRANSIENT",
    "ReadFatal",
    "ReadUnavailable",
    "describe",
    "failure_kind",
    "fatal_message",
    "unavailable_message",
]

MISSING = "missing"
NOT_A_FILE = "not_a_file"
FATAL = "fatal"
TRANSIENT = "transient"

_RETRIABLE_4XX = (408, 429)
# Local errors that describe the path itself (a symlink loop, a name too long, a device
# without media): no retry changes them.
_PATH_ERRNOS = (errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO, errno.ENODEV, errno.EINVAL)
# google.auth raises these without an HTTP status: nothing to retry, the setup is wrong.
_CREDENTIAL_ERRORS = ("DefaultCredentialsError", "RefreshError", "Forbidden", "Unauthorized")


class ReadFatal(Exception):
    """A read that no retry can fix (permission, credentials, configuration): stop the job."""


class ReadUnavailable(Exception):
    """Reads kept failing in a way that may pass: the bundle fails so the runner retries it."""


def _status(error: BaseException) -> int | None:
    code = getattr(error, "code", None)
    if isinstance(code, int) and 100 <= code < 600:
        return code
    response = getattr(error, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def failure_kind(error: BaseException) -> str:
    """MISSING, NOT_A_FILE, FATAL or TRANSIENT (see the module docstring)."""
    if isinstance(error, FileNotFoundError) or type(error).__name__ == "NotFound":
        return MISSING
    if isinstance(error, IsADirectoryError | NotADirectoryError | NotImplementedError):
        return NOT_A_FILE  # Beam refuses doubly gzip-compressed objects with NotImplementedError
    if isinstance(error, OSError) and error.errno in _PATH_ERRNOS:
        return NOT_A_FILE
    if isinstance(error, PermissionError) or type(error).__name__ in _CREDENTIAL_ERRORS:
        return FATAL
    status = _status(error)
    if status == 404:
        return MISSING
    if status is not None and 400 <= status < 500 and status not in _RETRIABLE_4XX:
        return FATAL
    return TRANSIENT


def describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")


def fatal_message(path: str, error: BaseException) -> str:
    if isinstance(error, PermissionError):
        fix = "make the images readable by the user that runs the conversion"
    elif _status(error) in (401, 403) or type(error).__name__ in _CREDENTIAL_ERRORS:
        fix = (
            "give the account the workers run as read access to the images "
            "(storage.objects.get on the bucket), or check its credentials"
        )
    else:
        fix = "check --image-root and the paths in the list"
    return (
        f"cannot read {path}: {describe(error)}. This is not a fault of one image: the job "
        f"stopped at the first such read; {fix}, then rerun with --resume"
    )


def unavailable_message(path: str, attempts: int, error: BaseException) -> str:
    return (
        f"{path} could not be read in {attempts} attempts (last: {describe(error)}); the store "
        "is overloaded or unreachable. No image was rejected for it: the runner retries the "
        "work, and a local run that stops here finishes with the same command and --resume"
    )
