"""Bad sweep specs and study names through the real `lit-video sweep`: one `lit-video: error:` line, and
a study that is left as it was."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import yaml
from cli_errors import assert_one_line_error, run_lit_video
from conftest import TINY_BUDGET, write_spec

from lit_video.sweep.storage import open_storage

CLIP, STRIDE = "data.init_args.clip_len", "data.init_args.stride"


def grid(clip_lens: list[int], strides: list[int] = (1,)) -> dict:
    return {CLIP: {"type": "categorical", "choices": list(clip_lens)},
            STRIDE: {"type": "categorical", "choices": list(strides)}}


def study_state(storage: Path, name: str = "test") -> list[tuple]:
    """What the trials of a study hold: number, state, parameters, queued point, user attributes."""
    study = optuna.load_study(study_name=name, storage=open_storage(f"sqlite:///{storage}"))
    return [(t.number, t.state, t.params, t.system_attrs.get("fixed_params"), t.user_attrs) for t in study.trials]


def test_a_spec_of_nested_aliases_is_refused_at_once(tmp_path, ucf101_root):
    spec = write_spec(tmp_path, ucf101_root)
    fields = yaml.safe_load(spec.read_text())
    del fields["overrides"]
    # A "billion laughs": 10 ** 9 strings once expanded (as the fixed overrides of every trial), a few
    # hundred bytes on disk.
    bomb = ["overrides:", f"  data.init_args.root: {ucf101_root}", "  data.init_args.num_workers: 0",
            "  trainer.plugins: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    bomb += [f"  trainer.callbacks{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    spec.write_text(yaml.safe_dump(fields) + "\n".join(bomb) + "\n")
    start = time.monotonic()
    result = run_lit_video("sweep", spec, cwd=tmp_path, timeout=60)
    assert_one_line_error(result, str(spec), "expands to more than")
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, text", [
    ("sampler", "sampler: random\nsampler: grid\n"),
    ("search_space", f"search_space:\n  {CLIP}: {{type: categorical, choices: [4]}}\n"
                     f"  {STRIDE}: {{type: categorical, choices: [1]}}\n  {CLIP}: {{type: categorical, choices: [8]}}\n"),
])
def test_a_key_given_twice_in_a_spec_is_refused(tmp_path, ucf101_root, key, text):
    spec = write_spec(tmp_path, ucf101_root)
    fields = yaml.safe_load(spec.read_text())
    del fields[key]
    spec.write_text(yaml.safe_dump(fields) + text)
    repeated = "sampler" if key == "sampler" else CLIP
    assert_one_line_error(run_lit_video("sweep", spec, cwd=tmp_path), str(spec), f"key '{repeated}' given twice")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fields, args, fragments", [
    ({}, ["--study-name", "../../x"], ["--study-name", "'../../x'", "path separator"]),
    ({"study_name": "../escape"}, [], ["study_name", "'../escape'", "path separator"]),
    ({"study_name": ".."}, [], ["study_name", "'..'"]),
    ({"study_name": "bad\tname"}, [], ["study_name", "control character"]),
])
def test_a_study_name_that_is_not_a_folder_name_is_refused(tmp_path, ucf101_root, fields, args, fragments):
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    spec = write_spec(folder, ucf101_root, **fields)
    result = run_lit_video("sweep", spec, *args, cwd=folder)
    assert_one_line_error(result, *fragments)
    # nothing was written anywhere: no storage, no trial folder, in out_dir or above it
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("a"), Path("a/b"), Path("a/b/spec.yaml")]


@pytest.mark.parametrize("fields, fragments", [
    ({"search_space": [{CLIP: {"type": "categorical", "choices": [4]}}]},
     ["search_space: expected a mapping of config keys", "got a list"]),
    ({"timeout": "soon"}, ["timeout: expected a positive number of seconds", "'soon'"]),
    ({"search_space": {STRIDE: {"type": "int", "low": 1, "high": 3, "step": 0}}, "sampler": "random",
      "n_trials": 1},
     [f"search_space.{STRIDE}.step: expected a positive integer, got 0"]),
    ({"search_space": {CLIP: {"type": "categorical", "choices": ["abc"]}}},
     [f"search_space.{CLIP} = 'abc'", "expected int, got abc"]),
    ({"search_space": {STRIDE: {"type": "int", "low": 1, "high": 2.5}}},
     [f"search_space.{STRIDE}: int needs whole numbers for 'low' and 'high', got 1 and 2.5"]),
    ({"seeds": [0, True]}, ["seeds: expected a list of integers"]),
])
def test_a_bad_spec_value_is_named_before_any_trial(tmp_path, ucf101_root, fields, fragments):
    spec = write_spec(tmp_path, ucf101_root, **fields)
    assert_one_line_error(run_lit_video("sweep", spec, cwd=tmp_path), str(spec), *fragments)
    assert not (tmp_path / "out" / "test.db").exists()


def test_a_missing_dataset_root_is_named_before_any_trial(tmp_path, ucf101_root):
    spec = write_spec(tmp_path, ucf101_root, overrides={"data.init_args.root": "data/synthetic/ucf101",
                                                        "data.init_args.num_workers": 0})
    result = run_lit_video("sweep", spec, cwd=tmp_path)
    assert_one_line_error(result, str(spec), "overrides.data.init_args.root", "data/synthetic/ucf101", "does not exist",
                          str(tmp_path))
    assert "trial 0" not in result.output and not (tmp_path / "out" / "test.db").exists()


def test_a_sweep_without_a_complete_trial_exits_with_an_error(tmp_path, ucf101_root):
    spec = write_spec(tmp_path, ucf101_root, search_space=grid([4]),
                      objectives=[{"metric": "val/never_logged", "direction": "maximize"}])
    result = run_lit_video("sweep", spec, cwd=tmp_path)
    assert_one_line_error(result, "study 'test' has no complete trial", "0 complete, 0 pruned, 1 fail", status=1)
    assert "objective metric 'val/never_logged' was not logged" in result.stdout


def test_a_changed_spec_is_refused_unless_forced_and_then_skips_the_old_queued_points(tmp_path, ucf101_root):
    storage = tmp_path / "out" / "test.db"
    spec = write_spec(tmp_path, ucf101_root, search_space={
        CLIP: {"type": "categorical", "choices": [4]}, STRIDE: {"type": "int", "low": 1, "high": 2}})
    first = run_lit_video("sweep", spec, "--n-trials", "1", cwd=tmp_path)
    assert first.returncode == 0, first.output[-3000:]
    before = study_state(storage)
    assert [(t[1], t[3][STRIDE]) for t in before] == [(optuna.trial.TrialState.COMPLETE, 1),
                                                     (optuna.trial.TrialState.WAITING, 2)]
    # The grid changes: strides 1 and 2 leave it, 3 joins it.
    write_spec(tmp_path, ucf101_root, search_space={
        CLIP: {"type": "categorical", "choices": [4]}, STRIDE: {"type": "int", "low": 3, "high": 3}})
    refused = run_lit_video("sweep", spec, cwd=tmp_path)
    assert_one_line_error(refused, "study 'test'", "created from another spec", "search space changed",
                          "--study-name", "--force-spec")
    assert study_state(storage) == before  # nothing claimed, skipped, queued or run
    forced = run_lit_video("sweep", spec, "--force-spec", cwd=tmp_path)
    assert forced.returncode == 0, forced.output[-3000:]
    after = {t[3][STRIDE]: t for t in study_state(storage)}
    assert set(after) == {1, 2, 3}
    assert after[2][1] == optuna.trial.TrialState.FAIL and after[2][4]["failure"].startswith("skipped:")
    assert f"{STRIDE}=2 is outside" in after[2][4]["failure"]
    assert after[3][1] == optuna.trial.TrialState.COMPLETE  # the new point ran
    assert after[1][:3] == before[0][:3]  # the finished one was kept, not redone
    assert "2 complete, 0 pruned, 1 fail" in forced.stdout
    # The study now records the new spec: the same command without the flag is accepted, and runs nothing.
    again = run_lit_video("sweep", spec, cwd=tmp_path)
    assert again.returncode == 0 and "trial 3" not in again.output, again.output[-3000:]
    # Optuna cannot change a categorical parameter's choices within a study: refused even when forced.
    settled = study_state(storage)
    write_spec(tmp_path, ucf101_root, search_space={
        CLIP: {"type": "categorical", "choices": [4, 8]}, STRIDE: {"type": "int", "low": 3, "high": 3}})
    assert_one_line_error(run_lit_video("sweep", spec, "--force-spec", cwd=tmp_path), "study 'test'",
                          f"search_space.{CLIP} from choices [4]", "--study-name")
    assert study_state(storage) == settled


def test_a_study_created_before_specs_were_recorded_is_accepted_and_records_the_spec(tmp_path, ucf101_root):
    spec = write_spec(tmp_path, ucf101_root, search_space=grid([4]))
    (tmp_path / "out").mkdir()
    storage = f"sqlite:///{tmp_path / 'out' / 'test.db'}"
    old = optuna.create_study(study_name="test", storage=storage, direction="maximize")
    point = {CLIP: 4, STRIDE: 1, "seed_everything": 0}
    distributions = {key: optuna.distributions.CategoricalDistribution([value]) for key, value in point.items()}
    old.add_trial(optuna.trial.create_trial(params=point, distributions=distributions, value=0.5,
                                            system_attrs={"fixed_params": point}))
    result = run_lit_video("sweep", spec, cwd=tmp_path)
    assert result.returncode == 0 and "1 complete" in result.stdout, result.output[-3000:]
    assert "lit_video:spec" in optuna.load_study(study_name="test", storage=storage).user_attrs
    changed = write_spec(tmp_path, ucf101_root, search_space=grid([4]), budget={**TINY_BUDGET, "max_epochs": 2})
    assert_one_line_error(run_lit_video("sweep", changed, cwd=tmp_path), "created from another spec",
                          "overrides changed")
