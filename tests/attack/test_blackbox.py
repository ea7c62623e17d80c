"""Query counting is exact: the black box's own count equals an independent count of the images the
hidden model evaluated, and the per-image count follows each method's closed form."""
import pytest
import torch
from torch import nn

from lazymeta.attack.config import AttackLoopConfig
from lazymeta.attack.loop import attack
from lazymeta.attack.blackbox import BlackBox
from lazymeta.models.attack import meta_attacker


class Counted(nn.Module):
    """A classifier that always prefers class 0, counting every image it sees (independently of BlackBox)."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.linear = nn.Linear(784, 10)

    def forward(self, x):
        self.seen += len(x)
        logits = self.linear(x.flatten(1)) * 1e-3
        return logits + torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10) * 10


def test_every_image_of_every_call_is_one_query_of_its_owner():
    model = Counted()
    box = BlackBox(model, owners=3)
    box(torch.rand(5, 1, 28, 28), torch.tensor([0, 0, 2, 2, 2]))
    box(torch.rand(1, 1, 28, 28), torch.tensor([1]))
    assert box.queries.tolist() == [2, 1, 3] and box.total == model.seen == 6
    with pytest.raises(ValueError):
        box(torch.rand(2, 1, 28, 28), torch.tensor([0]))


SETTINGS = AttackLoopConfig(max_iterations=7, coordinates=5, finetune_interval=3, finetune_steps=1, nes_samples=4)
# Images that never become adversarial (the model always says 0, the label): every query is spent.
EXPECTED = {
    "zoo": 7 * (1 + 5) + 1,  # a check per iteration (also the one-sided base), q differences, a final check
    "nes": 7 * (1 + 2 * 4) + 1,  # 2n antithetic samples
    "meta": 8 + 2 * 5,  # checks, plus q differences at iterations 2 and 5 (the reference's (step + 1) % 3 == 0)
}


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_attack_queries_match_an_independent_count_and_the_closed_form(method):
    torch.manual_seed(0)
    model = Counted()
    images, labels = torch.rand(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    result = attack(method, model, images, labels, SETTINGS, attacker=meta_attacker("mnist", 8))
    assert int(result.queries.sum()) == model.seen
    assert result.queries.tolist() == [EXPECTED[method]] * 4
    assert not result.adversarial.any()


def test_symmetric_differences_cost_two_queries_per_coordinate():
    model = Counted()
    settings = AttackLoopConfig(max_iterations=2, coordinates=3, symmetric=True)
    result = attack("zoo", model, torch.rand(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), settings)
    assert result.queries.tolist() == [2 * (1 + 2 * 3) + 1] * 2 and int(result.queries.sum()) == model.seen
