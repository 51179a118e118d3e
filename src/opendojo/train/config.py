"""The `[train]` stage config (TOML table `[train]`, model size under `[train.model]`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from opendojo.config import StageConfig

PRECISIONS = ("float32", "bf16", "cfloat8", "cfloat16")

# Smallest input frames accepted: every conv stage halves the side (rounding up), so any
# size runs, but below this there is nothing left to see; tests use 8.
MIN_IMAGE_SIZE = 8


# Which route command a training sample carries (opendojo.train.loader.ClipLabels).
CommandSource = Literal["route", "hindsight"]


class ModelSettings(StageConfig):
    """`opendojo.train.model.PolicyConfig` as config: the network's size."""

    frames: int = Field(4, ge=1)
    frame_stride: int = Field(1, ge=1)  # camera frames between history frames (PolicyConfig)
    image_size: int = Field(64, ge=MIN_IMAGE_SIZE)
    width: int = Field(16, ge=1)
    stages: int = Field(4, ge=1)
    hidden: int = Field(128, ge=1)
    horizon: int = Field(6, ge=1)
    horizon_s: float = Field(3.0, gt=0)
    pooling: Literal["spatial", "mean"] = "spatial"
    spatial_channels: int = Field(8, ge=1)
    modes: int = Field(1, ge=1)       # trajectory hypotheses (PolicyConfig.modes)
    path_points: int = Field(0, ge=0)  # path head points, 0 = none (PolicyConfig.path_points)
    path_spacing: float = Field(4.0, gt=0)  # metres between them
    object_channel: bool = False      # where other road users are, as a 4th channel per frame
                                      # (PolicyConfig.object_channel, train.inputs)


class TrainConfig(StageConfig):
    store: str = ""
    dataset: str = ""
    split: str = "train"
    steps: int = Field(300, ge=1)
    batch_size: int = Field(32, ge=1)  # global, over all ranks
    lr: float = Field(1e-3, gt=0)     # peak learning rate, after warmup
    min_lr: float = Field(1e-4, ge=0, validate_default=True)  # where the cosine decay ends;
                                      # at most lr (checked by _lr_decays, default included)
    warmup_steps: int = Field(20, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    precision: Literal["float32", "bf16", "cfloat8", "cfloat16"] = "float32"
    seed: int = Field(0, ge=0)        # numpy seeds the loader's order with it: no negatives
    checkpoint_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    workers: int = Field(1, ge=0)     # loader worker processes per rank (0: decode in-process)
    frame_cache: bool = True          # keep decoded frames on local disk (clips/frame_cache.py)
    block_clips: int = Field(16, ge=1)
    trajectory_weight: float = Field(1.0, ge=0)
    deviation_weight: float = Field(0.5, ge=0)  # extra weight per metre a sample's future
                                      # departs from constant velocity (trainer.sample_weights)
    controls_weight: float = Field(1.0, ge=0)
    collision_weight: float = Field(0.0, ge=0)  # hindsight collision cost of the predicted
                                      # path (opendojo.train.occupancy); 0 = off
    accel_scale: float = Field(1.0, gt=0)  # m/s^2 of acceleration error worth one unit of loss
    steering_scale: float = Field(0.05, gt=0)  # rad of steering error worth one unit of loss
    init_from: str = ""               # checkpoint to start from (same model config)
    command: CommandSource = "route"  # route command per sample: as given to the driver,
                                      # or derived from the future (loader.ClipLabels)
    start_frames: bool = False        # sample a clip's first frames too, their missing history
                                      # filled with the first frame, as closed loop does
                                      # (loader.ClipLabels)
    reaction_oversample: int = Field(0, ge=0)  # extra draws per epoch of the frames whose
                                      # label reaches a hard-braking, sharp-steering or sudden
                                      # lane-change trigger (loader.reaction_frames); 0 = off
    synthetic_share: float = Field(0.0, ge=0, le=1)  # share of samples at speed that get a
                                      # pasted road user and a label that stops or follows
                                      # behind it where it is in the way and closing in
                                      # (train.synthesis); 0 = off
    synthetic_near_share: float = Field(0.0, ge=0, le=1)  # share of the pasted things placed
                                      # at most synthesis.NEAR_M (20 m) ahead instead of anywhere
                                      # up to the frame's reach; 0 = uniform up to the reach
    synthetic_path_jitter_m: float = Field(0.0, ge=0, le=1.5)  # pasted things in the path sit
                                      # up to this far to its side (uniform), still in the
                                      # way (synthesis.IN_PATH_M: 2 m); 0 = on its centre line
    synthetic_lane_changes: bool = False  # a pasted thing standing or slow in the path of a
                                      # car keeping its lane is driven round where the frames
                                      # show a free lane beside it (train.synthesis); needs
                                      # synthetic_share > 0 and model.object_channel
    mirror_share: float = Field(0.0, ge=0, le=1)  # share of the samples flipped left-right,
                                      # with their label, steering and route command
                                      # (train.mirror); 0 = off
    ema_decay: float = Field(0.0, ge=0, lt=1)  # checkpoints carry an exponential moving
                                      # average of the weights with this decay per step
                                      # (train.ema); 0 = off, the trained weights as they are
    model: ModelSettings = ModelSettings()

    @model_validator(mode="before")
    @classmethod
    def _frame_stride_moved_to_model(cls, data):
        """Configs (and resumable runs) written before 2026-11-22 set `frame_stride` under
        `[train]`; it describes the network's input, so it now lives in `[train.model]`."""
        if isinstance(data, dict) and "frame_stride" in data:
            data = dict(data)
            model = data.get("model") or {}
            model = dict(model.model_dump() if isinstance(model, ModelSettings) else model)
            model.setdefault("frame_stride", data.pop("frame_stride"))
            data["model"] = model
        return data

    @field_validator("min_lr")
    @classmethod
    def _lr_decays(cls, min_lr, info):
        """The schedule (trainer.lr_at) decays from lr to min_lr: with min_lr above lr it
        would rise instead. (A field validator, not a model one, so the one-line error
        names the field.)"""
        lr = info.data.get("lr")
        if lr is not None and min_lr > lr:
            raise PydanticCustomError(
                "min_lr_above_lr", "{min_lr} is above lr {lr}: the learning rate decays from "
                "lr to min_lr, so lower min_lr (--min-lr) or raise lr",
                {"min_lr": f"{min_lr:g}", "lr": f"{lr:g}"})
        return min_lr

    @model_validator(mode="after")
    def _lane_changes_need_things(self):
        """Lane changes round pasted things need things pasted and the object channel,
        which says whether the lane beside is free."""
        if self.synthetic_lane_changes and not (self.synthetic_share > 0 and self.model.object_channel):
            raise PydanticCustomError(
                "lane_changes_need_things", "synthetic_lane_changes needs synthetic_share > 0 "
                "and model.object_channel = true (the object channel says whether a lane is free)")
        for name in ("synthetic_near_share", "synthetic_path_jitter_m"):
            if getattr(self, name) and not self.synthetic_share:
                raise PydanticCustomError(
                    "placing_needs_things", "{name} places pasted things; it needs "
                    "synthetic_share > 0", {"name": name})
        if self.synthetic_lane_changes and self.command == "hindsight":
            raise PydanticCustomError(
                "lane_changes_hindsight", "synthetic_lane_changes needs command = \"route\": the "
                "hindsight command is read from the label before a lane change is put into it")
        return self

    def policy_config(self):
        from opendojo.train.model import PolicyConfig

        return PolicyConfig(**self.model.model_dump())


def to_toml(cfg: TrainConfig) -> str:
    """The config as a `[train]` TOML file (scalars and strings only)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    d = cfg.model_dump()
    model = d.pop("model")
    lines = ["[train]"] + [f"{k} = {val(v)}" for k, v in d.items()]
    lines += ["", "[train.model]"] + [f"{k} = {val(v)}" for k, v in model.items()]
    return "\n".join(lines) + "\n"
