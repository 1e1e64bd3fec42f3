"""Results people read (issue 14): `mdlc compare`, `mdlc report`, TensorBoard HParams, saved models, the
metrics lines' new keys, and bad input. One CartPole experiment (2 points x 3 seeds, 6k steps) and one
tiny MoE 2048 run are trained once for the module."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats
from sweeps import mdlc

DATA = Path(__file__).resolve().parent / "data" / "results"
PAIR, TINY_MOE = DATA / "cartpole_pair.mdl", DATA / "tiny_moe_2048.mdl"
SLOW_POINT, FAST_POINT = "lr=0.0001", "lr=0.003"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """The CartPole experiment's directory, every run completed."""
    out = tmp_path_factory.mktemp("pair")
    code, _, err = mdlc("train", PAIR, "--out", out, "--jobs", "2")
    assert code == 0, err
    return out / "pair"


@pytest.fixture(scope="module")
def moe_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moe")
    code, _, err = mdlc("train", TINY_MOE, "--out", out)
    assert code == 0, err
    return out / "tiny_moe" / "5"


def _lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _bootstrap_mean(x: np.ndarray) -> list[float]:
    ci = stats.bootstrap((x,), np.mean, n_resamples=10_000, confidence_level=0.95, method="percentile",
                         rng=np.random.default_rng(0)).confidence_interval
    return [ci.low, ci.high]


# ------------------------------------------------------------------------------------------ compare
def test_compare_two_points_recomputes_from_the_runs_metrics(pair: Path, tmp_path: Path) -> None:
    png = tmp_path / "compare.png"
    code, out, err = mdlc("compare", pair / SLOW_POINT, pair / FAST_POINT, "-o", png, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [g["label"] for g in result["groups"]] == [SLOW_POINT, FAST_POINT]
    scores = {}
    for group in result["groups"]:
        runs = sorted((pair / group["label"]).iterdir())
        # a run's score is the mean return of its last 100 episodes: its last metrics line's
        x = np.asarray([_lines(run)[-1]["mean_return"] for run in runs])
        scores[group["label"]] = x
        assert group["n"] == len(x) == 3
        assert group["mean"] == pytest.approx(x.mean())
        assert group["std"] == pytest.approx(x.std(ddof=1))
        assert group["iqm"] == pytest.approx(stats.trim_mean(x, 0.25))
        assert group["ci95"] == pytest.approx(_bootstrap_mean(x))
        curve = group["curve"]
        assert curve["n"] == 3 and len(curve["steps"]) == len(curve["lo"]) == len(curve["hi"])
        assert all(lo <= m <= hi for lo, m, hi in zip(curve["lo"], curve["mean"], curve["hi"], strict=True))
    # only the swept setting differs
    assert set(result["differences"]) == {"ppo.lr"}
    assert result["differences"]["ppo.lr"] == [0.0001, 0.003]
    (comparison,) = result["comparisons"]
    a, b = scores[SLOW_POINT], scores[FAST_POINT]
    welch = stats.ttest_ind(b, a, equal_var=False)
    assert comparison["p"] == pytest.approx(welch.pvalue)
    assert comparison["delta"] == pytest.approx(b.mean() - a.mean())
    lo, hi = comparison["ci95"]
    assert comparison["significant"] == (welch.pvalue < 0.05 and (lo > 0 or hi < 0))
    expected = "better" if b.mean() > a.mean() else "worse"
    if comparison["significant"]:
        assert comparison["verdict"].startswith(f"{FAST_POINT} is {expected} than {SLOW_POINT}: ")
        assert f"p = {welch.pvalue:.2g}" in comparison["verdict"]
    else:
        assert comparison["verdict"] == f"{FAST_POINT} and {SLOW_POINT} are not distinguishable with 3 seeds each"
    _assert_both_bands(png)


def _assert_both_bands(png: Path) -> None:
    """The PNG has the blue and the orange band (matplotlib's first two colours at alpha 0.22 on white)."""
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):
        band = 0.22 * np.asarray(colour) + 0.78 * 255
        near = np.abs(pixels - band).max(axis=1) <= 6
        assert near.sum() > 500, f"no band of colour {colour} in {png}"


def test_compare_prints_a_table_the_differing_setting_and_a_verdict(pair: Path, tmp_path: Path) -> None:
    code, out, err = mdlc("compare", pair, "-o", tmp_path / "c.png")  # an experiment: one group per point
    assert code == 0, err
    assert SLOW_POINT in out and FAST_POINT in out and "ppo.lr" in out and "95% interval" in out
    assert ("better than" in out) or ("not distinguishable" in out)
    assert (tmp_path / "c.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------------------- report
RUN_PLOTS = {"score.png", "losses.png", "entropy.png", "approx_kl.png", "clip_fraction.png",
             "explained_variance.png", "lr.png", "steps_per_second.png", "memory.png", "params.png", "actions.png"}


def _assert_pictures(folder: Path, names: set[str]) -> None:
    for name in names:
        image = np.asarray(Image.open(folder / name).convert("L"))
        assert image.shape[0] > 100 and image.shape[1] > 100, name
        assert (image < 128).mean() > 0.005, f"{name} is blank"


def test_report_of_a_2048_moe_run(moe_run: Path, tmp_path: Path) -> None:
    code, out, err = mdlc("report", moe_run, "-o", tmp_path, "--json")
    assert code == 0, err
    result = json.loads(out)
    _assert_pictures(tmp_path, RUN_PLOTS | {"tiles.png", "moe_shares.png", "moe_balance.png"})
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) - 1 == len(_lines(moe_run)) == result["rows"]
    header = rows[0].split(",")
    assert {"step", "mean_return", "mean_score", "tile_rate_256", "action_0", "memory_bytes"} <= set(header)
    assert any(h.startswith("moe/") and h.endswith("/cv") for h in header)
    page = (tmp_path / "report.html").read_text()
    assert 'alert("not run")' not in page and "&lt;script&gt;alert(&quot;not run&quot;)&lt;/script&gt;" in page
    assert "<b>" not in page and "TinyMoe" in page and page.count("data:image/png;base64,") == len(result["plots"])


def test_report_of_a_two_point_experiment(pair: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a <b> & 'c'"  # a path of odd characters: escaped in the page
    shutil.copytree(pair, odd)
    code, out, err = mdlc("report", odd, "--json")
    assert code == 0, err
    result = json.loads(out)
    folder = odd / "report"
    _assert_pictures(folder, RUN_PLOTS | {"sensitivity_algo.lr.png", "pareto_params.png", "pareto_flops.png"})
    assert [p["label"] for p in result["points"]] == [SLOW_POINT, FAST_POINT]
    assert all(p["n"] == 3 for p in result["points"])
    rows = (folder / "metrics.csv").read_text().splitlines()
    assert len(rows) - 1 == sum(len(_lines(r)) for r in odd.glob("*/*") if (r / "config.json").exists())
    page = (folder / "report.html").read_text()
    assert "a &lt;b&gt; &amp; &#x27;c&#x27;" in page and "<b>" not in page


def test_report_html_opens_in_headless_chromium_without_broken_images(moe_run: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium on PATH (CI installs it)")
    code, _, err = mdlc("report", moe_run, "-o", tmp_path)
    assert code == 0, err
    # The test's own probe, appended to a copy: it writes the count of images that did not decode.
    probe = tmp_path / "probe.html"
    probe.write_text((tmp_path / "report.html").read_text().replace("</body>", """<script>
window.addEventListener("load", () => { const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length; });
</script></body>"""))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-broken="0"' in dom.stdout
    images = int(dom.stdout.split('data-images="')[1].split('"')[0])
    assert images >= len(RUN_PLOTS)
    shot = tmp_path / "screenshot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    (tmp_path / "report.html").as_uri()], capture_output=True, timeout=120, check=True)
    picture = np.asarray(Image.open(shot).convert("L"))
    assert picture.shape == (2400, 1200) and (picture < 128).mean() > 0.01  # text and plots, not a blank page


# ------------------------------------------------------------------------------ metrics and HParams
def test_metrics_lines_carry_actions_memory_and_params(moe_run: Path) -> None:
    params = json.loads((moe_run / "config.json").read_text())["params"]
    for line in _lines(moe_run):
        assert len(line["action_distribution"]) == 4 and math.isclose(sum(line["action_distribution"]), 1.0)
        assert line["memory_bytes"] > 50 * 2**20 and line["params"] == params


def test_hparams_are_in_the_runs_own_event_files(pair: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    run = pair / FAST_POINT / "2"
    assert [p.name for p in (run / "tensorboard").iterdir() if p.is_dir()] == []  # no sub-run by the clock
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG])
    hparams = {k: v for k, v in start.session_start_info.hparams.items()}
    assert hparams["algo.lr"].number_value == pytest.approx(0.003)
    assert hparams["seed"].number_value == 2 and hparams["env"].string_value == "CartPole-v1"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.EXPERIMENT_TAG])
    assert [m.name.tag for m in experiment.experiment.metric_infos] == ["hparams/score"]
    (score,) = events.Scalars("hparams/score")
    assert score.value == pytest.approx(json.loads((run / "summary.json").read_text())["mean_return_last100"])


# -------------------------------------------------------------------------------------------- models
def test_models_save_list_refuse_force_rm_and_eval(pair: Path, tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "models"
    slow, fast = pair / SLOW_POINT / "1", pair / FAST_POINT / "1"
    assert mdlc("models", "save", slow, "--name", "slow", "--models", root)[0] == 0
    code, out, _ = mdlc("models", "save", fast, "--name", "fast", "--models", root, "--pick", "best", "--json")
    assert code == 0
    saved = json.loads(out)
    assert {e["format"]: e["verified"] for e in saved["exports"]} == {"pt": True, "onnx": True}
    assert (root / "fast" / saved["checkpoint"]).is_file() and (root / "fast" / "export" / "CartPoleMlp.onnx").is_file()
    code, _, err = mdlc("models", "save", fast, "--name", "slow", "--models", root)
    assert code == 2 and "exists" in err and "--force" in err
    assert json.loads((root / "slow" / "metadata.json").read_text())["source_run"] == str(slow.resolve())
    assert mdlc("models", "save", fast, "--name", "slow", "--models", root, "--force")[0] == 0
    assert json.loads((root / "slow" / "metadata.json").read_text())["source_run"] == str(fast.resolve())
    # eval by name records the leaderboard's score; the list sorts by it
    code, out, err = mdlc("eval", root / "fast", "--episodes", "3", "--json")
    assert code == 0, err
    fast_score = json.loads(out)["mean_return"]
    code, out, _ = mdlc("models", "list", "--models", root, "--json")
    listed = json.loads(out)
    assert [m["name"] for m in listed] == ["fast", "slow"] and listed[0]["score"] == pytest.approx(fast_score)
    assert listed[1]["score"] is None
    code, out, _ = mdlc("models", "list", "--models", root, "--sort=-name", "--json")
    assert [m["name"] for m in json.loads(out)] == ["slow", "fast"]
    code, out, _ = mdlc("models", "list", "--models", root)
    assert code == 0 and out.index("fast") < out.index("slow")
    monkeypatch.chdir(tmp_path)  # `mdlc eval NAME`: the saved model models/NAME
    code, out, err = mdlc("eval", "slow", "--episodes", "2", "--json")
    assert code == 0 and json.loads(out)["episodes"] == 2, err
    assert json.loads((root / "slow" / "metadata.json").read_text())["eval"]["episodes"] == 2
    assert mdlc("models", "rm", "slow", "--models", root)[0] == 0
    code, _, err = mdlc("models", "rm", "slow", "--models", root)
    assert code == 2 and "no saved model `slow`" in err and "fast" in err
    assert sorted(p.name for p in root.iterdir()) == ["fast"]


def test_a_kill_during_save_leaves_the_old_model_or_the_new_one(pair: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    old_run, new_run = pair / SLOW_POINT / "2", pair / FAST_POINT / "2"
    assert mdlc("models", "save", old_run, "--name", "m", "--models", root)[0] == 0
    command = [sys.executable, "-m", "mdl.cli", "models", "save", str(new_run), "--name", "m", "--models", str(root),
               "--force"]
    seen = set()
    for delay in (1.0, 2.5, 4.0, 5.5):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        code, out, err = mdlc("models", "list", "--models", root, "--json")  # recovers what the kill left
        assert code == 0, err
        (model,) = json.loads(out)
        source = model["source_run"]
        assert source in (str(old_run.resolve()), str(new_run.resolve()))
        seen.add(source)
        folder = root / "m"
        assert (folder / model["checkpoint"]).is_file() and len(model["exports"]) == 2
        assert all((folder / e["path"]).is_file() for e in model["exports"])
        assert sorted(p.name for p in root.iterdir()) == ["m"]  # nothing half-written left beside it
        if source == str(new_run.resolve()):
            break
    code, out, err = mdlc("eval", root / "m", "--episodes", "1")
    assert code == 0, err


# --------------------------------------------------------------------------------------- bad input
def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and err.startswith("error: ")


def test_a_run_without_metrics(pair: Path, tmp_path: Path) -> None:
    run = tmp_path / "empty_run"
    run.mkdir()
    shutil.copy(pair / SLOW_POINT / "1" / "config.json", run)
    for command in (("report", run), ("compare", run, pair / FAST_POINT)):
        code, _, err = mdlc(*command)
        assert code == 2 and "no metrics.jsonl" in err
        _no_traceback(err)


def test_a_corrupt_metrics_line(pair: Path, tmp_path: Path) -> None:
    run = tmp_path / "corrupt"
    shutil.copytree(pair / SLOW_POINT / "1", run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[3] = lines[3][: len(lines[3]) // 2]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = mdlc("compare", run, pair / FAST_POINT / "1", "-o", tmp_path / "c.png")
    assert code == 2 and "metrics.jsonl:4: a corrupt metrics line" in err
    _no_traceback(err)
    # a torn last line (what a kill leaves) is dropped, not an error
    (run / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[4][:20])
    assert mdlc("report", run, "-o", tmp_path / "r")[0] == 0


def test_runs_of_different_environments(pair: Path, moe_run: Path, tmp_path: Path) -> None:
    code, _, err = mdlc("compare", pair / FAST_POINT, moe_run, "-o", tmp_path / "c.png")
    assert code == 2 and "different environments" in err and "CartPole-v1" in err and "Game2048" in err
    _no_traceback(err)
    code, _, err = mdlc("compare", tmp_path / "nowhere", moe_run)
    assert code == 2 and "no such run" in err
    code, _, err = mdlc("compare", moe_run)
    assert code == 2 and "two or more" in err
