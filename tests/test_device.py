"""Device choice: every branch, with the hardware probes mocked."""

import pytest
import torch

from course import device as dev


@pytest.fixture
def hw(monkeypatch):
    """Pretend to have the given hardware."""

    def set_hw(cuda: bool = False, mps: bool = False) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
        monkeypatch.setattr(dev, "_mps_available", lambda: mps)
        monkeypatch.delenv(dev.ENV_VAR, raising=False)

    return set_hw


def test_cuda_first(hw):
    hw(cuda=True, mps=True)
    choice = dev.choose_device()
    assert choice.device.type == "cuda" and "Fake GPU" in choice.reason


def test_mps_when_no_cuda(hw):
    hw(cuda=False, mps=True)
    assert dev.choose_device().device.type == "mps"


def test_cpu_when_nothing_else(hw):
    hw()
    choice = dev.choose_device()
    assert choice.device == torch.device("cpu") and "CPU" in choice.reason


def test_argument_overrides(hw):
    hw(cuda=True)
    assert dev.choose_device("cpu").device.type == "cpu"
    assert dev.choose_device("cuda:0").device == torch.device("cuda:0")


def test_environment_variable_overrides(hw, monkeypatch):
    hw(cuda=True)
    monkeypatch.setenv(dev.ENV_VAR, "cpu")
    choice = dev.choose_device()
    assert choice.device.type == "cpu" and dev.ENV_VAR in choice.reason


def test_argument_beats_environment(hw, monkeypatch):
    hw(mps=True)
    monkeypatch.setenv(dev.ENV_VAR, "cpu")
    assert dev.choose_device("mps").device.type == "mps"


def test_unavailable_request_says_what_to_do(hw, monkeypatch):
    hw()
    monkeypatch.setenv(dev.ENV_VAR, "cuda")
    with pytest.raises(RuntimeError, match=f"unset {dev.ENV_VAR}"):
        dev.choose_device()
    with pytest.raises(RuntimeError, match="no MPS"):
        dev.choose_device("mps")


def test_unknown_device_is_rejected(hw):
    hw()
    with pytest.raises(ValueError, match="one of cuda"):
        dev.choose_device("tpu")


def test_get_device_prints_reason(hw, capsys):
    hw()
    assert dev.get_device() == torch.device("cpu")
    assert "using cpu" in capsys.readouterr().out
    dev.get_device(verbose=False)
    assert capsys.readouterr().out == ""
