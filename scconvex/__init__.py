"""scconvex: certified optimal geometries of supervised contrastive learning.

Pipeline: spec -> model (level) -> solve (backend) -> repair and certify -> lift and
factor -> report.
"""

import sys
import types

__version__ = "0.1.0"

# Names are imported on first use (PEP 562), so that ``scconvex --help`` and
# ``scconvex verify`` do not pay for scipy and the solvers they do not need.
_LAZY = {
    "gram_distance": "align", "procrustes": "align", "rotation_distance": "align",
    "Certificate": "certify", "certify": "certify",
    "BackendUnavailableError": "errors", "InvalidInputError": "errors",
    "ScconvexError": "errors", "SolveFailedError": "errors", "VerificationError": "errors",
    "ResourceLimitError": "errors",
    "Factorization": "factor", "TruncationWarning": "factor", "factor": "factor",
    "class_loss": "loss", "sc_loss": "loss", "sc_loss_grad": "loss",
    "sc_loss_gram": "loss", "sc_loss_gram_grad": "loss",
    "Spheres": "manifold",
    "Model": "model", "build_model": "model",
    "NonconvexResult": "nonconvex", "minimize_spheres": "nonconvex",
    "repair": "repair",
    "SolveResult": "solve", "solve": "solve",
    "ProblemSpec": "spec",
    "TightnessReport": "tightness", "tightness": "tightness",
    "VerifyReport": "verify", "verify": "verify",
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


class _Package(types.ModuleType):
    """Keeps ``scconvex.solve`` (and the like) the function when the submodule of the same
    name is imported: the import system would otherwise bind the submodule over it."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
