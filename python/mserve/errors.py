"""Exceptions raised by mserve. Every error is an ``mserve.Error``."""


class Error(Exception):
    """Base class of every mserve error."""


class InvalidArgument(Error, ValueError):
    """Bad call arguments: wrong dtype, rank or dimension, missing or unknown input names."""


class ModelLoadError(Error):
    """The model file or bytes are malformed, truncated or inconsistent."""


class UnsupportedOperator(ModelLoadError):
    """The model needs operators (or types) the runtime cannot run. Raised at load time,
    listing every unsupported node with its op type, domain, opset and name."""


class NotFound(Error, LookupError):
    """No such model, version or version label."""


class Unavailable(Error):
    """It cannot be done now or here: the address is in use, a model is still loading, or a device
    (CUDA) or a library it needs is not available."""
