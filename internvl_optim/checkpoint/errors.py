"""The one error for files that cannot, or must not, be loaded."""


class CheckpointError(ValueError):
    """A checkpoint or weight file that cannot (or must not) be loaded; the
    message names the file and what is wrong."""
