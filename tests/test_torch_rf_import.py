"""The receptive field of imported modules equals the spec's: a causal 1-D stack written with
F.pad (WaveNet), and the zoo's U-Net built as a module and read back."""

import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.analysis import analyze as analyze_spec
from cnnstat.torch import build
from cnnstat.torch.analysis import analyze
from helpers import analyze_text


class WaveNet(nn.Module):
    """Dilations 1..512, kernel 2, padded on the left only (causal) with F.pad."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(8 if i else 1, 8, 2, dilation=2**i) for i in range(10))

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(F.pad(x, (conv.dilation[0], 0))))
        return x


def test_causal_1d_field_equals_the_spec():
    spec = analyze_text(
        "input: [1, 2048]\nlayers:\n"
        + "".join(f"  - conv: {{out: 8, k: 2, d: {2**i}, p: causal}}\n  - relu\n" for i in range(10))
    ).receptive_field()
    imported = analyze(WaveNet(), input=(1, 2048))
    assert imported.complete
    rf = imported.receptive_field().rf
    # 1024 samples, the field of output t ending at input t: its centre 511.5 before it
    assert (rf.size, rf.jump, rf.start) == ((1024,), (1,), (-511.5,))
    assert (rf.size, rf.jump, rf.start) == (spec.rf.size, spec.rf.jump, spec.rf.start)


def test_unet_module_field_equals_the_spec():
    a = analyze_spec("unet")
    imported = analyze(build("unet", device="meta"), input=a.graph.input)
    assert imported.complete
    assert imported.receptive_field().rf == a.receptive_field().rf
    assert imported.totals()["params"] == a.totals()["params"]
