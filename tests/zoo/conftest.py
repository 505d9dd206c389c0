import pytest


@pytest.fixture
def at_epoch(monkeypatch):
    """``at_epoch(model, epoch)`` makes ``model`` read ``current_epoch == epoch`` as if a Trainer were attached."""

    def set_epoch(model, epoch: int) -> None:
        monkeypatch.setattr(model, "_trainer", object())
        monkeypatch.setattr(type(model), "current_epoch", property(lambda self: epoch))

    return set_epoch
