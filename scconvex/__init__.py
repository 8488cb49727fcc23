"""scconvex: certified optimal geometries of supervised contrastive learning.

Pipeline: spec -> model (level) -> solve (backend) -> repair and certify -> lift and
factor -> report.
"""

__version__ = "0.1.0"

from .certify import Certificate, certify
from .errors import (
    BackendUnavailableError,
    InvalidInputError,
    ScconvexError,
    SolveFailedError,
    VerificationError,
)
from .loss import class_loss, sc_loss, sc_loss_grad, sc_loss_gram, sc_loss_gram_grad
from .model import Model, build_model
from .repair import repair
from .solve import SolveResult, solve
from .spec import ProblemSpec

__all__ = [
    "BackendUnavailableError",
    "Certificate",
    "InvalidInputError",
    "Model",
    "ProblemSpec",
    "ScconvexError",
    "SolveFailedError",
    "SolveResult",
    "VerificationError",
    "__version__",
    "build_model",
    "certify",
    "class_loss",
    "repair",
    "sc_loss",
    "sc_loss_grad",
    "sc_loss_gram",
    "sc_loss_gram_grad",
    "solve",
]
