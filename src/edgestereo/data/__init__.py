"""Stereo data: file formats (:mod:`edgestereo.data.io`), samples, data sets."""
