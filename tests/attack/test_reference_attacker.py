"""The reference meta-attacker has the layer lists of Du et al.'s mnist_train.py / cifar_train.py, and the
diagnostics measure what the attack uses of a prediction."""
import pytest
import torch
from torch import nn

from lazymeta.attack.diagnostics import agreement
from lazymeta.models.attack import meta_attacker

# (kind, in, out, kernel, stride, padding) of every convolution, as the reference's config lists read
REFERENCE_LAYERS = {
    "mnist": [("conv", 1, 16, 3, 1, 1), ("conv", 16, 32, 4, 2, 1), ("conv", 32, 64, 4, 2, 1), ("conv", 64, 64, 4, 2, 1),
              ("convt", 64, 32, 3, 2, 0), ("convt", 32, 16, 4, 2, 1), ("convt", 16, 8, 4, 2, 1), ("convt", 8, 1, 3, 1, 1)],
    "cifar10": [("conv", 3, 32, 3, 1, 1), ("conv", 32, 64, 4, 2, 1), ("conv", 64, 128, 4, 2, 1),
                ("conv", 128, 256, 4, 2, 1), ("convt", 256, 128, 4, 2, 1), ("convt", 128, 64, 4, 2, 1),
                ("convt", 64, 32, 4, 2, 1), ("convt", 32, 3, 3, 1, 1)],
}


@pytest.mark.parametrize("dataset, size", [("mnist", 28), ("cifar10", 32)])
def test_the_reference_layer_lists_relu_then_bn_and_kaiming_init(dataset, size):
    model = meta_attacker(dataset)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    layers = [("convt" if isinstance(m, nn.ConvTranspose2d) else "conv", m.in_channels, m.out_channels,
               m.kernel_size[0], m.stride[0], m.padding[0]) for m in convs]
    assert layers == REFERENCE_LAYERS[dataset]
    assert all(isinstance(block[1], nn.ReLU) and isinstance(block[2], nn.BatchNorm2d) for block in model.body)
    assert all(not m.bias.detach().any() for m in convs)  # the reference's learner: zero biases
    channels = REFERENCE_LAYERS[dataset][0][1]
    assert model(torch.rand(2, channels, size, size)).shape == (2, channels, size, size)


def test_ours_stays_a_lighter_preset_with_bn_before_relu():
    model = meta_attacker("mnist", architecture="ours")
    assert isinstance(model.body[0][1], nn.BatchNorm2d)
    assert sum(isinstance(m, nn.Conv2d) and m.stride[0] == 2 for m in model.modules()) == 1
    with pytest.raises(ValueError, match="architecture"):
        meta_attacker("mnist", architecture="bogus")


def test_diagnostics_score_the_coordinates_and_signs_the_attack_steps_on():
    torch.manual_seed(0)
    true = torch.randn(4, 1, 28, 28)
    exact = agreement(true, true, 128)
    assert exact["topq_overlap"] == 1 and exact["topq_sign_agreement"] == 1 and exact["mse"] == 0
    assert exact["cosine"] == pytest.approx(1) and exact["topq_overlap_chance"] == pytest.approx(128 / 784)
    flipped = agreement(-true, true, 128)  # the right coordinates, every sign wrong: useless to the attack
    assert flipped["topq_overlap"] == 1 and flipped["topq_sign_agreement"] == 0 and flipped["sign_agreement"] == 0
    noise = agreement(torch.randn(4, 1, 28, 28), true, 128)
    assert abs(noise["topq_overlap"] - 128 / 784) < 0.1 and abs(noise["sign_agreement"] - 0.5) < 0.05
