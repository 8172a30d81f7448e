"""User-facing errors: the CLI prints them as one line, without a traceback."""


class LitVideoError(Exception):
    """An error caused by the user's input (a path, a file's content, a config key)."""


class DatasetLayoutError(LitVideoError):
    """A dataset root does not have the layout its format expects."""


class VideoDecodeError(LitVideoError):
    """One video file cannot be opened or decoded."""

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")
