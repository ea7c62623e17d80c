"""Every YAML file shipped in configs/ loads into its application's config without an unknown or mistyped key."""
from pathlib import Path

import pytest

from lazymeta.attack import config as attack
from lazymeta.fewshot import config as fewshot
from lazymeta.infra.config import load_yaml, update
from lazymeta.longtail import config as longtail

CONFIGS = Path(__file__).parents[1] / "configs"
KINDS = {"attack": (attack.AttackConfig, attack.validate), "longtail": (longtail.LongtailConfig, longtail.validate),
         "fewshot": (fewshot.FewShotConfig, fewshot.validate)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads(path):
    make, validate_config = KINDS[path.parent.name]
    validate_config(update(make(), load_yaml(path), str(path)))
