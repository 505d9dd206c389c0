import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated_data_cache(tmp_path_factory, monkeypatch):
    """Every test writes generated data into its own session cache, never the user's ~/.cache."""
    root = tmp_path_factory.getbasetemp() / "hybridzoo-cache"
    monkeypatch.setenv("HYBRIDZOO_DATA", str(root))
    yield


def pytest_configure(config):
    # batched LU solves of torch 2.13.0+cpu are wrong with 2 threads on the CI machine; small
    # problems gain nothing from threads anyway
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for subprocesses: NumPy's BLAS here has started already
    from threadpoolctl import threadpool_limits  # (scikit-learn's dependency)

    threadpool_limits(limits=1)  # NumPy/SciPy's BLAS on one thread too, as torch is
