"""Every YAML file shipped in configs/ loads into its pipeline's config without an unknown or mistyped key."""
from pathlib import Path

import pytest

from lazymeta.attack.pipeline import AttackConfig, check
from lazymeta.longtail.config import LongtailConfig, validate
from lazymeta.run.config import load_yaml, update

CONFIGS = Path(__file__).parents[1] / "configs"
KINDS = {"attack": (AttackConfig, check), "longtail": (LongtailConfig, validate)}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_config_loads(path):
    make, validate_config = KINDS[path.parent.name]
    validate_config(update(make(), load_yaml(path), str(path)))
