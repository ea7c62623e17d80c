"""lazymeta: long-horizon gradient-based meta-learning at constant memory.

The core is three swappable pieces (DESIGN.md): a :class:`Student` (the inner loop), a tie from the
task model back to θ (the :class:`LazyTeacher`'s leap among them) and an outer rule; the named
algorithms of :mod:`lazymeta.algorithms` are their compositions.
"""
__version__ = "0.1.0"

from lazymeta.algorithms import ALGORITHMS as ALGORITHMS
from lazymeta.algorithms import Algorithm as Algorithm
from lazymeta.algorithms import get_algorithm as get_algorithm
from lazymeta.learner import MetaLearner as MetaLearner
from lazymeta.learner import Task as Task
from lazymeta.learner import TaskModel as TaskModel
from lazymeta.run.train import load as load
from lazymeta.student import Student as Student
from lazymeta.teacher import LazyTeacher as LazyTeacher
from lazymeta.teacher import Leap as Leap

__all__ = ["ALGORITHMS", "Algorithm", "LazyTeacher", "Leap", "MetaLearner", "Student", "Task", "TaskModel",
           "get_algorithm", "load"]
