import torch
from hybridzoo.physics.fluid_regions import fluid_regions
from hybridzoo.physics.pressure import PoissonOperator


def _labels(solid: torch.Tensor, x_rule: str, y_rule: str = "neumann") -> torch.Tensor:
    op = PoissonOperator(*solid.shape, 0.1, x_rule, y_rule, solid)
    return fluid_regions(op._fluid, op._wx, op._wy)


def test_a_wall_across_a_walled_channel_makes_two_regions_numbered_in_row_major_order():
    solid = torch.zeros(4, 6, dtype=torch.bool)
    solid[:, 2] = True
    lab = _labels(solid, "neumann")
    assert (lab[:, 2] == -1).all()
    assert (lab[:, :2] == 0).all() and (lab[:, 3:] == 1).all()


def test_a_periodic_axis_joins_the_cells_across_its_ends():
    solid = torch.zeros(4, 6, dtype=torch.bool)
    solid[:, 2] = True
    lab = _labels(solid, "periodic")  # columns 3..5 wrap around onto 0..1
    assert (lab[~solid] == 0).all()
    solid[:, 4] = True  # now two walls cut the ring in two
    lab = _labels(solid, "periodic")
    assert set(lab[~solid].tolist()) == {0, 1}
    assert (lab[:, 3] == 1).all() and (lab[:, [0, 1, 5]] == 0).all()


def test_a_ring_encloses_a_pocket_and_diagonal_neighbours_do_not_connect():
    solid = torch.zeros(7, 7, dtype=torch.bool)
    solid[1:6, 1:6] = True
    solid[2:5, 2:5] = False  # a 3x3 pocket inside a ring one cell thick
    lab = _labels(solid, "neumann-dirichlet")
    assert lab.max() == 1 and (lab[2:5, 2:5] == 1).all()
    diag = torch.tensor([[False, True], [True, False]])  # two fluid cells that only touch at a corner
    assert set(_labels(diag, "neumann")[~diag].tolist()) == {0, 1}


def test_a_serpentine_channel_is_one_region_until_one_wall_gap_is_closed():
    # Walls on every other row, each with one gap, alternately at the right and left end: one path through all
    # 64 x 64 cells, the longest a region can be. Closing the gap of wall k cuts the rows below it off.
    n = 64
    solid = torch.zeros(n, n, dtype=torch.bool)
    rows = list(range(1, n - 1, 2))
    for k, r in enumerate(rows):
        solid[r, :] = True
        solid[r, n - 1 if k % 2 == 0 else 0] = False
    lab = _labels(solid, "neumann")
    assert (lab[~solid] == 0).all()
    k = 10
    solid[rows[k], :] = True
    lab = _labels(solid, "neumann")
    assert (lab[: rows[k]][~solid[: rows[k]]] == 0).all() and (lab[rows[k] + 1 :][~solid[rows[k] + 1 :]] == 1).all()
