"""detect_anomaly: the first op making NaN/Inf, in forward or backward, is named with its site."""

import numpy as np
import pytest

import tinygrad_nn as tg
from tinygrad_nn.anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled


def test_forward_nan_names_op_shapes_and_site():
    x = tg.Tensor([1.0, -1.0], requires_grad=True)
    with detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(AnomalyError) as info:
            x.log()  # the line reported
    msg = str(info.value)
    assert "Log produced NaN in forward" in msg
    assert "input shapes (2,)" in msg
    assert f"test_anomaly.py:{info.tb.tb_lineno}" in msg or "test_anomaly.py:" in msg


def test_backward_inf_names_the_forward_op_and_its_site():
    x = tg.Tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt()  # finite forward, infinite gradient at 0
        line = y._ctx.site
        with pytest.raises(AnomalyError) as info:
            (y * 2).sum().backward()
    msg = str(info.value)
    assert "backward of Sqrt produced Inf" in msg
    assert "the forward op whose backward produced it: Sqrt" in msg
    assert line in msg and "test_anomaly.py" in line


def test_off_by_default_and_restored():
    assert not is_anomaly_enabled()
    with detect_anomaly():
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
    x = tg.Tensor([-1.0], requires_grad=True)
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().item())  # no error when off


def test_nan_input_is_reported_as_already_present():
    x = tg.Tensor([np.nan, 1.0], requires_grad=True)
    with detect_anomaly(), pytest.raises(AnomalyError, match="input 0 already contained NaN"):
        x * 2
