"""The attack loop runs as the reference's (dydjw9/MetaAttack_ICLR2020 cw_black.py, test_all.py): fine-tuning
after the warm-up iterations, a fresh Adam every fine-tuning round, and target class = (label + 1) mod 10."""
import torch

from lazymeta.attack import loop, train
from lazymeta.attack.config import AttackConfig, AttackLoopConfig
from lazymeta.attack.loop import AttackResult, attack
from lazymeta.infra.rundir import RunDir
from lazymeta.models.attack import meta_attacker
from test_blackbox import Counted


def test_the_first_finetuning_waits_for_the_warm_up_iterations():
    settings = AttackLoopConfig(max_iterations=4, coordinates=5, finetune_interval=5, finetune_steps=1)
    result = attack("meta", Counted(), torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), settings,
                    attacker=meta_attacker("mnist", 8))
    assert result.queries.tolist() == [5, 5]  # iterations 0-3 step on the prediction: only the success checks


def test_every_finetuning_round_starts_from_fresh_adam_moments(monkeypatch):
    built = []

    class Spy(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            built.append(self)

        def step(self, closure=None):
            if not self.state:  # the first step of this optimiser: record that it starts empty
                self.fresh = True
            return super().step(closure)

    monkeypatch.setattr(loop.torch.optim, "Adam", Spy)
    settings = AttackLoopConfig(max_iterations=6, coordinates=5, finetune_interval=3, finetune_steps=2)
    attack("meta", Counted(), torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), settings,
           attacker=meta_attacker("mnist", 8))
    assert len(built) == 2 and all(getattr(o, "fresh", False) for o in built)  # rounds at iterations 2 and 5


def test_targeted_attacks_aim_at_the_next_class(monkeypatch, tmp_path):
    labels = torch.tensor([0, 3, 9, 9, 5])
    seen = {}

    def fake_attack(method, model, images, labels_, settings, attacker, targets, generator):
        seen["targets"] = targets
        n = len(images)
        return AttackResult(torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool), torch.zeros(n),
                            torch.ones(n, dtype=torch.long), images)

    monkeypatch.setattr(train, "attack_set", lambda c, target: (torch.rand(5, 1, 28, 28), labels))
    monkeypatch.setattr(train, "attack", fake_attack)
    config = AttackConfig(methods=["zoo"])
    config.attack.targeted = True
    train.run_attacks(config, RunDir(tmp_path), {"net4": None}, {}, progress=False)
    assert seen["targets"].tolist() == [1, 4, 0, 0, 6]
