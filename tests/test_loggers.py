"""Experiment loggers: jsonl rows with namespaced names, TensorBoard and MLflow read back by their own
readers, a failing logger warns once and training goes on, an unknown logger is refused."""

import json
import sys
from pathlib import Path

import pytest

from test_train import toy_host  # noqa: F401  (fixture)
from test_train import toy_recipe as train_toy_recipe

#: the training tests' tiny toy run, 6 steps with a checkpoint every 3
LOGGER_RUN = ["train.save_every=3", "train.steps=6"]


def toy_recipe(host, *extra):
    return train_toy_recipe(host, *LOGGER_RUN, *extra)


def jsonl_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def step_rows(run_dir):
    return {r["step"]: r for r in jsonl_rows(run_dir) if "event" not in r}


def eval_rows(run_dir):
    return {r["step"]: r for r in jsonl_rows(run_dir) if r.get("event") == "eval"}


def test_jsonl_keeps_its_rows_and_gains_namespaced_names(toy_host, tmp_path):
    from wmkit.train import train

    result = train(toy_recipe(toy_host), out=tmp_path / "run", host=toy_host, live=False)
    steps, evals = step_rows(result.run_dir), eval_rows(result.run_dir)
    assert sorted(steps) == list(range(1, 7)) and sorted(evals) == [3, 6]
    for row in steps.values():
        old = {k for k in row if "/" not in k and k != "step"}
        assert {"loss", "pred", "lr", "grad_norm"} <= old
        assert {f"train/{k}" for k in old} == {k for k in row if "/" in k}
        assert all(row[f"train/{k}"] == row[k] for k in old)
    probe = evals[6]
    assert probe["val/knn_at_1"] == probe["knn_at_1"] == result.last_eval["knn_at_1"]
    assert probe["val/gallery_size"] == probe["gallery_size"] == 16  # integers stay integers
    config = json.loads((result.run_dir / "config.json").read_text())
    assert [c["name"] for c in config["components"]["logger"]] == ["jsonl"]


def test_tensorboard_event_files_read_back_by_tensorboard(toy_host, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wmkit.train import train

    result = train(toy_recipe(toy_host, 'train.loggers=["tensorboard"]'), out=tmp_path / "run", host=toy_host,
                   live=False)
    assert not [w for w in result.warnings if w["kind"] == "logger"], result.warnings
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/pred", "train/lr", "val/knn_at_1", "val/copy_knn_at_1"} <= set(scalars)
    steps = step_rows(result.run_dir)
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    assert sorted(logged) == list(range(1, 7))
    for step, value in logged.items():
        assert value == pytest.approx(steps[step]["loss"], rel=1e-6)  # float32 in the event file
    probe = {e.step: e.value for e in events.Scalars("val/knn_at_1")}
    assert probe == {s: pytest.approx(r["knn_at_1"], rel=1e-6) for s, r in eval_rows(result.run_dir).items()}
    # the recipe went in as hyper-parameters (the hparams plugin's session-start summary)
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optim.lr"].number_value == pytest.approx(result_lr(result.run_dir))
    assert start.hparams["data.domain"].string_value == "toy"


def result_lr(run_dir):
    return json.loads((run_dir / "config.json").read_text())["recipe"]["optim"]["lr"]


def test_mlflow_file_store_read_back_by_mlflow_then_audit_headline(toy_host, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from wmkit.audit import run_audit
    from wmkit.train import train

    result = train(toy_recipe(toy_host, 'train.loggers=["mlflow"]'), out=tmp_path / "run", host=toy_host, live=False)
    assert not [w for w in result.warnings if w["kind"] == "logger"], result.warnings
    recorded = json.loads((result.run_dir / "mlflow.json").read_text())
    assert recorded["tracking_uri"] == (result.run_dir / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=recorded["tracking_uri"])
    run = client.get_run(recorded["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == str(result_lr(result.run_dir))
    assert run.data.params["train.steps"] == "6" and run.data.params["data.domain"] == "toy"
    assert "train.loggers" not in run.data.params  # observers are not hyper-parameters
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/loss")}
    assert history == {s: pytest.approx(r["loss"]) for s, r in step_rows(result.run_dir).items()}
    probe = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val/knn1_over_copy")}
    assert probe == {s: pytest.approx(r["knn1_over_copy"]) for s, r in eval_rows(result.run_dir).items()}

    audit = run_audit(result.run_dir, val_size=16, host=toy_host, progress=False)
    after = client.get_run(recorded["run_id"])  # the same MLflow run gets the audit's headline
    assert after.data.metrics["audit/knn_at_1"] == pytest.approx(audit["knn_at_1"])
    assert after.data.metrics["audit/copy_knn_at_1"] == pytest.approx(audit["copy_knn_at_k"]["1"])
    assert after.data.metrics["audit/linear_edit_knn_at_5"] == pytest.approx(audit["linear_edit_knn_at_k"]["5"])
    assert after.data.metrics["audit/beats_copy"] == pytest.approx(audit["beats_copy"]["rate"])
    assert after.data.tags["audit/verdict"] == audit["verdict"]
    audit_row = [r for r in jsonl_rows(result.run_dir) if r.get("event") == "audit"]
    assert len(audit_row) == 1 and audit_row[0]["audit/knn_at_1"] == pytest.approx(audit["knn_at_1"])
    assert audit_row[0]["step"] == audit["step"]


class _Flaky:
    """A logger plugin whose logger fails on its second metrics call."""

    def __init__(self):
        import wmkit
        from wmkit.loggers import Logger

        calls = self.calls = []

        class FlakyLogger(Logger):
            def log_metrics(self, step, metrics):
                calls.append(step)
                if len(calls) == 2:
                    raise ConnectionError("tracking server unreachable")

        class MissingLogger(Logger):
            def __init__(self, **kwargs):
                raise ImportError("No module named 'nonexistent_tracker'")

        @wmkit.hookimpl
        def wmkit_register_loggers(register):
            register("flaky", FlakyLogger, description="fails on its second call")
            register("missing", MissingLogger, description="its package is not installed")

        self.wmkit_register_loggers = wmkit_register_loggers


def test_failing_logger_warns_once_and_training_goes_on(toy_host, register_plugin, tmp_path):
    from wmkit.train import train

    flaky = _Flaky()
    assert register_plugin(flaky, "flaky").status == "ok"
    result = train(toy_recipe(toy_host, 'train.loggers=["flaky", "missing"]'), out=tmp_path / "run", host=toy_host,
                   live=False)
    assert result.step == 6 and sorted(step_rows(result.run_dir)) == list(range(1, 7))  # jsonl never skipped
    assert flaky.calls == [1, 2]  # dropped after its failure
    said = [w for w in result.warnings if w["kind"] == "logger"]
    assert len(said) == 2, said
    assert "'missing'" in said[0]["message"] and "nonexistent_tracker" in said[0]["message"]
    assert "'flaky'" in said[1]["message"] and "tracking server unreachable" in said[1]["message"]
    assert said[1]["step"] == 2
    logged = [r for r in jsonl_rows(result.run_dir) if r.get("event") == "warning" and r["kind"] == "logger"]
    assert [r["message"] for r in logged] == [w["message"] for w in said]


def test_missing_tensorboard_package_warns_once(toy_host, tmp_path, monkeypatch):
    from wmkit.train import train

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as when not installed
    result = train(toy_recipe(toy_host, 'train.loggers=["tensorboard"]'), out=tmp_path / "run", host=toy_host,
                   live=False)
    said = [w for w in result.warnings if w["kind"] == "logger"]
    assert len(said) == 1 and "wmkit[tensorboard]" in said[0]["message"]
    assert sorted(step_rows(result.run_dir)) == list(range(1, 7))
    assert not (result.run_dir / "tensorboard").exists()


def test_unknown_logger_is_one_line_exit_2_nothing_written(wmkit_cli, tmp_path):
    out = tmp_path / "run"
    done = wmkit_cli("train", "--logger", "tensorbord", "--out", str(out), "--no-live")
    assert done.exit_code == 2
    lines = done.output.strip().splitlines()
    assert lines == ["error: train.loggers: unknown logger 'tensorbord'; available: jsonl, mlflow, tensorboard"]
    assert not out.exists()


def test_loggers_change_neither_the_digest_nor_the_resume_check(toy_host, tmp_path):
    pytest.importorskip("tensorboard")
    from wmkit.train import train

    plain, logged = toy_recipe(toy_host), toy_recipe(toy_host, 'train.loggers=["tensorboard"]')
    assert plain.digest() == logged.digest() and plain.values != logged.values
    first = train(plain, out=tmp_path / "run", host=toy_host, live=False, early_stop=3)
    assert first.step == 3
    resumed = train(logged, out=tmp_path / "run", resume=True, host=toy_host, live=False)  # a logger added
    assert resumed.step == 6 and sorted(step_rows(tmp_path / "run")) == list(range(1, 7))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [4, 5, 6]


def test_run_whose_logger_is_gone_still_audits_with_one_note(toy_host, register_plugin, tmp_path, monkeypatch):
    from wmkit.audit import run_audit
    from wmkit.plugins import PluginHost
    from wmkit.train import train

    assert register_plugin(_Flaky(), "flaky").status == "ok"
    result = train(toy_recipe(toy_host, 'train.loggers=["flaky"]'), out=tmp_path / "run", host=toy_host, live=False)
    import wmkit_toy.plugin

    without = PluginHost()  # the flaky plugin uninstalled
    without.register_plugin(wmkit_toy.plugin, "toy", distribution="wmkit-toy", version="0.1.0")
    audit = run_audit(result.run_dir, val_size=16, host=without, progress=False)
    notes = [w for w in audit["warnings"] if w["kind"] == "logger"]
    assert len(notes) == 1 and "'flaky'" in notes[0]["message"], notes
    assert [r["event"] for r in jsonl_rows(result.run_dir) if r.get("event") == "audit"] == ["audit"]
