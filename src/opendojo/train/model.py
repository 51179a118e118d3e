"""The end-to-end driving policy: a short frame history, speed and route command in;
a future trajectory and the driver's controls out.

A plain `nn.Module` (as in torchtitan): precision, data parallelism and compilation are
applied from outside. The default size trains at a useful speed on a 2-core CPU.

Inputs
  frames  uint8 [B, T, H, W, C] (as the clip reader returns them) or float [B, T, C, H, W] in 0..1;
          C = 3 (RGB), or 4 with `object_channel` (RGB and where other road users are,
          `opendojo.train.inputs`)
  speed   float [B]   m/s
  command long  [B]   0 left, 1 straight, 2 right (`opendojo.clips.schema.ROUTE_COMMANDS`)
Outputs (dict)
  trajectory float [B, horizon, 2]  future (x forward, y left) positions in the ego frame, metres,
                                    at horizon_s*k/horizon seconds (k = 1..horizon); with
                                    modes > 1, the mode the classifier rates most likely
  modes      float [B, modes, horizon, 2], mode_logits float [B, modes]  (only with modes > 1)
  controls   float [B, 2]           (acceleration m/s^2, steering rad)
  path       float [B, path_points, 2]  (only with path_points > 0) the path ahead at
                                    path_spacing*k metres along it (`opendojo.train.path`);
                                    with modes > 1, the chosen mode's path
  path_modes float [B, modes, path_points, 2]  (only with path_points > 0 and modes > 1)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

N_COMMANDS = 3


@dataclass(frozen=True)
class PolicyConfig:
    frames: int = 4           # frame history fed to the network
    frame_stride: int = 1     # camera frames between two history frames (1: consecutive)
    image_size: int = 96      # square frames, pixels
    width: int = 32           # channels of the first conv stage; later stages double it
    stages: int = 4           # conv stages, each halves the resolution
    hidden: int = 256         # width of the fused MLP
    horizon: int = 6          # trajectory waypoints predicted
    speed_scale: float = 30.0  # speed is divided by this before entering the network
    horizon_s: float = 3.0    # seconds spanned by the waypoints (evenly spaced, the last at horizon_s)
    pooling: str = "spatial"  # "spatial": keep where things are (a 1x1 conv to spatial_channels,
                              # then flatten); "mean": global average pooling
    spatial_channels: int = 8
    modes: int = 1            # trajectory hypotheses: >1 adds a classifier that picks one
                              # (see PolicyNet.forward)
    path_points: int = 0      # >0 adds a head for the path ahead at fixed distances (steering)
    path_spacing: float = 4.0  # metres between the path head's points
    spatial_relu: bool = False  # a ReLU after the 1x1 conv: only checkpoints written before
                                # 2026-11-22 have it (see PolicyNet)
    object_channel: bool = False  # a 4th channel per frame: the other road users' cost field,
                                  # read from the full-resolution frame (train.inputs)

    @property
    def channels(self) -> int:
        """Channels per input frame."""
        return 4 if self.object_channel else 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        """From a checkpoint's `model` entry; checkpoints written before `pooling` existed
        used global average pooling, and those written before `spatial_relu` existed had
        the ReLU."""
        return cls(**{"pooling": "mean", "spatial_relu": True, **d})


def _norm(c: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: training batches come from a few clips at a time (the loader
    # shuffles within blocks of clips), so batch statistics drift and BatchNorm's running
    # estimates made eval-mode predictions far worse than train-mode ones. GroupNorm behaves
    # the same in training, evaluation, export and under DDP.
    return nn.GroupNorm(min(8, c), c)


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
        _norm(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        _norm(cout),
        nn.ReLU(inplace=True),
    )


class PolicyNet(nn.Module):
    """Early-fusion video CNN: the T frames are stacked on the channel axis."""

    def __init__(self, config: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.config = config
        c = config
        chans = [c.channels * c.frames] + [c.width * 2**i for i in range(c.stages)]
        if c.pooling == "spatial":
            # The camera is fixed to the ego car, so *where* a vehicle is in the feature map
            # (in my lane, 20 m ahead) is what matters; global average pooling throws it away.
            side = c.image_size
            for _ in range(c.stages):
                side = (side + 1) // 2
            # No ReLU after the 1x1 conv: with one, every one of its few channels died in
            # training (negative pre-activation on every input), the features were all zero
            # and the network drove blind, at constant velocity into whatever was ahead.
            # The encoder's last block already ends in a ReLU; this is a linear projection.
            head = [nn.Conv2d(chans[-1], c.spatial_channels, 1)]
            head += [nn.ReLU(inplace=True)] if c.spatial_relu else []
            head += [nn.Flatten()]
            self.feature_dim = c.spatial_channels * side * side
        elif c.pooling == "mean":
            head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            self.feature_dim = chans[-1]
        else:
            raise ValueError(f"pooling must be 'spatial' or 'mean', not {c.pooling!r}")
        self.encoder = nn.Sequential(
            *[_conv_block(chans[i], chans[i + 1]) for i in range(c.stages)], *head)
        self.command_embedding = nn.Embedding(N_COMMANDS, 16)
        self.fuse = nn.Sequential(
            nn.Linear(self.feature_dim + 16 + 1, c.hidden),
            nn.ReLU(inplace=True),
            nn.Linear(c.hidden, c.hidden),
            nn.ReLU(inplace=True),
        )
        if c.modes < 1:
            raise ValueError(f"modes must be at least 1, not {c.modes}")
        self.trajectory_head = nn.Linear(c.hidden, c.modes * c.horizon * 2)
        self.mode_head = nn.Linear(c.hidden, c.modes) if c.modes > 1 else None
        self.controls_head = nn.Linear(c.hidden, 2)
        self.path_head = None
        if c.path_points > 0:
            from opendojo.train.path import path_distances

            self.path_head = nn.Linear(c.hidden, c.modes * c.path_points * 2)
            ahead = torch.as_tensor(path_distances(c.path_points, c.path_spacing), dtype=torch.float32)
            # driving straight on, which the head corrects (not saved: it follows from the config)
            self.register_buffer("path_straight", torch.stack([ahead, torch.zeros_like(ahead)], dim=-1),
                                 persistent=False)

    @staticmethod
    def prepare_frames(frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B,T,H,W,C] -> float [B, T*C, H, W] in 0..1; float [B,T,C,H,W] is only reshaped."""
        if frames.dtype == torch.uint8:
            frames = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)
        b, t, ch, h, w = frames.shape
        return frames.reshape(b, t * ch, h, w)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """The clip encoder's feature vector [B, feature_dim] (also used for clip embeddings)."""
        return self.encoder(self.prepare_frames(frames))

    def forward(self, frames: torch.Tensor, speed: torch.Tensor,
                command: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.encode(frames)
        s = (speed.float() / self.config.speed_scale).unsqueeze(-1)
        h = self.fuse(torch.cat([feat, self.command_embedding(command.long()), s], dim=-1))
        # The head predicts a correction to driving on at constant speed, straight ahead.
        c = self.config
        traj = self.trajectory_head(h).view(-1, c.modes, c.horizon, 2)
        times = torch.arange(1, c.horizon + 1, device=traj.device,
                             dtype=traj.dtype) * (c.horizon_s / c.horizon)
        ahead = speed.to(traj.dtype).unsqueeze(-1) * times
        traj = traj + torch.stack([ahead, torch.zeros_like(ahead)], dim=-1).unsqueeze(1)
        out = {"controls": self.controls_head(h)}
        path = None
        if self.path_head is not None:
            path = self.path_head(h).view(-1, c.modes, c.path_points, 2) + self.path_straight
        if self.mode_head is None:
            out["trajectory"] = traj[:, 0]
            if path is not None:
                out["path"] = path[:, 0]
            return out
        # Several hypotheses: where drivers go both left and right round a stalled car, one
        # regressed trajectory lands somewhere between them; each mode can keep one, and
        # the classifier says which this scene calls for (trainer.policy_loss: winner takes all).
        # A path head has as many modes, paired with the trajectory's: the controller steers
        # on the chosen mode's path, not on the mean of a left and a right one.
        logits = self.mode_head(h)
        best = logits.argmax(dim=-1)
        rows = torch.arange(traj.shape[0], device=traj.device)
        out["trajectory"] = traj[rows, best]
        out["modes"], out["mode_logits"] = traj, logits
        if path is not None:
            out["path"], out["path_modes"] = path[rows, best], path
        return out


def example_inputs(config: PolicyConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """A batch of the right shapes and dtypes (for FLOP counting, export, tests)."""
    frames = torch.zeros(batch, config.frames, config.image_size, config.image_size, config.channels,
                         dtype=torch.uint8)
    return frames, torch.zeros(batch), torch.ones(batch, dtype=torch.long)
