"""lazymeta: long-horizon gradient-based meta-learning at constant memory.

The core is three swappable pieces: a :class:`Student` (the inner loop), a tie from the task model back
to θ (the :class:`LazyTeacher`'s leap among them) and an outer rule; the named algorithms of
:mod:`lazymeta.algorithms` are their compositions. ``import lazymeta`` is light: each name below loads its
module (and torch) when first used.
"""
from lazymeta._version import __version__ as __version__
from lazymeta.infra.lazy import lazy_exports

_EXPORTS = {
    "ALGORITHMS": "lazymeta.algorithms", "Algorithm": "lazymeta.algorithms", "get_algorithm": "lazymeta.algorithms",
    "MetaLearner": "lazymeta.learner", "Task": "lazymeta.learner", "TaskModel": "lazymeta.learner",
    "Student": "lazymeta.student", "LazyTeacher": "lazymeta.teacher", "Leap": "lazymeta.teacher",
    "load": "lazymeta.fewshot.train", "keep_freed_memory": "lazymeta.infra.runtime",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
