"""Run directories of the commands that write one, and the settings the whole-chain
commands (`dojo demo`, `dojo loop`) share.

Each command writes known files at the top of its run directory. Another command reads
them to refuse a directory that is not its own: `dojo loop` refuses a train or demo run
directory (`opendojo.loop`), and `dojo report` refuses anything but a demo or loop run
(`opendojo.report.build`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from opendojo.config import StageConfig
from opendojo.train.config import MIN_IMAGE_SIZE, ModelSettings

# What each command writes at the top of its run directory (names or glob patterns). A loop
# writes its evaluations under round-N/, and its run.json only after its loop.json.
TRAIN_RUN_FILES = ("config.json", "metrics.jsonl", "checkpoints", "step-*.safetensors")
DEMO_RUN_FILES = ("run.json", "fleet_stats.json", "open_loop.json", "closed_loop.json")
LOOP_RUN_FILES = ("loop.json",)


def found(run: Path, marks: tuple[str, ...]) -> list[str]:
    """Which of `marks` (names or glob patterns) are at the top of `run`."""
    return [m for m in marks if any(run.glob(m))]


# The network the closed loop drives is an exponential moving average of the trained
# weights (opendojo.train.ema): over five seeds at the demo's scale +0.009 (95% CI -0.003
# to +0.022) with 58 collisions against 61, at no measurable cost in training speed
# (docs/driving.md, "Averaged weights").
EMA_DECAY = 0.999


class ChainSettings(StageConfig):
    """What `DemoConfig` and `LoopConfig` share: where the run and its store are, its seed
    and processes, the network's input, width, object channel and path head, and the
    closed-loop suite's size; whether its training mirrors samples, and how it averages
    its weights."""

    run_dir: str
    store: str = Field("", description="clip store (default: RUN_DIR/store)")
    seed: int = 0
    workers: int = Field(2, ge=1)
    image_size: int = Field(64, ge=MIN_IMAGE_SIZE)
    width: int = Field(16, ge=1)
    episodes_per_item: int = Field(2, ge=1, description="closed-loop episodes per scenario/event")
    episode_s: float = Field(15.0, gt=0)
    object_channel: bool = Field(True, description="give the network the other road users as a "
                                 "4th input channel, trained with pasted road users "
                                 "(OBJECT_CHANNEL_TRAINING; docs/driving.md)")
    path_head: bool = Field(True, description="a head for the path ahead at fixed distances, "
                            "which the closed loop steers on (PATH_POINTS; docs/driving.md)")
    mirror: bool = Field(True, description="train on MIRROR_SHARE of the samples flipped "
                         "left-right (opendojo.train.mirror; docs/driving.md)")
    ema_decay: float = Field(EMA_DECAY, ge=0, lt=1, description="drive with an exponential "
                             "moving average of the trained weights, this decay per step "
                             "(opendojo.train.ema; docs/driving.md); 0: the weights as trained")

    def network(self) -> dict:
        """The TrainConfig fields of this chain's network (`network_fields`)."""
        return network_fields(self.image_size, self.width, self.object_channel, self.path_head,
                              self.mirror, self.ema_decay)

    @property
    def store_url(self) -> str:
        return self.store or str(Path(self.run_dir) / "store")


# How the object channel is trained (docs/driving.md, "The object channel in the demo"):
# half the samples at speed get a road user pasted into their frames and labels, and no
# extra weight on the driver's departure from constant velocity. Half the pasted road users
# sit within 20 m ahead (docs/driving.md, "Things pasted near"): five seeds +0.027 (95% CI
# +0.008 to +0.045), the network keeping its pace behind far cars, with 1.79 collisions/km
# against 1.38. Those in the path sit up to 1 m to its side (docs/driving.md, "Things off
# the centre line"): five seeds at the same score (+0.001) with 1.10 collisions/km against
# 1.79, the network braking for real obstacles it ignored when all were centred.
OBJECT_CHANNEL_TRAINING = {"synthetic_share": 0.5, "synthetic_near_share": 0.5,
                           "synthetic_path_jitter_m": 1.0, "deviation_weight": 0.0}

# The path head's points (every ModelSettings.path_spacing = 4 m, so 32 m of road ahead).
# Pure pursuit steers on its point `speed x 1 s` ahead instead of on the trajectory's 1 s
# waypoint, whose sideways offset does not scale with the speed: the network began its
# intersection turns early and left the road (docs/driving.md, "The path head at the
# junctions").
PATH_POINTS = 8

# Half the samples flipped left-right with their labels and route commands: the networks
# collided 37-46% less often per km at the same score (docs/driving.md, "Mirrored samples").
MIRROR_SHARE = 0.5


def network_fields(image_size: int, width: int, object_channel: bool, path_head: bool,
                   mirror: bool, ema_decay: float) -> dict:
    """TrainConfig fields for the network `dojo demo`, `dojo loop` and the benchmarks train:
    its input size and width, with `object_channel` the channel trained as
    OBJECT_CHANNEL_TRAINING says, with `path_head` a path head of PATH_POINTS points, with
    `mirror` MIRROR_SHARE of the samples mirrored, and its weights averaged at `ema_decay`."""
    model = ModelSettings(image_size=image_size, width=width, object_channel=object_channel,
                          path_points=PATH_POINTS if path_head else 0)
    return {"model": model, **(OBJECT_CHANNEL_TRAINING if object_channel else {}),
            **({"mirror_share": MIRROR_SHARE} if mirror else {}), "ema_decay": ema_decay}
