"""Meta-attack (Du et al., ICLR 2020) and the lazy meta-attack: query-efficient black-box attacks.

A meta-attacker learns, over a zoo of white-box classifiers, to predict the input gradient of the
attack loss; it then attacks an unseen black box, fine-tuned on a few finite-difference queries.
The attack loop is :func:`lazymeta.attack.loop.attack`; the whole experiment is
:func:`lazymeta.attack.train.train` (``lazymeta attack run``).
"""
from lazymeta.infra.lazy import lazy_exports

_EXPORTS = {"AttackConfig": "lazymeta.attack.config", "AttackLoopConfig": "lazymeta.attack.config",
            "MetaTrainConfig": "lazymeta.attack.config", "AttackResult": "lazymeta.attack.loop",
            "attack": "lazymeta.attack.loop", "BlackBox": "lazymeta.attack.blackbox",
            "input_gradients": "lazymeta.attack.gradients", "margin_loss": "lazymeta.attack.gradients",
            "GradientTask": "lazymeta.attack.metaattacker", "GradientRegression": "lazymeta.attack.metaattacker",
            "meta_train": "lazymeta.attack.metaattacker"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
