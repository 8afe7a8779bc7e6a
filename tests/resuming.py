"""A fit interrupted at an epoch and resumed, and the check that it ended as the uninterrupted
fit did: shared by the tests of the features a resume must carry."""

import pytest
import torch

import growml


class Stop(Exception):
    """Raised by an observer to interrupt a fit, as a kill would between two epochs."""


def interrupted_then_resumed(config, out, epoch):
    """Fit ``config`` into ``out`` until ``epoch`` ends, interrupt it, and resume it."""

    def stop(event):
        if type(event).__name__ == "EpochEnd" and event.epoch == epoch:
            raise Stop

    with pytest.raises(Stop):
        growml.fit(config, out=out, observers=[stop])
    return growml.fit(config, out=out, resume=True)


def assert_same_end(resumed, reference):
    """The resumed fit ended with the reference's widths, test metrics and weights."""
    assert resumed.metrics["hidden_widths"] == reference.metrics["hidden_widths"]
    for key, value in reference.metrics["test"].items():
        assert resumed.metrics["test"][key] == pytest.approx(value, abs=1e-6)
    for name, param in reference.run.model.state_dict().items():
        torch.testing.assert_close(resumed.run.model.state_dict()[name], param)
