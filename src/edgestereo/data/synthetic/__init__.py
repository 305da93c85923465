"""Procedural stereo pairs with exact ground truth: the built-in training set.

Scenes are a background of planes (wall, corner, floor) and many objects in front of it (polygons,
ellipses, rings, organic blobs, rods, wires, fences, wheels) whose surfaces are planes, domes or bowls
at random depths and slants, textured with photographs bundled with scikit-image and procedural
textures, shaded, some mirroring or with specular highlights, with cast shadows. Both views are
rendered with a depth test, so nearer objects hide farther ones correctly in each; the cameras differ
in exposure, gamma, white balance, vignetting, blur and noise.

>>> from edgestereo.data.synthetic import SyntheticConfig, render_pair
>>> pair = render_pair(SyntheticConfig(height=64, width=128, max_disp=24), seed=0, index=0)
>>> pair.left.shape, pair.disp.dtype, bool(pair.disp.max() < 24)
((64, 128, 3), dtype('float32'), True)
"""

from edgestereo.data.synthetic.render import SyntheticPair, render_pair
from edgestereo.data.synthetic.scene import SyntheticConfig

__all__ = ["SyntheticConfig", "SyntheticPair", "SyntheticStereo", "render_pair", "write_synthetic"]


def __getattr__(name: str):
    # the data set pulls in torch; the renderer alone does not need it
    if name in ("SyntheticStereo", "write_synthetic"):
        from edgestereo.data.synthetic import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'edgestereo.data.synthetic' has no attribute {name!r}")
