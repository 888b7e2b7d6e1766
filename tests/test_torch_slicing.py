"""Slicing of feature maps imported from PyTorch: ranges of the spatial axes (``crop``), with a
step (``subsample``), of the channels (``slice``), by indexing, ``narrow`` and ``split``.

Checked against hand computation (offsets, sizes), torch's own shapes, ``sum(numel)`` and
FlopCounterMode, and autograd: which input pixels each output unit reads, unit by unit, must
be the receptive field cnnstat reports (tests/test_ops_pad_resample.py's oracle)."""

import pytest
import torch
import torch.nn.functional as F
from test_ops_pad_resample import expected_field, measured_field, positive
from test_torch_build import assert_matches
from torch import nn

from cnnstat.torch.analysis import analyze
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs
from cnnstat.torch.load import meta_copy
from helpers import spec_from_text


def ops(a):
    return [(la.op, la.output) for la in a.layers]


def check_fields(module, a, units=None):
    """Every output unit's field (along the diagonal) measured by autograd on ``module``
    equals the one cnnstat reports for its last layer."""
    module = positive(module)
    layer = a.layers[-1]
    out, spatial = layer.output[1:], a.graph.input[1:]
    for u in units or range(max(out)):
        index = tuple(min(u, o - 1) for o in out)
        got = measured_field(module, a.graph.input, index)
        want = [expected_field(layer.rf, i, index[i], spatial[i]) for i in range(len(out))]
        assert got == want, (index, got, want)


def check_counts(module, a):
    assert a.complete and not a.graph.unsupported
    assert a.totals()["params"] == sum(p.numel() for p in module.parameters())
    assert a.totals()["macs"] == flop_counter_macs(meta_copy(module), a.graph.input)


class Windows(nn.Module):
    """Spatial ranges (negative and open bounds, Ellipsis), steps, and channels with space."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.d = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        y = self.c(x)  # 8 x 20 x 22
        y = y[:, :, 2:-1, 1:]  # rows 2..18, columns 1..21
        y = y[..., ::2, 1::2]  # every other row from 0, column from 1
        y = y[:, 2:6, 1:]  # channels 2..5 and rows from 1
        return self.d(y)


def test_ranges_steps_and_channels():
    m = Windows()
    a = analyze(m, input=(3, 40, 44))
    by = {la.name: la for la in a.layers}
    assert [(la.name, la.op) for la in a.layers] == [
        ("c", "conv"),
        ("getitem", "crop"),
        ("getitem_1", "subsample"),
        ("getitem_2", "slice"),
        ("getitem_3", "crop"),
        ("d", "conv"),
    ]
    # 20 x 22 -> rows [2, 19), columns [1, 22): 17 x 21
    assert by["getitem"].args["size"] == (17, 21) and by["getitem"].args["offset"] == (2, 1)
    # 17 rows from 0 by 2: 9; 21 columns from 1 by 2: 10 (every one that fits: no size)
    assert by["getitem_1"].args == {"s": (2, 2), "offset": (0, 1), "size": None}
    assert by["getitem_1"].output == (8, 9, 10)
    assert by["getitem_2"].output == (4, 9, 10) and by["getitem_3"].output == (4, 8, 10)
    assert by["d"].output == (4, 6, 8)
    # conv s2 p1: start 0, jump 2; crop: + (2, 1) x 2; subsample: + (0, 1) x 4, jump 4;
    # crop rows + 1 x 4; the 3 x 3 conv: + 4 x 1, size 3 + 2 x 4
    assert by["getitem_1"].rf.jump == (4, 4) and by["getitem_1"].rf.start == (4, 4)
    assert (by["d"].rf.size, by["d"].rf.jump, by["d"].rf.start) == ((11, 11), (4, 4), (12, 8))
    check_counts(m, a)
    check_fields(m, a)


class Focus(nn.Module):
    """YOLOv5's Focus: four phases of the image, stacked as channels, then a convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 3, padding=1)

    def forward(self, x):
        parts = [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]]
        return self.conv(torch.cat(parts, 1))


def test_yolo_focus():
    m = Focus()
    a = analyze(m, input=(3, 16, 12))
    subs = [la for la in a.layers if la.op == "subsample"]
    assert [la.args["offset"] for la in subs] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert all(la.output == (3, 8, 6) and la.rf.jump == (2, 2) for la in subs)
    assert [la.rf.start for la in subs] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert ops(a)[-2:] == [("concat", (12, 8, 6)), ("conv", (8, 8, 6))]
    # 8 x 6 positions x 8 out x 12 in x 9 taps
    assert a.totals()["macs"] == 8 * 6 * 8 * 12 * 9
    check_counts(m, a)


class Signal(nn.Module):
    """A 1-D signal sliced along its length (negative stop), narrowed and split."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(2, 4, 5, stride=2)
        self.d = nn.Conv1d(4, 4, 3)

    def forward(self, x):
        y = self.c(x)[:, :, 3:-2]
        y = torch.narrow(y, 2, 1, 20)
        a, b = torch.split(y, [8, 12], dim=2)
        return self.d(b)


def test_one_dimensional_ranges():
    m = Signal()
    a = analyze(m, input=(2, 64))
    # 64 -> conv k5 s2: 30; [3, 28): 25; narrow [1, 21): 20; split at 8: the last 12
    assert ops(a) == [
        ("conv", (4, 30)),
        ("crop", (4, 25)),
        ("crop", (4, 20)),
        ("crop", (4, 8)),
        ("crop", (4, 12)),
        ("conv", (4, 10)),
    ]
    assert [la.args["offset"] for la in a.layers if la.op == "crop"] == [(3,), (1,), (0,), (8,)]
    # start: conv 2, + 3 x 2, + 1 x 2, + 8 x 2, + 1 x 2 (the 3-tap conv's centre): 28
    rf = a.layers[-1].rf
    assert (rf.size, rf.jump, rf.start) == ((9,), (2,), (28,))
    check_counts(m, a)
    check_fields(m, a)


class Splits(nn.Module):
    """chunk along the height, narrow along the width with a negative start."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        top, bottom = self.c(x).chunk(2, dim=2)
        return F.relu(torch.narrow(bottom, -1, -5, 4))


def test_chunk_and_narrow_along_space():
    m = Splits()
    a = analyze(m, input=(1, 10, 9))
    crops = [la for la in a.layers if la.op == "crop"]
    assert [(la.args["size"], la.args["offset"]) for la in crops] == [
        ((5, 9), (0, 0)),
        ((5, 9), (5, 0)),
        ((5, 4), (0, 4)),  # narrow(-1, -5, 4) of 9 columns: columns 4..7
    ]
    assert a.layers[-1].rf.start == (5, 4)
    check_counts(m, a)
    check_fields(m, a)


class ChannelsLast(nn.Module):
    """Spatial slicing of a tensor laid out channels last (ConvNeXt-style): the same crop."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 6)

    def forward(self, x):
        y = self.c(x).permute(0, 2, 3, 1)[:, 1:-1, 2:]
        return self.fc(y).permute(0, 3, 1, 2)


def test_slicing_a_channels_last_tensor():
    m = ChannelsLast()
    a = analyze(m, input=(3, 12, 12))
    assert ops(a) == [("conv", (4, 10, 10)), ("crop", (4, 8, 8)), ("linear", (6, 8, 8))]
    assert a.layers[1].args["offset"] == (1, 2)
    check_counts(m, a)
    check_fields(m, a)


class Odd(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.how = how

    def forward(self, x):
        y = self.c(x)
        if self.how == "channel step":
            y = y[:, ::2]
        else:
            y = y[:, :, torch.tensor([0, 2])]
        return y.relu()


@pytest.mark.parametrize(
    "how, detail",
    [
        ("channel step", "indexes the channels with a step"),
        ("tensor", "indexes otherwise than by ranges and positions"),
    ],
)
def test_what_does_not_map_stays_honest(how, detail):
    m = Odd(how)
    a = analyze(m, input=(3, 8, 8), tracer="hooks" if how == "tensor" else "auto")
    (u,) = a.graph.unsupported
    assert detail in u["detail"]
    assert not a.complete
    assert a.totals()["params"] == sum(p.numel() for p in m.parameters())
    assert a.receptive_field() is None or a.receptive_field().rf is None


class Rows(nn.Module):
    """A spatial axis of one unit dropped: CRNN's squeeze of a height reduced to one row, or
    one row taken (x[:, :, 2]); then a 1-D convolution along the width."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        k, s, p = ((4, 3), (4, 2), (0, 1)) if how == "squeeze" else (3, 1, 1)
        self.c = nn.Conv2d(1, 8, k, stride=s, padding=p)
        self.d = nn.Conv1d(8, 4, 3)

    def forward(self, x):
        y = self.c(x)
        return self.d(y.squeeze(2) if self.how == "squeeze" else y[:, :, 2])


@pytest.mark.parametrize(
    "how, rows, field",
    [
        # 4 rows -> 1 (k 4, s 4); columns: k 3 s 2 p 1 then k 3: 3 + 2 x 2 = 7, jump 2, start 2
        ("squeeze", (0, 3), ((7,), (2,), (2,))),
        # row 2 of a 3 x 3 conv (padding 1) sees rows 1..3; columns 3 + 2 = 5, start 1
        ("index", (1, 3), ((5,), (1,), (1,))),
    ],
)
def test_a_dropped_axis_of_one_unit_keeps_the_others_field(how, rows, field):
    m = Rows(how)
    a = analyze(m, input=(1, 4, 20))
    check_counts(m, a)
    rf = a.layers[-1].rf
    assert (rf.size, rf.jump, rf.start) == field and not rf.collapsed
    module = positive(m)
    for u in range(a.layers[-1].output[1]):
        got = measured_field(module, a.graph.input, (u,))
        assert got == [rows, expected_field(rf, 0, u, 20)], u


SPEC = """
input: [3, 23, 20]
layers:
  - conv: {out: 4, k: 3, s: 2, p: 1}
  - subsample: {s: [2, 3], offset: [1, 0], size: [5, 3]}
  - conv: {out: 4, k: 2}
  - crop: {size: [3, 1], offset: [1, 1]}
"""


def test_spec_round_trip_and_fields():
    """A spec with subsample and crop built as a module: parameters, FlopCounterMode and the
    importer read it back layer for layer; autograd measures its fields."""
    from cnnstat.spec.build import build as build_spec

    graph = build_spec(spec_from_text(SPEC))
    assert [la.output for la in graph.layers] == [(4, 12, 10), (4, 5, 3), (4, 4, 2), (4, 3, 1)]
    assert_matches(graph, build_graph(graph, "meta"))
    module = build_graph(graph)
    a = analyze(module, input=graph.input)
    check_fields(module, a)


class Clip(nn.Module):
    """A video clip [C, T, H, W]: every other frame from the second, rows cropped."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv3d(3, 4, 3, padding=1)
        self.d = nn.Conv3d(4, 2, (1, 3, 3))

    def forward(self, x):
        return self.d(self.c(x)[:, :, 1::2, 2:-2])


def test_video_frames_and_rows():
    m = Clip()
    a = analyze(m, input=(3, 9, 10, 8))
    sub = a.layers[1]
    # frames 1, 3, 5, 7 of 9; rows 2..7 of 10; all 8 columns
    assert (sub.op, sub.output, sub.args) == (
        "subsample",
        (4, 4, 6, 8),
        {"s": (2, 1, 1), "offset": (1, 2, 0), "size": (4, 6, 8)},  # rows stop before the end
    )
    assert sub.rf.jump == (2, 1, 1) and sub.rf.start == (1, 2, 0)
    check_counts(m, a)
    check_fields(m, a)


class Lookup(nn.Module):
    """A parameter table indexed by a tensor computed from the input."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.table = nn.Parameter(torch.zeros(10, 4))

    def forward(self, x):
        return self.table[self.c(x).mean((1, 2, 3)).long()]


def test_a_table_indexed_by_the_input_is_listed():
    a = analyze(Lookup(), input=(3, 8, 8))
    last = a.layers[-1]
    assert (last.op, last.args["detail"]) == ("opaque", "indexes a tensor cnnstat does not follow")
    assert last.weights == 40 and not a.complete
    assert a.totals()["params"] == 3 * 4 * 9 + 4 + 40
