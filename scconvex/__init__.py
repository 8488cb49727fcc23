"""scconvex: certified optimal geometries of supervised contrastive learning.

Pipeline: spec -> model (level) -> solve (backend) -> repair and certify -> lift and
factor -> report.
"""

__version__ = "0.1.0"

from .align import gram_distance, procrustes, rotation_distance
from .certify import Certificate, certify
from .errors import (
    BackendUnavailableError,
    InvalidInputError,
    ResourceLimitError,
    ScconvexError,
    SolveFailedError,
    VerificationError,
)
from .factor import Factorization, TruncationWarning, factor
from .loss import class_loss, sc_loss, sc_loss_grad, sc_loss_gram, sc_loss_gram_grad
from .manifold import Spheres
from .model import Model, build_model
from .nonconvex import NonconvexResult, minimize_spheres
from .repair import repair
from .solve import SolveResult, solve
from .spec import ProblemSpec
from .tightness import TightnessReport, tightness
from .verify import VerifyReport, verify

__all__ = [
    "BackendUnavailableError",
    "Certificate",
    "Factorization",
    "NonconvexResult",
    "Spheres",
    "TightnessReport",
    "TruncationWarning",
    "VerifyReport",
    "factor",
    "gram_distance",
    "minimize_spheres",
    "procrustes",
    "rotation_distance",
    "tightness",
    "verify",
    "InvalidInputError",
    "Model",
    "ProblemSpec",
    "ResourceLimitError",
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
