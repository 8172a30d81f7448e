"""What a sweep adds to each trial: set-up, W&B logging, the compute profile and clean-up.

Runs every point of a sweep spec's grid twice, in the same process and order:
  plain  the trial's config built and fitted as `lit-video fit` would, with no logger and no profile;
  sweep  the same point as a trial of a fresh study (W&B offline run, profile, user attributes).
and prints per point the sweep trial's own time accounting and the ratio of its wall time to the
plain fit's. The overhead target is under 10% of a trial's time.

    .venv/bin/python benchmarks/sweep_overhead.py                    # sweeps/demo.yaml
    .venv/bin/python benchmarks/sweep_overhead.py --spec SPEC --max-epochs 4
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default=str(ROOT / "sweeps" / "demo.yaml"))
    parser.add_argument("--max-epochs", type=int, default=None, help="override the spec's budget")
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "offline")

    import itertools

    import optuna

    from lit_video.sweep.spec import SEED_KEY, Param, SweepSpec, short_name
    from lit_video.sweep.study import run_sweep
    from lit_video.training import run_cli

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = SweepSpec.load(args.spec)
    if args.max_epochs:
        spec.budget = {**spec.budget, "max_epochs": args.max_epochs}
    grid = spec.grid()
    points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        spec.out_dir = Path(scratch) / "out"
        # Warm-up: the first build pays for imports and the dataset's first listing; neither side should.
        run_cli(spec.config_args({}, spec.seeds[0], Path(scratch) / "warmup"), run=False)
        for index, point in enumerate(points):
            values = {k: v for k, v in point.items() if k != SEED_KEY}
            start = time.perf_counter()
            cli = run_cli(spec.config_args(values, point[SEED_KEY], Path(scratch) / f"plain_{index}")
                          + ["--trainer.logger", "false", "--compute_profile.enabled", "false"], run=False)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            plain = time.perf_counter() - start
            del cli
            # the same point as a trial: a study whose grid is this one point
            one_point = dataclasses.replace(
                spec, study_name=f"point_{index}", seeds=[point[SEED_KEY]],
                params=[Param(key, "categorical", choices=(value,)) for key, value in values.items()])
            trial = run_sweep(one_point).trials[0]
            rows.append((point, plain, trial.user_attrs))
    print(f"{'point':<42} {'plain s':>8} {'trial s':>8} {'ratio':>6} {'setup s':>8} {'profile s':>9} "
          f"{'fit s':>7} {'outside fit':>11}")
    ratios, outside = [], []
    for point, plain, attrs in rows:
        wall = attrs["wall_time_s"]
        training = attrs["fit_time_s"] - attrs.get("profile_time_s", 0.0)
        ratios.append(wall / plain)
        outside.append(1 - training / wall)
        label = ", ".join(f"{short_name(k)}={v}" for k, v in point.items())
        print(f"{label:<42} {plain:>8.1f} {wall:>8.1f} {wall / plain:>6.3f} {attrs.get('setup_time_s', 0):>8.2f} "
              f"{attrs.get('profile_time_s', 0):>9.2f} {attrs['fit_time_s']:>7.1f} {outside[-1]:>11.1%}")
    print(f"\nsweep trial / plain fit: mean {statistics.fmean(ratios):.3f} (overhead {statistics.fmean(ratios) - 1:+.1%}); "
          f"time outside training per trial: mean {statistics.fmean(outside):.1%}, max {max(outside):.1%}")


if __name__ == "__main__":
    main()
