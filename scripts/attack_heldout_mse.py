"""Held-out gradient MSE of every cached meta-attacker of a `lazymeta attack` run directory.

The unadapted meta-attacker's MSE against the target's true (std-normalised) gradient maps on the
first 500 test images the target classifies correctly, as `lazymeta attack` now writes to ``heldout.json``
(runs made before that fix recorded it on the attacked images only). Predicting zeros scores 1.0.

    python scripts/attack_heldout_mse.py runs/attack-mnist-cpu
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lazymeta.attack.config import AttackConfig
from lazymeta.attack.gradients import input_gradients
from lazymeta.attack.metaattacker import GradientTask, prediction_mse
from lazymeta.attack.train import HELD_OUT_IMAGES, attack_set, train_zoo
from lazymeta.infra.config import update
from lazymeta.infra.files import load_weights
from lazymeta.infra.rundir import RunDir
from lazymeta.models.attack import meta_attacker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run directory of `lazymeta attack run`")
    run = p.parse_args().run
    config = update(AttackConfig(), RunDir.read_config(run), str(run))
    models = train_zoo(config, RunDir(run), progress=False)  # cached: loads, never retrains
    target = models[config.target]
    images, labels = attack_set(config, target, HELD_OUT_IMAGES)
    task = GradientTask(images, input_gradients(target, images, labels))
    for directory in sorted((run / "attackers").iterdir()):
        settings = json.loads((directory / "key.json").read_text())["settings"]
        # runs made before the reference architecture existed used ours (their keys do not name one)
        model = meta_attacker(config.data.dataset, settings.get("width_divisor", config.attacker_width_divisor),
                              settings.get("architecture", "ours")).to(images.device)
        model.load_state_dict(load_weights(directory / "attacker.safetensors", "meta-attacker")[0])
        print(f"{directory.name}  {settings.get('algorithm', 'untrained'):<13} {settings.get('iterations', 0):>5} "
              f"meta-iterations  "
              f"MSE on {len(images)} images: {prediction_mse(model, task):.3f}")


if __name__ == "__main__":
    main()
