"""The `[train]` stage config (TOML table `[train]`, model size under `[train.model]`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from opendojo.config import StageConfig

PRECISIONS = ("float32", "bf16", "cfloat8", "cfloat16")


# Which route command a training sample carries (opendojo.train.loader.ClipLabels).
CommandSource = Literal["route", "hindsight"]


class ModelSettings(StageConfig):
    """`opendojo.train.model.PolicyConfig` as config: the network's size."""

    frames: int = 4
    frame_stride: int = 1             # camera frames between history frames (PolicyConfig)
    image_size: int = 64
    width: int = 16
    stages: int = 4
    hidden: int = 128
    horizon: int = 6
    horizon_s: float = 3.0
    pooling: Literal["spatial", "mean"] = "spatial"
    spatial_channels: int = 8
    modes: int = 1                    # trajectory hypotheses (PolicyConfig.modes)
    path_points: int = 0              # path head points, 0 = none (PolicyConfig.path_points)
    path_spacing: float = 4.0         # metres between them


class TrainConfig(StageConfig):
    store: str = ""
    dataset: str = ""
    split: str = "train"
    steps: int = 300
    batch_size: int = 32              # global, over all ranks
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    precision: Literal["float32", "bf16", "cfloat8", "cfloat16"] = "float32"
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 10
    workers: int = 1                  # loader worker processes per rank
    frame_cache: bool = True          # keep decoded frames on local disk (clips/frame_cache.py)
    block_clips: int = 16
    trajectory_weight: float = 1.0
    deviation_weight: float = 0.5     # extra weight per metre a sample's future departs from
                                      # constant velocity (trainer.sample_weights)
    controls_weight: float = 1.0
    collision_weight: float = 0.0     # hindsight collision cost of the predicted path
                                      # (opendojo.train.occupancy); 0 = off
    accel_scale: float = 1.0          # m/s^2 of acceleration error worth one unit of loss
    steering_scale: float = 0.05      # rad of steering error worth one unit of loss
    init_from: str = ""               # checkpoint to start from (same model config)
    command: CommandSource = "route"  # route command per sample: as given to the driver,
                                      # or derived from the future (loader.ClipLabels)
    start_frames: bool = False        # sample a clip's first frames too, their missing history
                                      # filled with the first frame, as closed loop does
                                      # (loader.ClipLabels)
    reaction_oversample: int = Field(0, ge=0)  # extra draws per epoch of the frames whose
                                      # label reaches a hard-braking, sharp-steering or sudden
                                      # lane-change trigger (loader.reaction_frames); 0 = off
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
