"""The training loader: whole clips decoded in worker processes, batches cut in a seeded order.

The order of an epoch is a pure function of (seed, epoch, rank, world size, batch size,
block size) and the labels, so a loader's position is four numbers (after MosaicML
Streaming): `{"seed", "epoch", "batch", "world_size"}` plus the sizes it was made with.

Epoch plan
  1. The clips are shuffled with (seed, epoch) and cut into blocks of `block_clips` clips.
  2. Rank r of W takes blocks r, r+W, ... (its own shard: no clip is decoded twice).
  3. Within a block, the samples of its clips (each frame with a valid label and a full
     frame history) are shuffled with (seed, epoch, block) and cut into batches of the
     per-rank batch size; a block's last partial batch is dropped.
  4. Every rank stops the epoch after the same number of batches (the smallest rank's), so
     data-parallel ranks stay in step.

Decoding: a `DataLoader` whose workers each decode one whole clip (and resize it to the
network's input size); decoded clips come back in plan order, and the main process cuts
the block's batches from them by indexing (cheap), while workers already decode the next
clips. Decoding a clip yields every one of its samples, so each frame is decoded once per
epoch; with the frame cache (default) once per input size at all, and later epochs and
runs only read the decoded array (`opendojo.clips.frame_cache`). The batch order does not
depend on the number of workers or on the cache.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Iterator, get_args

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from opendojo.clips.frame_cache import cached_frames, is_cached
from opendojo.clips.video import decode_rgb
from opendojo.engine.tables import telemetry_arrays
from opendojo.engine.triggers import clip_triggers
from opendojo.errors import DatasetError
from opendojo.label.hindsight import LabelSpec, read_labels
from opendojo.train.config import CommandSource
from opendojo.train.inputs import catalog_rows, with_object_channel


def history_offsets(frames: int, stride: int) -> np.ndarray:
    """Frame offsets of a sample's input, oldest first, relative to its frame (the last is 0):
    `frames` frames `stride` apart. Training, open- and closed-loop evaluation, shadow mode
    and embeddings all build the network's input from these."""
    return np.arange(-(frames - 1) * stride, 1, stride)


def history_indices(ends, frames: int, stride: int) -> np.ndarray:
    """Frame indices [..., frames] of the inputs whose newest frame is `ends` (oldest first).
    History from before a clip's first frame is the first frame, as closed-loop driving
    repeats it at an episode's start; training (`ClipLabels.start_frames`), shadow mode and
    embeddings index frames with these."""
    return np.maximum(np.asarray(ends)[..., None] + history_offsets(frames, stride), 0)


@dataclass(frozen=True)
class LoaderConfig:
    batch_size: int = 32          # per rank
    frames: int = 4               # frame history per sample
    frame_stride: int = 1         # frames between history frames
    image_size: int = 96
    block_clips: int = 16
    workers: int = 1
    prefetch: int = 4             # decoded clips queued per worker
    seed: int = 0
    frame_cache: bool = True      # keep decoded frames on disk (opendojo.clips.frame_cache)
    command: CommandSource = "route"  # the route command fed to the network (see ClipLabels)
    collision: bool = False       # batches carry what the collision cost needs
                                  # (opendojo.train.occupancy): later frames' cost fields
                                  # and where the ego really went
    start_frames: bool = False    # also sample a clip's first frames (see ClipLabels)
    reaction_oversample: int = 0  # extra draws per epoch of reaction frames (see ClipLabels)
    synthetic_share: float = 0.0  # share of the samples at speed from bird's-eye clips that
                                  # get a pasted road user (opendojo.train.synthesis); 0 = none
    object_channel: bool = False  # frames carry the cost field as a 4th channel
                                  # (opendojo.train.inputs)
    synthetic_near_share: float = 0.0  # share of the pasted things placed near (synthesis.pick_thing)
    synthetic_path_jitter_m: float = 0.0  # how far to the side of the path things in it may sit
    synthetic_lane_changes: bool = False  # standing or slow things in the path: driven round
                                  # where a lane beside is free (synthesis.synthesize)
    mirror_share: float = 0.0     # share of the samples flipped left-right, after any pasting
                                  # (opendojo.train.mirror)


COMMAND_SOURCES = get_args(CommandSource)

# The triggers that mark a driver reacting to something (opendojo.engine.triggers).
REACTION_TRIGGERS = ("hard_braking", "sharp_steering", "sudden_lane_change")


def reaction_frames(tel: dict, horizon_s: float) -> np.ndarray:
    """Per frame: does its label's horizon reach a hard-braking, sharp-steering or
    sudden-lane-change event (the frames from `horizon_s` before the event's start to its
    end)? Those are the frames whose futures show the driver reacting; read from the clip's
    own telemetry with the data engine's triggers, never from sim truth."""
    t = np.asarray(tel["t"], np.float64)
    hot = np.zeros(len(t), bool)
    for events in clip_triggers(tel, REACTION_TRIGGERS).values():
        for first, last in events:
            hot |= (t >= t[first] - horizon_s - 1e-9) & (t <= t[last])
    return hot


class ClipLabels:
    """The labels of a set of clips, as arrays, and which frames make samples.

    `command` says which route command a sample carries:
    - "route" (default): the command the driver was given, as the telemetry recorded it
      (`given_command`), and the hindsight command only where the source recorded none
      (dashcam imports). It is what the car knows when it drives, and what closed-loop
      evaluation feeds the network.
    - "hindsight": the command derived from where the car went. It leaks the future: a
      lane change three seconds ahead makes the command "left" or "right" now, which a
      network can learn to follow, while closed loop gives the route's command ("straight"
      on every highway). In highway-env's frame its "left" is also the driver's right
      (`opendojo.label.hindsight`).

    `start_frames`: a sample needs its whole frame history, so a clip's first
    `(frames - 1) x stride` frames make none. With it, they do, their missing history filled
    with the clip's first frame: what closed-loop driving feeds the network at an episode's
    start (`opendojo.evaluate.closed_loop.NetworkDriver`).

    `reaction_oversample` k: a sample whose label reaches a reaction (`reaction_frames`) is
    listed k + 1 times, so an epoch draws it k extra times. Drawn once, the braking at a
    platoon's start was not fitted even on training clips; drawn 4 times, it was, but the
    network then braked everywhere (docs/training.md, "Start frames and reaction
    oversampling")."""

    def __init__(self, store, clip_ids: list[str], spec: LabelSpec, frames: int, stride: int,
                 command: str = "route", poses: bool = False, start_frames: bool = False,
                 reaction_oversample: int = 0):
        if reaction_oversample < 0:
            raise DatasetError(f"reaction_oversample must be 0 or more, not {reaction_oversample}")
        if command not in COMMAND_SOURCES:
            raise DatasetError(f"command must be one of {COMMAND_SOURCES}, not {command!r}")
        tab = read_labels(store, clip_ids, spec, columns=[
            "clip_id", "frame", "valid", "speed", "trajectory", "acceleration", "steering", "command",
            "given_command"])
        self.clip_ids = list(dict.fromkeys(clip_ids))
        cid = np.asarray(tab.column("clip_id").to_pylist())
        valid = tab.column("valid").to_numpy(zero_copy_only=False)
        frame = tab.column("frame").to_numpy()
        w = spec.waypoints
        traj = np.zeros((tab.num_rows, 2 * w), np.float32)
        flat = tab.column("trajectory").combine_chunks()
        vals = flat.flatten().to_numpy(zero_copy_only=False)
        traj[valid] = vals.reshape(-1, 2 * w)
        cmd = tab.column("command").fill_null(-1).to_numpy().astype(np.int64)
        if command == "route":
            given = tab.column("given_command").fill_null(-1).to_numpy().astype(np.int64)
            cmd = np.where(given >= 0, given, cmd)
        self.per_clip: dict[str, dict[str, np.ndarray]] = {}
        history = -history_offsets(frames, stride)[0]
        for c in self.clip_ids:
            m = cid == c
            f = frame[m]
            eligible = valid[m] & ((f >= history) | start_frames)
            samples = f[eligible].astype(np.int64)
            tel = telemetry_arrays(store.telemetry(c)) if poses or reaction_oversample else None
            if reaction_oversample:
                hot = reaction_frames(tel, spec.horizon_s)[samples]
                samples = np.concatenate([samples] + [samples[hot]] * reaction_oversample)
            self.per_clip[c] = {
                "frame": f, "sample_frames": samples,
                "speed": tab.column("speed").to_numpy()[m].astype(np.float32),
                "trajectory": traj[m].reshape(-1, w, 2),
                "controls": np.stack([tab.column("acceleration").to_numpy()[m],
                                      tab.column("steering").to_numpy()[m]], -1).astype(np.float32),
                "command": cmd[m],
            }
            if poses:   # the collision cost's ego motion (opendojo.train.occupancy.ego_motion)
                self.per_clip[c]["pose"] = tuple(tel[k] for k in ("x", "y", "heading"))
        self.n_samples = sum(len(v["sample_frames"]) for v in self.per_clip.values())
        if self.n_samples == 0:
            raise DatasetError(f"none of the {len(self.clip_ids)} clips has a frame with a full "
                               f"{spec.horizon_s:g} s horizon and {frames} frames of history")


def plan_epoch(labels: ClipLabels, seed: int, epoch: int, rank: int, world: int,
               batch_size: int, block_clips: int) -> list[tuple[list[str], list[np.ndarray]]]:
    """Rank `rank`'s blocks for `epoch`: [(clip ids, [batch: int64 [B, 2] of (clip pos, frame)])]."""
    ids = labels.clip_ids
    order = np.random.default_rng([seed, epoch]).permutation(len(ids))
    blocks = [order[i:i + block_clips] for i in range(0, len(order), block_clips)]
    per_rank = []
    for r in range(world):
        plan = []
        for bi in range(r, len(blocks), world):
            clips = [ids[j] for j in blocks[bi]]
            pairs = np.concatenate([
                np.stack([np.full(len(labels.per_clip[c]["sample_frames"]), k),
                          labels.per_clip[c]["sample_frames"]], -1)
                for k, c in enumerate(clips)]).astype(np.int64)
            perm = np.random.default_rng([seed, epoch, bi]).permutation(len(pairs))
            n = len(pairs) // batch_size
            plan.append((clips, [pairs[perm[i * batch_size:(i + 1) * batch_size]] for i in range(n)]))
        per_rank.append(plan)
    steps = min(sum(len(b) for _, b in plan) for plan in per_rank)
    out, left = [], steps
    for clips, batches in per_rank[rank]:
        if left <= 0:
            break
        out.append((clips, batches[:left]))
        left -= len(batches[:left])
    return out


def epoch_steps(labels: ClipLabels, cfg: LoaderConfig, world: int) -> int:
    return sum(len(b) for _, b in plan_epoch(labels, cfg.seed, 0, 0, world, cfg.batch_size,
                                             cfg.block_clips))


class ClipDecoder(Dataset):
    """Map-style dataset: clip id -> uint8 tensor [N, S, S, 3] (all frames, resized)."""

    def __init__(self, store, rows: dict[str, dict], image_size: int, cache: bool = True):
        self.store, self.rows, self.size, self.cache = store, rows, image_size, cache

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, clip_id: str) -> torch.Tensor:
        row = self.rows[clip_id]
        if self.cache:   # decoded once per size, then a memory map
            return torch.from_numpy(np.array(cached_frames(self.store, clip_id, row["n_frames"],
                                                           self.size)))
        # Scaling to the network's size happens in the decoder's own YUV->RGB pass (swscale).
        return torch.from_numpy(decode_rgb(self.store.video_source(clip_id), n_frames=row["n_frames"],
                                           threads=1, size=self.size))


def _worker_init(_):
    torch.set_num_threads(1)


class _ClipOrder:
    """The sampler: the clip ids of the plan, in order, from a position on (endless)."""

    def __init__(self, loader: "TrainLoader", epoch: int, batch: int):
        self.loader, self.epoch, self.batch = loader, epoch, batch

    def __iter__(self):
        for _, _, clips, _ in self.loader._blocks_from(self.epoch, self.batch):
            yield from clips


class TrainLoader:
    """Endless batches for one rank; `state_dict()` is the position of the next batch."""

    def __init__(self, store, clip_ids: list[str], spec: LabelSpec, cfg: LoaderConfig,
                 rank: int = 0, world: int = 1):
        self.labels = ClipLabels(store, clip_ids, spec, cfg.frames, cfg.frame_stride, cfg.command,
                                 poses=cfg.collision, start_frames=cfg.start_frames,
                                 reaction_oversample=cfg.reaction_oversample)
        # every rank needs at least one block: small datasets get smaller blocks
        cfg = replace(cfg, block_clips=max(1, min(cfg.block_clips, len(self.labels.clip_ids) // world)))
        self.store, self.cfg, self.rank, self.world = store, cfg, rank, world
        self.rows = {c: r for c, r in catalog_rows(store).items() if c in self.labels.per_clip}
        if cfg.collision:
            self._collision_geometry(spec)
        self.synthesis = None         # the camera things are pasted at (opendojo.train.synthesis)
        if cfg.synthetic_share:
            from opendojo.train.synthesis import clips_geometry

            self.synthesis = clips_geometry(self.rows.values(), cfg.image_size, cfg.frame_stride,
                                            spec.times)
        self.steps_per_epoch = epoch_steps(self.labels, cfg, world)
        if self.steps_per_epoch == 0:
            raise DatasetError(
                f"{self.labels.n_samples} samples in {len(clip_ids)} clips make no batch of "
                f"{cfg.batch_size} per rank x {world} rank(s) (blocks of {cfg.block_clips} clips)")
        self.epoch, self.batch = 0, 0
        self._plans: dict[int, list] = {}

    def _collision_geometry(self, spec: LabelSpec) -> None:
        """The collision cost compares fields of one scale over one number of later frames."""
        from opendojo.train.occupancy import camera_geometry, is_birds_eye

        sim = [r for r in self.rows.values() if is_birds_eye(r)]
        widths = {r["width"] for r in sim} or {self.cfg.image_size}
        rates = {round(float(r["fps"]), 3) for r in self.rows.values()}
        if len(widths) > 1 or len(rates) > 1:
            raise DatasetError(f"the collision cost needs one camera width and frame rate; these "
                               f"clips have widths {sorted(widths)} and rates {sorted(rates)}")
        self.px_per_m, self.ego_row = camera_geometry(widths.pop(), self.cfg.image_size)
        self.future_steps = int(round(spec.horizon_s * rates.pop()))

    # -- position ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"seed": self.cfg.seed, "epoch": self.epoch, "batch": self.batch,
                "world_size": self.world, "batch_size": self.cfg.batch_size,
                "block_clips": self.cfg.block_clips}

    def load_state_dict(self, state: dict) -> None:
        for k in ("seed", "world_size", "batch_size", "block_clips"):
            mine = self.state_dict()[k]
            if state[k] != mine:
                raise DatasetError(f"the saved loader position was made with {k}={state[k]}, "
                                   f"this run has {k}={mine}: it cannot continue the same order")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])

    @property
    def samples_per_epoch(self) -> int:
        return self.steps_per_epoch * self.cfg.batch_size * self.world

    # -- order ---------------------------------------------------------------------------
    def _plan(self, epoch: int):
        if epoch not in self._plans:
            if len(self._plans) >= 2:
                del self._plans[min(self._plans)]
            self._plans[epoch] = plan_epoch(self.labels, self.cfg.seed, epoch, self.rank,
                                            self.world, self.cfg.batch_size, self.cfg.block_clips)
        return self._plans[epoch]

    def _blocks_from(self, epoch: int, batch: int):
        """(epoch, index of the block's first batch, clip ids, batches) from a position on."""
        while True:
            first = 0
            for clips, batches in self._plan(epoch):
                if first + len(batches) > batch:
                    yield epoch, first, clips, batches
                first += len(batches)
            epoch, batch = epoch + 1, 0

    # -- batches -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if self.cfg.frame_cache and all(is_cached(self.store, c, self.cfg.image_size)
                                        for c in self.labels.clip_ids):
            # Everything decoded already: memory-map in this process, no workers to feed.
            videos = (cached_frames(self.store, c, self.rows[c]["n_frames"], self.cfg.image_size)
                      for _, _, clips, _ in self._blocks_from(self.epoch, self.batch) for c in clips)
            yield from self._batches(videos)
            return
        cfg = self.cfg
        dl = DataLoader(ClipDecoder(self.store, self.rows, cfg.image_size, cfg.frame_cache),
                        sampler=_ClipOrder(self, self.epoch, self.batch), batch_size=None,
                        num_workers=cfg.workers, worker_init_fn=_worker_init if cfg.workers else None,
                        prefetch_factor=cfg.prefetch if cfg.workers else None)
        with warnings.catch_warnings():
            # Lance warns on fork; workers only decode video and never touch Lance.
            warnings.filterwarnings("ignore", message="lance is not fork-safe")
            decoded = iter(dl)
        yield from self._batches(t.numpy() for t in decoded)

    def _batches(self, decoded: Iterator[np.ndarray]) -> Iterator[dict[str, torch.Tensor]]:
        """Batches from the position on, given the clips' frames in plan order."""
        start_epoch, start_batch = self.epoch, self.batch
        for epoch, first, clips, batches in self._blocks_from(start_epoch, start_batch):
            videos = [next(decoded) for _ in clips]
            info = [self.labels.per_clip[c] for c in clips]
            # the block's cost fields, like its frames, are held only while it is cut into
            # batches (each is a memory map, and each map holds a file descriptor)
            fields = self._cost_fields(clips) if self.cfg.collision or self.cfg.object_channel else None
            skip = start_batch - first if (epoch, first) <= (start_epoch, start_batch) else 0
            for j in range(max(skip, 0), len(batches)):
                nxt = first + j + 1
                self.epoch, self.batch = (epoch, nxt) if nxt < self.steps_per_epoch else (epoch + 1, 0)
                yield self._assemble(videos, info, batches[j], fields, (epoch, first + j), clips)

    def _cost_fields(self, clips: list[str]) -> list[np.ndarray]:
        from opendojo.train.occupancy import clip_cost_field

        return [clip_cost_field(self.store, self.rows[c], self.cfg.image_size) for c in clips]

    def _assemble(self, videos, info, pairs: np.ndarray, fields=None,
                  position: tuple[int, int] = (0, 0), clips: list[str] = ()) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        pick = lambda key: np.stack([info[k][key][f] for k, f in pairs])  # noqa: E731
        history = list(zip(pairs[:, 0], history_indices(pairs[:, 1], cfg.frames, cfg.frame_stride)))
        frames = np.stack([videos[k][idx] for k, idx in history])
        if cfg.object_channel:   # the clips' cost fields as a 4th channel (train.inputs)
            frames = with_object_channel(frames, np.stack([fields[k][idx] for k, idx in history]))
        arrays = {
            "frames": frames,
            "speed": pick("speed"), "command": pick("command"),
            "trajectory": pick("trajectory"), "controls": pick("controls"),
        }
        swerved = None
        if self.synthesis is not None:
            swerved = self._paste_things(arrays, pairs, position, clips)["lane_change"]
        flip = self._mirror(arrays, position, keep=swerved) if cfg.mirror_share else None
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        if cfg.collision:
            batch.update(self._collision_inputs(info, fields, pairs))
            if flip is not None:
                from opendojo.train.mirror import mirror_collision

                mirror_collision(batch, flip)
        return batch

    def _paste_things(self, arrays: dict, pairs: np.ndarray, position: tuple[int, int],
                      clips) -> dict[str, np.ndarray]:
        """Synthesised road users (opendojo.train.synthesis) in a share of the batch's
        samples from bird's-eye clips, drawn with a generator seeded by the batch's place in
        the order: the same batch always gets the same things, resumed or not. Returns
        `synthesize`'s flags (which samples got what)."""
        from opendojo.train.occupancy import is_birds_eye
        from opendojo.train.synthesis import synthesize

        sim = np.array([is_birds_eye(self.rows[c]) for c in clips])
        rng = np.random.default_rng([self.cfg.seed, *position, self.rank, 0x5917])
        return synthesize(arrays, sim[pairs[:, 0]], self.cfg.synthetic_share, rng, self.synthesis,
                          lane_changes=self.cfg.synthetic_lane_changes,
                          near_share=self.cfg.synthetic_near_share,
                          path_jitter_m=self.cfg.synthetic_path_jitter_m)

    def _mirror(self, arrays: dict, position: tuple[int, int],
                keep: np.ndarray | None = None) -> np.ndarray:
        """Flip a share of the batch's samples left-right (opendojo.train.mirror), chosen by
        a generator seeded by the batch's place in the order, but never those `keep` (bool
        [B]) marks; returns which were flipped (bool [B]).

        `keep` is for the synthesised lane changes round a stopped thing: they go left
        where both lanes beside are free (`synthesis._drive_round`), and the mirror image of
        such a scene is one more scene with both lanes free, labelled right. Mirrored, the
        rule became a coin toss that a regressed path averages into straight on, into
        the thing."""
        from opendojo.train.mirror import mirror

        rng = np.random.default_rng([self.cfg.seed, *position, self.rank, 0x3177])
        which = rng.random(len(arrays["speed"])) < self.cfg.mirror_share
        if keep is not None:
            which &= ~keep
        mirror(arrays, which)
        return which

    def _collision_inputs(self, info, fields, pairs: np.ndarray) -> dict[str, torch.Tensor]:
        from opendojo.train.occupancy import ego_motion

        n, b = self.future_steps, len(pairs)
        driven = np.zeros((b, n, 2), np.float32)
        turn = np.zeros((b, n), np.float32)
        field = np.zeros((b, n, *fields[pairs[0, 0]].shape[1:]), np.uint8)
        for k in np.unique(pairs[:, 0]):
            mine = pairs[:, 0] == k
            frames = pairs[mine, 1]
            driven[mine], turn[mine] = ego_motion(*info[k]["pose"], frames, n)
            later = np.minimum(frames[:, None] + np.arange(1, n + 1), len(fields[k]) - 1)
            field[mine] = fields[k][later]
        return {"driven": torch.from_numpy(driven), "turn": torch.from_numpy(turn),
                "field": torch.from_numpy(field),
                "px_per_m": torch.tensor(self.px_per_m), "ego_row": torch.tensor(self.ego_row)}
