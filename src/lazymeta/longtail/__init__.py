"""Long-tailed recognition: class-balanced weights, (lazy) two-component weighting and their baselines."""
from lazymeta.infra.lazy import lazy_exports

_EXPORTS = {"LongtailConfig": "lazymeta.longtail.config", "METHODS": "lazymeta.longtail.methods",
            "Context": "lazymeta.longtail.methods", "train_step": "lazymeta.longtail.methods",
            "build_method": "lazymeta.longtail.methods",
            "class_balanced_weights": "lazymeta.longtail.weights"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
