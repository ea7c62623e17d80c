"""Meta-attack (Du et al., ICLR 2020) and the lazy meta-attack: query-efficient black-box attacks.

A meta-attacker learns, over a zoo of white-box classifiers, to predict the input gradient of the
attack loss; it then attacks an unseen black box, fine-tuned on a few finite-difference queries.
The attack loop is :func:`lazymeta.attack.attack.attack`; the whole experiment is
:func:`lazymeta.attack.pipeline.run` (``lazymeta attack run``).
"""
from lazymeta.attack.attack import AttackResult as AttackResult
from lazymeta.attack.attack import AttackSettings as AttackSettings
from lazymeta.attack.blackbox import BlackBox as BlackBox
from lazymeta.attack.gradients import input_gradients as input_gradients
from lazymeta.attack.gradients import margin_loss as margin_loss
from lazymeta.attack.metaattacker import GradientTask as GradientTask
from lazymeta.attack.metaattacker import MetaTrainSettings as MetaTrainSettings
from lazymeta.attack.metaattacker import meta_train as meta_train
