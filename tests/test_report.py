"""The run report: every section present when its data is, valid assets, no broken links."""

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from opendojo.cli import app
from opendojo.evaluate.rollouts import overlay_trajectory, save_rollout_gif
from opendojo.evaluate.scoring import episode_metrics, summarize
from opendojo.fleet.camera import Camera
from opendojo.report.build import build_report


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def _episodes(driver, scores_seed):
    rng = np.random.default_rng(scores_seed)
    out = []
    for i in range(4):
        n = 30
        t = np.arange(n) * 0.1
        speed = np.full(n, 15 + rng.uniform(0, 5))
        out.append(episode_metrics(driver, "merge", "cut_in" if i == 0 else "", 9_000_000 + i, t,
                                   np.cumsum(speed) * 0.1, np.zeros(n), speed, np.ones(n, bool),
                                   np.zeros(n), "vehicle" if i == 1 and driver != "expert" else "", 60.0))
    return out


def _make_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / "train" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 2.0 / (1 + s / 10)}) + "\n" for s in range(0, 100, 10)))
    eps = {d: _episodes(d, i) for i, d in enumerate(["network", "expert", "timid"])}
    summary = {d: summarize(e) for d, e in eps.items()}
    summary["fleet (humans)"] = summarize(eps["timid"])
    (run / "closed_loop.json").write_text(json.dumps({
        "summary": summary, "seeds": "9000000..9000003",
        "episodes": [e.to_dict() for es in eps.values() for e in es]}))
    (run / "open_loop.json").write_text(json.dumps({
        "columns": ["ade_m", "fde_m"],
        "rows": {"network": {"ade_m": 0.8, "fde_m": 1.9}, "constant velocity": {"ade_m": 2.1, "fde_m": 5.0}}}))
    (run / "run.json").write_text(json.dumps({"name": "t", "code_version": "0.1.0+abc",
                                              "config": {"clips": 3}, "stages": {"fleet": 1.0}}))
    frames = [np.full((96, 96, 3), 80, np.uint8) for _ in range(3)]
    traj = np.stack([np.arange(1, 7) * 3.0, np.zeros(6)], 1)
    save_rollout_gif(frames, [traj] * 3, Camera(), run / "assets" / "rollouts" / "r.gif")
    return run


def test_report_has_every_section_and_no_broken_images(tmp_path):
    run = _make_run(tmp_path)
    html = build_report(run).read_text()
    for words in ("closed-loop driving", "network", "expert", "fleet (humans)", "Open loop",
                  "constant velocity", "Training", "0.1.0+abc", "rollouts", "9000000..9000003"):
        assert words in html, words
    p = _Links()
    p.feed(html)
    assert len(p.srcs) >= 3
    for src in p.srcs:
        assert (run / src).is_file() and (run / src).stat().st_size > 0, src
    # the network row's figures are the summary's, not invented
    data = json.loads((run / "closed_loop.json").read_text())["summary"]["network"]
    assert f"{data['score']:.3f}" in html


def test_report_cli_and_missing_dir(tmp_path):
    run = _make_run(tmp_path)
    res = CliRunner().invoke(app, ["report", str(run)])
    assert res.exit_code == 0 and "report.html" in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert res.exit_code != 0


def test_trajectory_overlay_draws_ahead_of_the_ego():
    cam = Camera()
    frame = np.zeros((96, 96, 3), np.uint8)
    straight = np.stack([np.arange(1, 7) * 4.0, np.zeros(6)], 1)
    img = np.asarray(overlay_trajectory(frame, straight, cam, scale=1))
    red = np.argwhere((img[..., 0] > 200) & (img[..., 1] < 80))
    ego_row = int(cam.ego_row * 96)
    assert len(red) and red[:, 0].max() <= ego_row + 3 and red[:, 0].min() < ego_row - 20
    assert abs(red[:, 1].mean() - 48) < 3   # straight ahead stays on the centre column
    right = straight.copy()
    right[:, 1] = 5.0
    img = np.asarray(overlay_trajectory(frame, right, cam, scale=1))
    red = np.argwhere((img[..., 0] > 200) & (img[..., 1] < 80))
    assert red[:, 1].mean() > 50


def test_the_path_head_s_path_is_drawn_in_its_own_colour():
    from opendojo.evaluate.rollouts import PATH_RGB, TRAJECTORY_RGB

    cam = Camera()
    frame = np.zeros((96, 96, 3), np.uint8)
    straight = np.stack([np.arange(1, 7) * 4.0, np.zeros(6)], 1)
    left = np.stack([np.arange(1, 9) * 4.0, -np.arange(1, 9) * 1.5], 1)   # bends to the left

    def pixels(img, rgb):
        return np.argwhere(np.all(np.asarray(img) == rgb, axis=-1))

    without = overlay_trajectory(frame, straight, cam, scale=1)
    assert not len(pixels(without, PATH_RGB)) and len(pixels(without, TRAJECTORY_RGB))
    drawn = pixels(overlay_trajectory(frame, straight, cam, scale=1, path=left), PATH_RGB)
    assert len(drawn) and drawn[:, 1].min() < 48 - 10      # left of the centre, and far out
    assert drawn[:, 0].min() < int(cam.ego_row * 96) - 20  # ahead of the ego


def test_loop_report_plots_every_rounds_training(tmp_path):
    run = _make_run(tmp_path)
    metrics = (run / "train" / "metrics.jsonl").read_text()
    (run / "train" / "metrics.jsonl").unlink()
    (run / "train").rmdir()
    for k in (1, 2, 10):
        (run / f"round-{k}" / "train").mkdir(parents=True)
        (run / f"round-{k}" / "train" / "metrics.jsonl").write_text(metrics)
    from opendojo.report.build import _training_runs

    assert list(_training_runs(run)) == ["round 1", "round 2", "round 10"]
    html = build_report(run).read_text()
    assert "No training metrics" not in html and (run / "assets" / "training.png").stat().st_size > 0
    (run / "round-2" / "train" / "metrics.jsonl").write_text("")     # a round without metrics
    assert list(_training_runs(run)) == ["round 1", "round 2", "round 10"]
    assert (run / build_report(run).name).exists()


def test_each_flywheel_round_is_compared_with_round_one_on_the_same_episodes(tmp_path):
    from opendojo.loop import vs_round_1

    run = _make_run(tmp_path)
    first = json.loads((run / "closed_loop.json").read_text())
    (run / "round-1").mkdir()
    (run / "round-1" / "closed_loop.json").write_text(json.dumps(first))
    rng = np.random.default_rng(3)
    gain = rng.uniform(0.05, 0.2)
    later = []
    for e in first["episodes"]:
        if e["driver"] == "network":           # round 3's network: better by `gain` on every seed
            later.append(dict(e, score=e["score"] + gain))
    later.append(dict(later[0], seed=9_999_999, score=0.0))       # a seed round 1 never drove
    d = vs_round_1(run, {"episodes": later + [e for e in first["episodes"] if e["driver"] != "network"]})
    n_first = sum(e["driver"] == "network" for e in first["episodes"])
    assert d["pairs"] == n_first
    assert abs(d["mean"] - gain) < 1e-3 and d["ci"][0] <= d["mean"] <= d["ci"][1]

    s = first["summary"]["network"]
    rows = [{"round": k, "closed_loop": s, "selection": {"clips": 10 * k}, "dataset": f"d{k}",
             "seconds": 1.0, **({"vs_round_1": d} if k > 1 else {})} for k in (1, 2)]
    (run / "loop.json").write_text(json.dumps({"rounds": rows, "baselines": {}}))
    html = build_report(run).read_text()
    assert "vs round 1, paired" in html and f"{d['mean']:+.3f}" in html
