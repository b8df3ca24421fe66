"""The batched rotation helpers against SciPy's rotations (random, unnormalised quaternions)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from envs.geometry import quat_to_euler, quat_to_mat


def _scipy(q: np.ndarray) -> Rotation:
    return Rotation.from_quat(q[..., [1, 2, 3, 0]].reshape(-1, 4))  # wxyz -> SciPy's xyzw


@pytest.mark.parametrize("shape", [(1,), (16,), (16, 2)])
def test_quat_to_mat_matches_scipy_for_any_batch_shape(shape: tuple[int, ...]) -> None:
    q = np.random.default_rng(0).normal(size=(*shape, 4)) * 3.0  # not unit: the helpers normalise
    got = quat_to_mat(torch.as_tensor(q, dtype=torch.float32))
    assert got.shape == (*shape, 3, 3)
    np.testing.assert_allclose(got.reshape(-1, 3, 3).numpy(), _scipy(q).as_matrix(), atol=2e-6)


def test_quat_to_euler_matches_scipy_extrinsic_xyz() -> None:
    q = np.random.default_rng(1).normal(size=(64, 4))
    got = quat_to_euler(torch.as_tensor(q, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, _scipy(q).as_euler("xyz"), atol=1e-9)
    got32 = quat_to_euler(torch.as_tensor(q, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got32, got, atol=1e-5)
