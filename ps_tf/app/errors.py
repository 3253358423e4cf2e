"""The app's own errors, which the server answers with a 4xx status and the message (the page
shows it), so that a bad request never stops the app."""


class NotFound(LookupError):
    """A file, detection or upload the session does not hold (404)."""


class UploadRejected(ValueError):
    """An upload the app does not keep: too large (413) or not a JPEG, PNG or BMP image (415)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code
