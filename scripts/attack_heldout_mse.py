"""Held-out gradient MSE of every cached meta-attacker of a `lazymeta attack` run directory.

The unadapted meta-attacker's MSE against the target's true (std-normalised) gradient maps on the
first 500 test images the target classifies correctly, as the pipeline now writes to ``heldout.json``
(runs made before that fix recorded it on the attacked images only). Predicting zeros scores 1.0.

    python scripts/attack_heldout_mse.py runs/attack-mnist-cpu
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from safetensors.torch import load_file

from lazymeta.attack import pipeline
from lazymeta.attack.gradients import input_gradients
from lazymeta.attack.metaattacker import GradientTask, prediction_mse
from lazymeta.models.attack import meta_attacker
from lazymeta.run.config import update


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a run directory of `lazymeta attack run`")
    run = p.parse_args().run
    config = update(pipeline.AttackConfig(), yaml.safe_load((run / "config.yaml").read_text()), str(run))
    models = pipeline.train_zoo(config, run, progress=False)  # cached: loads, never retrains
    target = models[config.target]
    images, labels = pipeline.attack_set(config, target, pipeline.HELD_OUT_IMAGES)
    task = GradientTask(images, input_gradients(target, images, labels))
    for directory in sorted((run / "attackers").iterdir()):
        settings = json.loads((directory / "key.json").read_text())["settings"]
        model = meta_attacker(config.data.dataset, config.attacker_width_divisor).to(images.device)
        model.load_state_dict(load_file(str(directory / "attacker.safetensors")))
        print(f"{directory.name}  {settings['algorithm']:<13} {settings['iterations']:>5} meta-iterations  "
              f"MSE on {len(images)} images: {prediction_mse(model, task):.3f}")


if __name__ == "__main__":
    main()
