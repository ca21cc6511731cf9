"""Errors users see.  Each says what went wrong and, where it can, what to do.

Every one derives from :class:`DrQueueError`; the CLI prints its message on one
line and exits non-zero, and the API turns it into a 4xx answer with the same text.
"""

from __future__ import annotations


class DrQueueError(Exception):
    """Base of every error DrQueue reports to a person."""

    #: HTTP status the API answers with.
    status_code = 400


class InvalidJob(DrQueueError):
    """A job spec that cannot run: bad frame range, bad option, unknown renderer."""


class UnknownRenderer(InvalidJob):
    """The job names a renderer DrQueue does not have."""


class SceneNotFound(InvalidJob):
    """The job's scene file does not exist where the master looks for it."""


class NotFound(DrQueueError):
    """A job, task, computer or pool id that is not in the store."""

    status_code = 404


class JobNotFound(NotFound):
    """A job id that is not in the store (never submitted, or deleted)."""


class Conflict(DrQueueError):
    """The request is valid but the current state refuses it (e.g. delete while running)."""

    status_code = 409


class Forbidden(DrQueueError):
    """The token is valid but its role may not do this."""

    status_code = 403


class MasterUnreachable(DrQueueError):
    """The CLI or API client cannot reach the master's HTTP API."""


class AuthError(DrQueueError):
    """The master refused the API token."""

    status_code = 401


class Unauthorized(AuthError):
    """What :class:`drqueue.Client` raises for every 401 answer: no token, a wrong or revoked
    one, or an ended web session.  (The master names its 401s ``AuthError``, the web UI's word;
    an ``except AuthError`` catches this too.)"""


class ConfigError(DrQueueError):
    """drqueue.toml or a DRQUEUE_* variable has a value DrQueue cannot use."""


class StoreBusy(DrQueueError):
    """The store stayed locked by another writer too long; the request may simply be retried."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int = 2):
        super().__init__(message)
        #: Seconds to wait before asking again (the API's Retry-After header).
        self.retry_after = retry_after


class StoreUnavailable(StoreBusy):
    """The store's database server cannot be reached (a MongoDB gone away): the API answers
    503 with Retry-After, and the dispatcher pauses and tries again until it is back."""


class MasterBusy(StoreBusy):
    """The master is busy with the same kind of work for other requests (making thumbnails):
    ask again after Retry-After."""


class InvalidRequest(DrQueueError):
    """A request's parameter is out of its range or malformed (the API's 422)."""

    status_code = 422


class RequestTooLarge(DrQueueError):
    """The request body is over the master's max_request_bytes."""

    status_code = 413


class StoreError(DrQueueError):
    """The store failed its integrity check, has an unknown schema version, or cannot be
    opened (a database server that does not answer or refuses the credentials)."""

    status_code = 500


class InvalidExportFile(DrQueueError):
    """A file `drqueue store import` cannot import; the message names the line and the fault."""


class TooManyRequests(DrQueueError):
    """The caller holds as many of something as one caller may (live streams): 429, with the
    seconds to wait before asking again."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after
