"""RAFT-Stereo family: ``raft-stereo``, ``raft-stereo-realtime``, ``raft-stereo-rvc``."""

from edgestereo.models.raft_stereo.model import VARIANTS, RAFTStereo, RAFTStereoConfig

__all__ = ["VARIANTS", "RAFTStereo", "RAFTStereoConfig"]
