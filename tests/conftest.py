"""Shared fixtures."""

from __future__ import annotations

import pytest

from stereo_fixtures import shifted_pair


@pytest.fixture
def pair():
    """(left, right): (48,96,3) uint8 views of a plane at 6 px disparity."""
    return shifted_pair()
