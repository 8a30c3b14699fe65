"""Errors the models package raises. Each message names the file or value at fault and the fix."""


class ModelError(Exception):
    """Base class: something is wrong with a model, its manifest or its input."""


class FetchError(ModelError):
    """A weights file or clip could not be fetched, or what was fetched is not what was expected."""


class ChecksumMismatch(ModelError):
    """A file's sha256 differs from the one its manifest (or the pinned source) declares."""


class ManifestError(ModelError):
    """A manifest is missing, unreadable or inconsistent with its model."""


class ModelInputError(ModelError):
    """A frame or batch the model cannot take (wrong type, shape or size)."""
