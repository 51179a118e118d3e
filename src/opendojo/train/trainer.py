"""The training loop (nanoGPT-short): AdamW, warmup + cosine LR, gradient clipping, optional
bf16 autocast or CFloat numerics, optional weight averaging (`opendojo.train.ema`),
checkpoints with the loader's position, exact resume, TensorBoard + metrics.jsonl, data
parallel under torchrun.

Run directory
    config.toml, config.json   the resolved config (+ code version, world size)
    metrics.jsonl              one line per logged step (rank 0)
    tb/                        TensorBoard events
    checkpoints/step-N.safetensors + step-N.json

`train()` runs in every rank; under torchrun (WORLD_SIZE > 1) it joins a process group
(gloo on CPU, nccl on GPU), wraps the model in DDP and gives each rank its loader shard.
The global batch is split evenly over the ranks.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from opendojo import code_version
from opendojo.atomic import write_text
from opendojo.errors import CheckpointError, ConfigError, DatasetError
from opendojo.label.hindsight import LabelSpec
from opendojo.train.checkpoint import checkpoints, load_checkpoint, read_meta, save_checkpoint, trained_settings
from opendojo.train.config import TrainConfig, to_toml
from opendojo.train.ema import averaged
from opendojo.train.loader import LoaderConfig, TrainLoader
from opendojo.train.model import PolicyNet
from opendojo.train.path import path_targets

KILL_ENV = "OPENDOJO_KILL_AT_STEP"   # tests: SIGKILL this process right after that step


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to `lr`, then cosine decay to `min_lr` at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


def sample_weights(batch: dict, cfg: TrainConfig) -> torch.Tensor | None:
    """Per-sample loss weights: 1 + deviation_weight x (metres between where the driver ended
    up at the horizon and where driving on straight at constant speed would have). Most
    frames are cruising; the few where the driver brakes for something or swerves are the
    ones that teach, and without the weight the network learns to drive on regardless."""
    if not cfg.deviation_weight:
        return None
    truth = batch["trajectory"]
    cv_end = batch["speed"].to(truth.dtype) * cfg.model.horizon_s
    dev = torch.stack([truth[:, -1, 0] - cv_end, truth[:, -1, 1]], dim=-1).norm(dim=-1)
    return 1.0 + cfg.deviation_weight * dev


def policy_loss(out: dict, batch: dict, cfg: TrainConfig) -> tuple[torch.Tensor, dict]:
    """Smooth-L1 on the waypoints (weighted per sample, `sample_weights`) and on the controls;
    with a path head, also on the path points the label covers (`opendojo.train.path`).

    With several trajectory modes, winner takes all: only the mode nearest the driven future
    (waypoints and, with a path head, its path together) is regressed, and the mode
    classifier learns (cross-entropy) which mode that was."""
    w = sample_weights(batch, cfg)
    extra = {}
    moded = "modes" in out
    trajs = out["modes"] if moded else out["trajectory"].unsqueeze(1)           # [B, K, W, 2]
    per_mode = F.smooth_l1_loss(trajs.float(), batch["trajectory"].unsqueeze(1).expand_as(trajs),
                                reduction="none").mean(dim=(2, 3))              # [B, K]
    point = None
    if "path" in out:
        paths = out["path_modes"] if "path_modes" in out else out["path"].unsqueeze(1)
        target, valid = path_targets(batch["trajectory"], cfg.model.path_points, cfg.model.path_spacing)
        point = F.smooth_l1_loss(paths.float(), target.unsqueeze(1).expand_as(paths),
                                 reduction="none").mean(dim=-1)                 # [B, K, P]
        covered = valid.to(point.dtype)                                          # [B, P]
    if moded:
        fit = per_mode
        if point is not None:   # a path per mode: the pair nearest the driven future wins
            fit = fit + (point * covered[:, None]).sum(dim=-1) / covered.sum(dim=-1, keepdim=True).clamp_min(1.0)
        winner = fit.detach().argmin(dim=1)
        mode_ce = F.cross_entropy(out["mode_logits"].float(), winner)
        extra = {"mode_loss": mode_ce.detach()}
    else:
        winner = torch.zeros(trajs.shape[0], dtype=torch.long, device=trajs.device)
        mode_ce = 0.0
    per = per_mode.gather(1, winner[:, None])[:, 0]
    traj = per.mean() if w is None else (per * w).sum() / w.sum()
    scale = torch.tensor([cfg.accel_scale, cfg.steering_scale], device=batch["controls"].device)
    ctrl = F.smooth_l1_loss(out["controls"].float() / scale, batch["controls"] / scale)
    ade = (out["trajectory"].float() - batch["trajectory"]).norm(dim=-1).mean()
    loss = cfg.trajectory_weight * (traj + mode_ce) + cfg.controls_weight * ctrl
    if point is not None:
        # the winner's points, each weighted by its sample's weight where the label covers it
        points = point.gather(1, winner[:, None, None].expand(-1, 1, point.shape[2]))[:, 0]
        vw = covered * (1.0 if w is None else w[:, None])
        path = (points * vw).sum() / vw.sum().clamp_min(1e-6)
        loss = loss + cfg.trajectory_weight * path
        extra["path_loss"] = path.detach()
    if cfg.collision_weight and "field" in batch:
        from opendojo.train.occupancy import collision_cost

        cost = collision_cost(out["trajectory"], batch["driven"], batch["turn"], batch["field"],
                              float(batch["px_per_m"]), float(batch["ego_row"])).mean()
        loss = loss + cfg.collision_weight * cost
        extra["collision_cost"] = cost.detach()
    return loss, {"trajectory_loss": traj.detach(), "controls_loss": ctrl.detach(),
                  "ade": ade.detach(), **extra}


def label_spec(cfg: TrainConfig) -> LabelSpec:
    return LabelSpec(horizon_s=cfg.model.horizon_s, waypoints=cfg.model.horizon)


def make_loader(cfg: TrainConfig, rank: int = 0, world: int = 1) -> TrainLoader:
    from opendojo.clips.store import ClipStore
    from opendojo.train.dataset import load_dataset

    if not cfg.store or not cfg.dataset:
        raise ConfigError("train needs --store and --dataset")
    if cfg.batch_size % world:
        raise ConfigError(f"batch size {cfg.batch_size} does not split over {world} processes")
    store = ClipStore(cfg.store)
    clips = load_dataset(store, cfg.dataset).clips(cfg.split)
    lc = LoaderConfig(batch_size=cfg.batch_size // world, frames=cfg.model.frames,
                      frame_stride=cfg.model.frame_stride, image_size=cfg.model.image_size,
                      block_clips=cfg.block_clips, workers=cfg.workers, seed=cfg.seed,
                      frame_cache=cfg.frame_cache, command=cfg.command,
                      collision=cfg.collision_weight > 0, start_frames=cfg.start_frames,
                      reaction_oversample=cfg.reaction_oversample,
                      synthetic_share=cfg.synthetic_share,
                      synthetic_near_share=cfg.synthetic_near_share,
                      synthetic_path_jitter_m=cfg.synthetic_path_jitter_m,
                      synthetic_lane_changes=cfg.synthetic_lane_changes,
                      mirror_share=cfg.mirror_share, object_channel=cfg.model.object_channel)
    return TrainLoader(store, clips, label_spec(cfg), lc, rank=rank, world=world)


def apply_precision(model: torch.nn.Module, precision: str) -> torch.nn.Module:
    if precision in ("cfloat8", "cfloat16"):
        try:
            from opendojo.numerics.training import apply_precision as apply_cfloat
        except ImportError:
            raise ConfigError(f"{precision} precision not available yet "
                              "(opendojo.numerics.training is not built)") from None
        return apply_cfloat(model, precision)
    return model


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


# Settings a resumed run may change: they cannot change what it computes (the loader's
# order does not depend on its workers or on the frame cache: opendojo.train.loader).
RUNTIME_SETTINGS = ("workers", "frame_cache")


def saved_config(run_dir: Path) -> TrainConfig:
    """The config a run in `run_dir` was started with (what `--resume` continues)."""
    from pydantic import ValidationError

    if not (run_dir / "config.json").exists():
        raise CheckpointError(f"{run_dir}: nothing to resume (no config.json)")
    try:
        saved_json = json.loads((run_dir / "config.json").read_text())
        # A run from before TrainConfig.command was fed the hindsight command: keep it so.
        return TrainConfig(**trained_settings(saved_json))
    except (ValueError, KeyError, TypeError) as e:     # JSONDecodeError, ValidationError
        why = (f"{e.errors()[0]['loc']}: {e.errors()[0]['msg']}" if isinstance(e, ValidationError)
               else f"{type(e).__name__}: {e}")
        raise CheckpointError(f"{run_dir}/config.json is not a run config this version can "
                              f"resume ({why})") from None


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, resume: bool) -> TrainConfig:
    """Check the run directory and return the config to run with: on resume the saved one,
    with `cfg`'s steps if more and its runtime settings (RUNTIME_SETTINGS)."""
    used = (run_dir / "metrics.jsonl").exists() or bool(checkpoints(run_dir / "checkpoints"))
    if resume:
        saved = saved_config(run_dir)
        if saved.model != cfg.model:
            diff = [k for k in cfg.model.model_dump() if getattr(saved.model, k) != getattr(cfg.model, k)]
            raise CheckpointError(f"{run_dir}: its checkpoints are for another model config "
                                  f"({', '.join(f'{k}={getattr(saved.model, k)} not {getattr(cfg.model, k)}' for k in diff)})")
        return saved.model_copy(update={"steps": max(cfg.steps, saved.steps),
                                        **{k: getattr(cfg, k) for k in RUNTIME_SETTINGS}})
    if used:
        raise ConfigError(f"{run_dir} already holds a run (use --resume to continue it, or "
                          "another --run-dir)")
    return cfg


def write_run_config(cfg: TrainConfig, run_dir: Path, world: int) -> None:
    write_text(run_dir / "config.toml", to_toml(cfg))
    write_text(run_dir / "config.json", json.dumps({"train": cfg.model_dump(), "world_size": world,
                                                    "code_version": code_version()}, indent=1))


def train(cfg: TrainConfig, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train the policy; returns a summary (final step, loss, throughput, checkpoint path)."""
    rank, world, local_rank = _distributed()
    run_dir = Path(run_dir)
    cfg = prepare_run_dir(cfg, run_dir, resume)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cpu":
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    if cfg.precision == "bf16" and device.type == "cpu" and not hasattr(torch, "autocast"):
        raise ConfigError("bf16 autocast is not available in this torch")
    loader = make_loader(cfg, rank, world)

    torch.manual_seed(cfg.seed)
    pc = cfg.policy_config()
    model = apply_precision(PolicyNet(pc), cfg.precision).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    other = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=cfg.lr)

    # The average copies the weights at its first update, so it may be made before they load.
    ema = averaged(model, cfg.ema_decay) if cfg.ema_decay else None
    step = 0
    ckpt_dir = run_dir / "checkpoints"
    done = checkpoints(ckpt_dir)
    if resume and done:
        last = ckpt_dir / f"step-{done[-1]}.safetensors"
        meta = load_checkpoint(last, model, opt, expect_model=pc.to_dict(),
                               weights="model" if ema is None else "training")
        step = meta["step"]
        loader.load_state_dict(meta["loader"])
        if ema is not None:
            load_checkpoint(last, ema.module)
            ema.n_averaged.fill_(step)             # one update per step since step 0
    elif cfg.init_from:
        load_checkpoint(cfg.init_from, model, None, expect_model=pc.to_dict())
    if step >= cfg.steps:                          # before anything in run_dir is rewritten
        raise ConfigError(f"{run_dir} is already at step {step} of {cfg.steps} (raise --steps)")
    if rank == 0:
        write_run_config(cfg, run_dir, world)
        _truncate_metrics(run_dir / "metrics.jsonl", step)

    ddp = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)
    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1)
    kill_at = int(os.environ.get(KILL_ENV, "-1"))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    model.train()
    batches = iter(loader)
    window_t, window_n, window_loss, window_steps, last = time.perf_counter(), 0, 0.0, 0, {}
    bar = _progress(progress and rank == 0, step, cfg.steps)
    try:
        while step < cfg.steps:
            batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
            for g in opt.param_groups:
                g["lr"] = lr_at(step, cfg)
            with autocast:
                out = ddp(batch["frames"], batch["speed"], batch["command"])
            loss, parts = policy_loss(out, batch, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            step += 1
            window_n += batch["speed"].shape[0] * world
            window_loss, window_steps = window_loss + loss.detach().float(), window_steps + 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                stats = torch.stack([loss.detach().float(), parts["trajectory_loss"], parts["controls_loss"],
                                     parts["ade"], gnorm.detach().float(), window_loss / window_steps])
                if world > 1:
                    torch.distributed.all_reduce(stats)
                    stats /= world
                now = time.perf_counter()
                last = {"step": step, "loss": stats[0].item(), "trajectory_loss": stats[1].item(),
                        "controls_loss": stats[2].item(), "train_ade": stats[3].item(),
                        "grad_norm": stats[4].item(), "lr": lr_at(step - 1, cfg),
                        "loss_window": stats[5].item(),   # mean loss over the steps since the last line
                        "samples_per_s": window_n / (now - window_t), "epoch": loader.epoch,
                        "world_size": world}
                # the optional terms, as this rank computed them on its last batch
                last.update({k: parts[k].item() for k in ("mode_loss", "path_loss", "collision_cost")
                             if k in parts})
                window_t, window_n, window_loss, window_steps = now, 0, 0.0, 0
                if rank == 0:
                    with open(run_dir / "metrics.jsonl", "a") as f:
                        f.write(json.dumps(last) + "\n")
                    for k in ("loss", "loss_window", "trajectory_loss", "controls_loss", "train_ade", "grad_norm", "lr",
                              "samples_per_s"):
                        writer.add_scalar(f"train/{k}", last[k], step)
            if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
                save_checkpoint(ckpt_dir, step, model if ema is None else ema.module, opt, {
                    "model": pc.to_dict(), "train": cfg.model_dump(), "loader": loader.state_dict(),
                    "code_version": code_version(), "world_size": world,
                    "labels": {"version": label_spec(cfg).version, "horizon_s": cfg.model.horizon_s,
                               "waypoints": cfg.model.horizon}},
                    training=None if ema is None else model)
                writer.flush()
            if bar is not None:
                bar.update(1, loss=last.get("loss"))
            if step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    except KeyboardInterrupt:
        done = checkpoints(ckpt_dir)
        raise TrainingInterrupted(run_dir, step, cfg.steps, done[-1] if done else None) from None
    finally:        # the live progress bar is stopped however the loop ends
        if bar is not None:
            bar.close()
    if writer is not None:
        writer.close()
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return run_summary(last, run_dir, step)


def run_summary(last: dict, run_dir: Path, step: int) -> dict:
    """What `train` returns: the last metrics line, the run directory and the checkpoint."""
    return {**last, "run_dir": str(run_dir),
            "checkpoint": str(Path(run_dir) / "checkpoints" / f"step-{step}.safetensors")}


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines of steps lost after the checkpoint we continue from."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    write_text(path, "".join(line + "\n" for line in keep))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: still a KeyboardInterrupt (the CLI exits 130), carrying where
    the run stopped so that `dojo train` can say how to resume it."""

    def __init__(self, run_dir: Path, step: int, steps: int, checkpoint: int | None):
        super().__init__(f"{run_dir}: stopped at step {step} of {steps}")
        self.run_dir, self.step, self.steps, self.checkpoint = run_dir, step, steps, checkpoint


NO_LOSS = "\u2013"      # shown until the first logged step: a loss not known yet, not a NaN


class _Bar:
    def __init__(self, start: int, total: int):
        from rich.progress import Progress

        self.p = Progress(*Progress.get_default_columns(), "loss {task.fields[loss]}", transient=True)
        self.p.start()
        self.task = self.p.add_task("training", total=total, completed=start, loss=NO_LOSS)

    def update(self, n: int, loss: float | None) -> None:
        self.p.update(self.task, advance=n, loss=_loss_text(loss))

    def close(self) -> None:
        self.p.stop()


def _loss_text(loss: float | None) -> str:
    return NO_LOSS if loss is None else f"{loss:.3f}"


def _progress(enabled: bool, start: int, total: int):
    return _Bar(start, total) if enabled else None


__all__ = ["train", "lr_at", "policy_loss", "make_loader", "read_meta", "DatasetError",
           "TrainingInterrupted", "saved_config"]
