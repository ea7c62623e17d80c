"""The schema of a few-shot run, and :func:`validate`: dataset- and algorithm-dependent defaults, and every
check that needs no data, before any work starts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lazymeta.infra.config import as_dict, check
from lazymeta.infra.errors import ConfigError
from lazymeta.teacher import LazyTeacher

if TYPE_CHECKING:
    from lazymeta.algorithms import Algorithm


@dataclass
class DataConfig:
    dataset: str = "glyphs"
    root: str | None = None  # else $LAZYMETA_DATA, else ~/.cache/lazymeta
    download: bool = False
    image_size: int | None = None  # null: the dataset's standard size (28 for glyphs and Omniglot, 84 for MiniImageNet)
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    # Multiples of 90 degrees, each a class of its own; null: (0, 90, 180, 270) for omniglot, (0,) otherwise.
    rotations: list[int] | None = None


@dataclass
class EpisodeConfig:
    ways: int = 5
    shots: int = 1  # K of D_tr at evaluation, and in meta-training unless train_shots is set
    train_shots: int | None = None  # K of D_tr in meta-training (Reptile's protocol trains on 10 or 15); null: shots
    val_shots: int = 1  # D_val per class during meta-training (the paper uses 1)
    queries: int = 15  # query images per class at evaluation
    label_order: str = "shuffled"  # or "global": the paper's non-i.i.d. mode


@dataclass
class ModelConfig:
    name: str = "conv4"
    hidden: int | None = None  # null: 64 filters below 64 px (Omniglot), 32 above (MiniImageNet), as in MAML
    pool: str = "max"  # conv4 only: max-pooling, or "stride" (MAML's Omniglot network: stride-2 convolutions)


@dataclass
class AlgorithmConfig:
    name: str = "lazy-maml"
    steps: int = 10  # k
    inner: str = "sgd"  # the student's rule: sgd, or adam (Reptile's reference inner loop; first-order only)
    inner_lr: float = 0.1
    inner_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam only (Reptile's: [0, 0.999])
    keep_last: int = 1  # b
    test_steps: int | None = None  # default: steps
    test_leap: str = "student"  # lazy algorithms only: student | mean | holdout
    # The comparators' own settings; null: the paper's default (`lazymeta.algorithms.ALGORITHMS[name].options()`).
    prox_lambda: float | None = None  # imaml, minibatchprox, lazy-minibatchprox: λ of the proximal term λ/2 ||φ - θ||²
    cg_steps: int | None = None  # imaml: conjugate-gradient steps of the implicit meta-gradient
    cg_damping: float | None = None  # imaml: δ added to the Hessian in the CG solve
    entropy_weight: float | None = None  # taml, lazy-taml: weight of the entropy of θ's predictions
    reduction_weight: float | None = None  # taml, lazy-taml: weight of the entropy-reduction term


@dataclass
class OptimConfig:
    # null: Adam(1e-3) for the gradient rules, SGD(1.0 annealed linearly to 0) for the Reptile rules
    name: str | None = None
    lr: float | None = None
    lr_final: float | None = None
    meta_batch: int = 4
    clip: float | None = None  # clamp each meta-gradient element to [-clip, clip] (MAML's miniImageNet: 10)


@dataclass
class FewShotConfig:
    data: DataConfig = field(default_factory=DataConfig)
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    # the lazy algorithms' leap: γ (leap rate) and α grids, chosen per task by D_val accuracy (ties: loss)
    teacher: LazyTeacher = field(default_factory=LazyTeacher)
    optim: OptimConfig = field(default_factory=OptimConfig)
    iterations: int = 1000
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    eval_episodes: int = 600
    eval_untrained: bool = True  # the final evaluation also scores the untrained start on the same episodes
    device: str = "auto"
    # CPU threads. threads: op threads of this process; null: 1 (or OMP_NUM_THREADS when set). task_threads: a
    # meta-batch's tasks (and the test episodes) in this many threads; null: the cores this process may use,
    # up to the tasks. A resume reuses the run's recorded op threads, so that it continues bit for bit.
    threads: int | None = None
    task_threads: int | None = None
    # Run a meta-batch's tasks in one vmapped pass per step; null: on a GPU (1.5-2.3x faster there, 4-5x
    # the memory), not on a CPU (slower there). docs/performance.md has the measurements.
    batch_tasks: bool | None = None

    def to_dict(self) -> dict:
        return as_dict(self)


ALGORITHM_OPTIONS = ("prox_lambda", "cg_steps", "cg_damping", "entropy_weight", "reduction_weight")


def configured_algorithm(config: FewShotConfig) -> Algorithm:
    """The algorithm of ``config.algorithm`` with the settings it gives (the others at their defaults)."""
    from lazymeta.algorithms import get_algorithm

    a = config.algorithm
    return get_algorithm(a.name).configured(**{k: getattr(a, k) for k in ALGORITHM_OPTIONS if getattr(a, k) is not None})


def _check_algorithm_options(config: FewShotConfig) -> None:
    from lazymeta.algorithms import ALGORITHMS, get_algorithm

    a = config.algorithm
    own = get_algorithm(a.name).options()
    for key in ALGORITHM_OPTIONS:
        value = getattr(a, key)
        if value is None:
            continue
        if key not in own:
            users = [n for n, alg in ALGORITHMS.items() if key in alg.options()]
            raise ConfigError(f"algorithm.{key}={value} does not apply to {a.name}: it is a setting of "
                              f"{', '.join(users)}; remove it or choose one of those algorithms")
        positive = key in ("prox_lambda", "cg_steps")
        if (value <= 0 if positive else value < 0) or (key == "cg_steps" and int(value) != value):
            bound = "an integer >= 1" if key == "cg_steps" else "> 0" if positive else ">= 0"
            raise ConfigError(f"algorithm.{key} must be {bound}, got {value}; the default for {a.name} is {own[key]}")


def validate(config: FewShotConfig) -> FewShotConfig:
    """Fill dataset- and algorithm-dependent defaults and validate what can be checked without data."""
    from lazymeta.algorithms import get_algorithm
    from lazymeta.fewshot.episodes import LABEL_ORDERS
    from lazymeta.learner import TEST_LEAPS
    from lazymeta.models import MODELS
    from lazymeta.models.conv4 import POOLS
    from lazymeta.student import STUDENTS

    try:
        algorithm = get_algorithm(config.algorithm.name)
    except ValueError as err:
        raise ConfigError(f"algorithm.name: {err}") from None
    _check_algorithm_options(config)
    if config.data.rotations is None:
        config.data.rotations = [0, 90, 180, 270] if config.data.dataset == "omniglot" else [0]
    reptile = algorithm.reptile_like
    optim, a, e = config.optim, config.algorithm, config.episodes
    optim.name = optim.name or ("sgd" if reptile else "adam")
    optim.lr = optim.lr if optim.lr is not None else (1.0 if reptile else 1e-3)
    if optim.lr_final is None:
        optim.lr_final = 0.0 if reptile and optim.name == "sgd" else optim.lr
    check([
        (optim.name in ("adam", "sgd"), f"optim.name must be adam or sgd, got {optim.name!r}"),
        (optim.lr > 0 and optim.lr_final >= 0, f"optim.lr must be > 0 and optim.lr_final >= 0, got {optim.lr} "
                                               f"and {optim.lr_final}"),
        (config.model.name in MODELS, f"model.name must be one of {sorted(MODELS)}, got {config.model.name!r}"),
        (config.model.hidden is None or config.model.hidden >= 1, f"model.hidden must be >= 1 or null, got "
                                                                  f"{config.model.hidden}"),
        (e.label_order in LABEL_ORDERS, f"episodes.label_order must be one of {LABEL_ORDERS}"),
        (min(e.ways, e.shots) >= 1, f"episodes.ways and episodes.shots must be >= 1, got {e.ways} and {e.shots}"),
        (e.val_shots >= 1, "episodes.val_shots must be >= 1 (D_val drives the outer loss)"),
        (e.train_shots is None or e.train_shots >= 1, f"episodes.train_shots must be >= 1 or null, got {e.train_shots}"),
        (config.model.pool in POOLS and (config.model.pool == "max" or config.model.name == "conv4"),
         f"model.pool must be one of {POOLS} (stride: conv4 only), got {config.model.pool!r}"),
        (a.inner in STUDENTS, f"algorithm.inner must be one of {sorted(STUDENTS)}, got {a.inner!r}"),
        (a.inner == "sgd" or not algorithm.second_order, f"algorithm.inner={a.inner} is first-order: second-order "
                                                       f"{a.name} needs inner: sgd"),
        (a.inner == "sgd" or algorithm.inner is None, f"algorithm.inner={a.inner}: {a.name} runs its own inner rule "
                                                      f"({type(algorithm.inner).__name__}); set inner: sgd"),
        (algorithm.batchable or not config.batch_tasks, f"batch_tasks: {a.name} runs a meta-batch's tasks one at "
                                                        "a time; set batch_tasks: null or false"),
        (len(a.inner_betas) == 2 and all(0 <= b < 1 for b in a.inner_betas),
         f"algorithm.inner_betas must be two values in [0, 1), got {a.inner_betas}"),
        (optim.clip is None or optim.clip > 0, f"optim.clip must be > 0 or null, got {optim.clip}"),
        (e.queries >= 1, f"episodes.queries must be >= 1 (evaluation classifies them), got {e.queries}"),
        (a.test_leap in TEST_LEAPS, f"algorithm.test_leap must be one of {TEST_LEAPS}"),
        (a.steps >= 0, f"algorithm.steps must be >= 0, got {a.steps}"),
        (a.test_steps is None or a.test_steps >= 0, f"algorithm.test_steps must be >= 0 or null, got {a.test_steps}"),
        (a.inner_lr > 0, f"algorithm.inner_lr must be > 0, got {a.inner_lr}"),
        (a.keep_last >= 1, f"algorithm.keep_last (b, checkpoints the teacher leaps toward) must be >= 1, got "
                           f"{a.keep_last}"),
        (config.iterations >= 0, f"iterations must be >= 0, got {config.iterations}"),
        (config.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {config.checkpoint_every}"),
        (config.log_every >= 1, f"log_every must be >= 1, got {config.log_every}"),
        (config.eval_episodes >= 2, f"eval_episodes must be >= 2 (a confidence interval needs two), got "
                                    f"{config.eval_episodes}"),
        (optim.meta_batch >= 1, f"optim.meta_batch must be >= 1, got {optim.meta_batch}"),
        (config.task_threads is None or config.task_threads >= 1,
         f"task_threads must be >= 1 or null, got {config.task_threads}"),
        (config.threads is None or config.threads >= 1, f"threads must be >= 1 or null, got {config.threads}"),
        (not (config.batch_tasks and (config.task_threads or 1) > 1),
         "batch_tasks and task_threads > 1 are two ways to run a meta-batch's tasks; set one of them"),
    ])
    return config
