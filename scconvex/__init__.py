"""scconvex: certified optimal geometries of supervised contrastive learning.

Pipeline: spec -> model (level) -> solve (backend) -> repair and certify -> lift and
factor -> report.
"""

from ._version import __version__

# Names are imported on first use (PEP 562), so that ``scconvex --help`` and
# ``scconvex verify`` do not pay for scipy and the solvers they do not need.
_LAZY = {
    "gram_distance": "features.align", "procrustes": "features.align",
    "rotation_distance": "features.align",
    "Certificate": "certificates.certify", "certify": "certificates.certify",
    "BackendUnavailableError": "errors", "InvalidInputError": "errors",
    "ScconvexError": "errors", "SolveFailedError": "errors", "VerificationError": "errors",
    "ResourceLimitError": "errors",
    "Factorization": "features.factor", "TruncationWarning": "features.factor",
    "factor": "features.factor",
    "Comparison": "studies.compare", "compare": "studies.compare",
    "Trajectory": "studies.compare", "trajectory": "studies.compare",
    "StreamedLoss": "losses.streamed", "streamed_loss": "losses.streamed",
    "class_loss": "losses.sc", "sc_loss": "losses.sc", "sc_loss_grad": "losses.sc",
    "sc_loss_gram": "losses.sc", "sc_loss_gram_grad": "losses.sc",
    "Spheres": "solvers.manifold",
    "Model": "problem.model", "build_model": "problem.model",
    "NonconvexResult": "features.nonconvex", "minimize_spheres": "features.nonconvex",
    "repair": "certificates.repair",
    "SolveResult": "pipeline.solve", "solve": "pipeline.solve",
    "ProblemSpec": "problem.spec",
    "TightnessReport": "features.tightness", "tightness": "features.tightness",
    "VerifyReport": "certificates.verify", "verify": "certificates.verify",
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'scconvex' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BackendUnavailableError",
    "Comparison",
    "StreamedLoss",
    "Trajectory",
    "compare",
    "streamed_loss",
    "trajectory",
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
