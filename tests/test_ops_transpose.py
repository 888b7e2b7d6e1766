"""The transposed convolution (``conv_transpose``, ``deconv``, ``upconv``) and receptive fields
with fractional jumps.

Shapes, parameters and MACs against hand computation (PyTorch's ConvTranspose formula
``(in - 1)*s - 2p + d*(k - 1) + output_padding + 1``), against ``sum(p.numel())`` of the built
torch module, PyTorch's FlopCounterMode and fvcore. Receptive fields against autograd: the
spec is built as a torch module in float64 with positive weights and a positive input (only
convolutions and average pooling: every path has a positive weight, so a pixel's gradient is
non-zero exactly when the unit reads it), each output unit of a run covering every phase is
back-propagated, and its measured field (first and last input pixel with a non-zero gradient)
must be the one cnnstat tracks; the largest measured field must be the reported ``size``, and
the mean over a period of ``centre(u) - u * jump`` the reported ``start``.
"""

import json
import math
import random
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnstat.analysis import Analysis, rf_dict
from cnnstat.errors import SpecError
from cnnstat.ops.base import RF
from cnnstat.ops.conv import transposed_reads
from cnnstat.spec.build import build as build_spec
from cnnstat.torch.builder import build_graph
from cnnstat.torch.check import flop_counter_macs, fvcore_macs
from cnnstat.torch.trace import trace_module
from helpers import analyze_text, spec_from_text

DTYPE = torch.float64


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster (and does not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one(layer_yaml: str, input="[3, 8, 8]"):
    return analyze_text(f"input: {input}\nlayers:\n  - {layer_yaml}\n").layers[-1]


# --- shapes, parameters, MACs by hand -------------------------------------------------------


@pytest.mark.parametrize(
    "layer, input, output",
    [
        # U-Net's up-convolution: 2x2, stride 2, doubles H and W and halves the channels
        ("conv_transpose: {out: 512, k: 2, s: 2}", "[1024, 28, 28]", (512, 56, 56)),
        ("upconv: {out: 64, k: 2, s: 2}", "[128, 196, 196]", (64, 392, 392)),
        # FCN-32s: k=64, s=32, p=0 (the crop happens later): (7 - 1)*32 + 63 + 1
        ("deconv: {out: 21, k: 64, s: 32, bias: false}", "[21, 7, 7]", (21, 256, 256)),
        # k=3, s=2, p=1: 2n - 1, and exactly 2n with output_padding 1
        ("conv_transpose: {out: 4, k: 3, s: 2, p: 1}", "[8, 7, 7]", (4, 13, 13)),
        ("conv_transpose: {out: 4, k: 3, s: 2, p: 1, output_padding: 1}", "[8, 7, 7]", (4, 14, 14)),
        ("conv_transpose: {out: 4, k: 3, s: 2, p: 1, out_pad: [0, 1]}", "[8, 7, 7]", (4, 13, 14)),
        # DCGAN: 4x4, stride 2, padding 1 doubles exactly; from a 1x1 latent, k=4 s=1 gives 4x4
        ("conv_transpose: {out: 256, k: 4, s: 2, p: 1}", "[512, 4, 4]", (256, 8, 8)),
        ("conv_transpose: {out: 512, k: 4}", "[100, 1, 1]", (512, 4, 4)),
        # stride 1 is the "full" convolution: n + k - 1, and n with p = (k - 1) / 2
        ("conv_transpose: {out: 2, k: 5}", "[3, 10, 10]", (2, 14, 14)),
        ("conv_transpose: {out: 2, k: 5, p: 2}", "[3, 10, 10]", (2, 10, 10)),
        # dilation: d*(k - 1) + 1 = 5 taps wide; output_padding < dilation allowed at stride 1
        ("conv_transpose: {out: 2, k: 3, d: 2}", "[3, 5, 5]", (2, 9, 9)),
        ("conv_transpose: {out: 2, k: 3, d: 2, output_padding: 1}", "[3, 5, 5]", (2, 10, 10)),
        # 1-D: (10 - 1)*2 - 2 + 3 + 1
        ("conv_transpose: {out: 4, k: 4, s: 2, p: 1}", "[6, 10]", (4, 20)),
        ("conv_transpose: {out: 4, k: 1, s: 3}", "[6, 10]", (4, 28)),
        # 3-D: per axis (D, H, W): 3*1 - 2 + 2 + 1, 4*2 + 1 + 1, 5*2 + 1 + 1
        (
            "conv_transpose: {out: 4, k: [3, 2, 2], s: [1, 2, 2], p: [1, 0, 0]}",
            "[8, 4, 5, 6]",
            (4, 4, 10, 12),
        ),
    ],
)
def test_shapes(layer, input, output):
    assert one(layer, input).output == output


def test_unet_up_convolution_cost():
    layer = one("conv_transpose: {out: 512, k: 2, s: 2}", "[1024, 28, 28]")
    assert layer.op == "conv_transpose" and layer.kind == "conv"
    assert layer.weights == 1024 * 512 * 2 * 2  # C_in x C_out/groups x k_h x k_w
    assert layer.biases == 512
    assert layer.macs == 1024 * 28 * 28 * 2 * 2 * 512  # input elements x k_h x k_w x C_out


def test_fcn_upsampling_cost():
    layer = one("deconv: {out: 21, k: 64, s: 32, bias: false}", "[21, 7, 7]")
    assert (layer.weights, layer.biases) == (21 * 21 * 64 * 64, 0)
    assert layer.macs == 21 * 7 * 7 * 64 * 64 * 21


def test_grouped_and_3d_cost():
    layer = one("conv_transpose: {out: 12, k: 3, groups: 4}", "[8, 5, 5]")
    assert layer.output == (12, 7, 7)
    assert layer.weights == 8 * (12 // 4) * 9
    assert layer.macs == 8 * 25 * 9 * (12 // 4)
    layer = one("conv_transpose: {out: 4, k: [3, 2, 2], s: [1, 2, 2], p: [1, 0, 0]}", "[8, 4, 5, 6]")
    assert layer.weights == 8 * 4 * 12
    assert layer.macs == 8 * 4 * 5 * 6 * 12 * 4


def test_aliases():
    a = one("deconv: {channels: 4, kernel_size: 3, stride: 2, padding: 1, output_pad: 1, dilation: 1}")
    b = one("upconv: {out_channels: 4, kernel: 3, s: 2, pad: 1, output_padding: 1, g: 1}")
    c = one("conv_transpose: {out: 4, k: 3, s: 2, p: 1, out_pad: 1}")
    assert a.output == b.output == c.output == (4, 16, 16)
    assert a.op == b.op == c.op == "conv_transpose"
    assert (a.weights, a.macs, a.rf) == (c.weights, c.macs, c.rf)


# --- errors, located in the spec ------------------------------------------------------------


@pytest.mark.parametrize(
    "layer, input, message",
    [
        ("conv_transpose: {out: 12, k: 3, groups: 3}", "[8, 5, 5]", "groups=3 must divide input channels 8"),
        ("conv_transpose: {out: 10, k: 3, groups: 4}", "[8, 5, 5]", "and output channels 10"),
        (
            "conv_transpose: {out: 4, k: 3, s: 2, output_padding: 2}",
            "[8, 5, 5]",
            "output_padding [2, 2] must be smaller than the stride [2, 2] or the dilation [1, 1]",
        ),
        ("conv_transpose: {out: 4, k: 3, output_padding: 1}", "[8, 5, 5]", "must be smaller than the stride"),
        ("conv_transpose: {out: 4, k: 3, p: -1}", "[8, 5, 5]", "padding must not be negative, got [-1, -1]"),
        ("conv_transpose: {out: 4, k: 3, out_pad: [0, -1], s: 2}", "[8, 5, 5]", "output_padding must not be"),
        ("conv_transpose: {out: 4, k: 1, p: 1}", "[8, 1, 1]", "output would be [-1, -1]"),
        ("conv_transpose: {out: 4, k: 0}", "[8, 5, 5]", "kernel must be at least 1, got [0, 0]"),
        ("conv_transpose: {out: 4, k: 2, s: 0}", "[8, 5, 5]", "stride must be at least 1"),
        ("conv_transpose: {out: 4, k: 2, s: 1000000000000}", "[8, 5, 5]", "stride must be at most 16384"),
        ("conv_transpose: {out: 4, k: [2, 2, 2]}", "[8, 5, 5]", "'kernel' must be an integer or a list of 2"),
        ("conv_transpose: {out: 4, k: 2}", "[8]", "needs a [C, H, W], [C, L] or [C, D, H, W] input"),
        ("conv_transpose: {out: 4, k: 2, p: same}", "[8, 5, 5]", "'p' must be an integer or a list"),
        ("conv_transpose: {out: 0, k: 2}", "[8, 5, 5]", "'out' must be at least 1"),
        ("conv_transpose: {k: 2}", "[8, 5, 5]", "'out'"),
    ],
)
def test_errors_are_located(layer, input, message):
    text = f"input: {input}\nlayers:\n  - relu\n  - {layer}\n"
    with pytest.raises(SpecError) as info:
        analyze_text(text)
    first = str(info.value).splitlines()[0]
    assert first.startswith("test.yaml:4:"), first
    assert ": error: " in first and message in first, first


def test_too_many_phases_is_an_error():
    """Two x300 upsamplings: the fields repeat every 90000 units, more than cnnstat tracks."""
    text = (
        "input: [1, 4]\nlayers:\n  - deconv: {out: 1, k: 300, s: 300}\n  - deconv: {out: 1, k: 300, s: 300}\n"
    )
    with pytest.raises(SpecError, match=r"^test.yaml:4:\d+: error: .*repeats every 90000 units"):
        analyze_text(text)


# --- which input units each output unit reads ------------------------------------------------


@pytest.mark.parametrize(
    "k, s, p, d",
    [(k, s, p, d) for k in range(1, 7) for s in range(1, 6) for p in (0, 1, 3) for d in (1, 2, 3, 4)],
)
def test_transposed_reads_by_enumeration(k, s, p, d):
    """The closed form (modular inverse) against the definition o = i*s - p + j*d, j < k."""
    reads = transposed_reads(k, s, p, d)
    assert len(reads) == s
    for o in range(-2 * s, 3 * s):
        want = sorted({(o + p - j * d) // s for j in range(k) if (o + p - j * d) % s == 0})
        n, r = divmod(o, s)
        assert [i + n for i in reads[r]] == want, (o, reads[r])


# --- the autograd oracle ----------------------------------------------------------------------


def positive_module(graph):
    model = build_graph(graph).to(DTYPE).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.requires_grad_(False)
            p.uniform_(0.5, 1.5, generator=gen)
    return model


def measure(model, input_shape, units, layer=None):
    """Per unit (a tuple of spatial indices), per axis: (first, last) input pixel with a non-zero
    gradient, or None. ``layer``: the submodule whose output is measured (default: the model's)."""
    seen = {}

    def keep(module, args, out):
        seen["y"] = out

    gen = torch.Generator().manual_seed(1)
    x = torch.rand((1, *input_shape), generator=gen, dtype=DTYPE).add_(0.5).requires_grad_(True)
    if layer is None:
        y = model(x)
    else:
        handle = model.get_submodule(layer).register_forward_hook(keep)
        model(x)
        handle.remove()
        y = seen["y"]
    grads = torch.zeros((len(units), *y.shape), dtype=DTYPE)
    for n, unit in enumerate(units):
        grads[(n, 0, slice(None), *unit)] = 1.0
    # every unit's gradient from one batched backward (vmap over grad_outputs)
    (grad,) = torch.autograd.grad(y, x, grad_outputs=grads, is_grads_batched=True, allow_unused=True)
    found = []
    for n, unit in enumerate(units):
        hit = grad[n, 0].ne(0).any(0).nonzero() if grad is not None else torch.zeros((0, len(unit)))
        found.append(
            [(int(hit[:, i].min()), int(hit[:, i].max())) if len(hit) else None for i in range(len(unit))]
        )
    return y.shape[2:], found


def claimed(rf, i, u):
    """The field cnnstat tracks for unit ``u`` along axis ``i``: (first, last) or None."""
    table = rf.table(i)
    q, r = divmod(u, len(table))
    f = table[r]
    block = int(len(table) * rf.jump[i])
    return None if f is None else (f[0] + q * block, f[1] + q * block)


def period(rf, i):
    return len(rf.table(i))


def unit_reads(layer, i, o):
    """The units (layer name, index along axis ``i``) that unit ``o`` of ``layer`` reads, from
    the ops' definitions (independent of cnnstat's receptive-field code)."""
    a = layer.args

    def ax(v):
        return v[i] if isinstance(v, (tuple, list)) else v

    if layer.op in ("conv", "avgpool"):
        k = ax(a["k"])
        s, p, d = ax(a["s"] if a.get("s") is not None else k), ax(a.get("p", 0)), ax(a.get("d", 1))
        return [(layer.inputs[0], o * s - p + j * d) for j in range(k)]
    if layer.op == "conv_transpose":
        k, s, p, d = ax(a["k"]), ax(a["s"]), ax(a["p"]), ax(a["d"])
        return [(layer.inputs[0], (o + p - j * d) // s) for j in range(k) if (o + p - j * d) % s == 0]
    if layer.op == "add":
        return [(name, o) for name in layer.inputs]
    raise AssertionError(layer.op)


def real_units(graph, i) -> dict:
    """Per layer, along axis ``i``: which units depend on real units only -- none of the units
    they read, directly or not, lies outside its layer's extent (a padding unit, or one a
    transposed convolution's padding crops away) or outside the input. Only such units have the
    field the analyzer reports (it counts what those units would read)."""
    real = {"input": [True] * graph.input[1 + i]}
    for layer in graph.layers:
        real[layer.name] = [
            all(0 <= t < len(real[src]) and real[src][t] for src, t in unit_reads(layer, i, o))
            for o in range(layer.output[1 + i])
        ]
    return real


def interior_run(graph, layer, i, real=None):
    """The longest run of units that read real units only (None if it does not cover every
    phase)."""
    real = real or real_units(graph, i)
    best, first = (0, 0), 0
    for u, ok in enumerate([*real[layer.name], False]):
        if not ok:
            best, first = max(best, (first, u), key=lambda r: r[1] - r[0]), u + 1
    run = list(range(*best))
    return run if len(run) >= period(layer.rf, i) + 1 else None


def check_axis(graph, layer, i, others=None, model=None, real=None):
    """Measure the units of a run covering every phase along axis ``i`` (other axes at
    ``others``, default their middle) and compare with the reported field. Returns False when
    the layer has no such run (too small an input)."""
    rf, extent = layer.rf, layer.output[1:]
    run = interior_run(graph, layer, i, real)
    if run is None:
        return False
    run = run[: 3 * period(rf, i) + 2]
    middle = [e // 2 for e in extent] if others is None else list(others)
    units = [tuple(u if a == i else middle[a] for a in range(len(extent))) for u in run]
    model = model or positive_module(graph)
    shape, found = measure(model, graph.input, units, layer.name)
    assert tuple(shape) == tuple(extent)
    got = {u[i]: f[i] for u, f in zip(units, found)}
    want = {u: claimed(rf, i, u) for u in run}
    assert got == want, f"{layer.name} axis {i}: measured {got}, tracked {want} ({rf})"
    sizes = [f[1] - f[0] + 1 for f in got.values() if f is not None]
    assert max(sizes, default=0) == rf.size[i], (sizes, rf)  # the largest field any unit has
    p, j = period(rf, i), rf.jump[i]
    # start: the mean of centre(u) - u * jump over one period (units reading nothing left out)
    first = [u for u in run[:p]]
    offsets = [Fraction(got[u][0] + got[u][1], 2) - u * Fraction(j) for u in first if got[u] is not None]
    if offsets:
        assert sum(offsets) / len(offsets) == Fraction(rf.start[i]), (offsets, rf)
    return True


def check_layers(text, every=True, axes=None):
    graph = build_spec(spec_from_text(text))
    model = positive_module(graph)
    layers = graph.layers if every else graph.layers[-1:]
    checked = 0
    for layer in layers:
        for i in axes if axes is not None else range(len(layer.output) - 1):
            checked += check_axis(graph, layer, i, model=model)
    return graph, checked


# --- receptive fields: hand-worked cases --------------------------------------------------------


def test_unet_rf_by_hand():
    """conv 2/2 then up-conv 2/2: up unit o sees pixels 2*floor(o/2) .. +1 (2 pixels); a 3x3
    conv over it: unit o reads up units o-1 .. o+1, i.e. pixels 2*floor((o-1)/2) ..
    2*floor((o+1)/2) + 1: 4 pixels for every o; a 2-wide conv then: 6 pixels for even o,
    4 for odd o -- not 2 + 2 + 1 = 5 as the uniform rule size + (k - 1) * jump would say."""
    text = """
    input: [2, 28]
    layers:
      - conv: {out: 2, k: 2, s: 2}
      - conv_transpose: {out: 2, k: 2, s: 2}
      - conv: {out: 2, k: 3, p: 1}
      - conv: {out: 2, k: 2}
    """
    graph = build_spec(spec_from_text(text))
    down, up, c3, c2 = (la.rf for la in graph.layers)
    assert (down.size, down.jump, down.start) == ((2,), (2,), (0.5,))
    assert (up.size, up.jump, up.start) == ((2,), (1,), (0,))
    assert up.phases == (((0, 1), (0, 1)),)
    assert (c3.size, c3.jump) == ((4,), (1,))
    assert c3.phases == (((-2, 1), (0, 3)),)
    assert (c2.size, c2.jump, c2.start) == ((6,), (1,), (Fraction(1, 2),))
    assert c2.phases == (((-2, 3), (0, 3)),)
    assert check_layers(text)[1] == 4


def test_fractional_jump_rf_by_hand():
    """k=4, s=2, p=1 (DCGAN): unit o reads inputs floor((o-1)/2) .. floor((o+1)/2): two for
    every o (jump 1/2, start -1/4); then k=4: unit 2m sees m-1 .. m+2 (4 pixels), unit 2m+1
    m .. m+2 (3): 2 + 3/2 = 3.5 is no pixel count; then k=3, s=2: unit v reads units 2v ..
    2v+2, pixels v-1 .. v+3 (5), jump 1."""
    text = """
    input: [1, 24]
    layers:
      - conv_transpose: {out: 1, k: 4, s: 2, p: 1}
      - conv: {out: 1, k: 4}
      - conv: {out: 1, k: 3, s: 2}
    """
    graph = build_spec(spec_from_text(text))
    up, c4, c3 = (la.rf for la in graph.layers)
    assert (up.size, up.jump, up.start) == ((2,), (Fraction(1, 2),), (Fraction(-1, 4),))
    assert up.phases == (((-1, 0), (0, 1)),)
    assert (c4.size, c4.jump) == ((4,), (Fraction(1, 2),))
    assert c4.phases == (((-1, 2), (0, 2)),)
    assert (c3.size, c3.jump, c3.start, c3.phases) == ((5,), (1,), (1,), None)
    assert check_layers(text)[1] == 3


def test_kernel_smaller_than_stride_leaves_units_without_input():
    """k=1, s=2: odd output units read nothing (their gradient is zero everywhere); a 2-wide
    conv then: unit 2m sees pixel m, unit 2m+1 pixel m+1 (one pixel each, jump 1/2), and a
    second one: 2 pixels for even units, 1 for odd ones."""
    text = """
    input: [1, 16]
    layers:
      - conv_transpose: {out: 1, k: 1, s: 2}
      - conv: {out: 1, k: 2}
      - conv: {out: 1, k: 2}
    """
    graph = build_spec(spec_from_text(text))
    up, a, b = (la.rf for la in graph.layers)
    assert up.phases == (((0, 0), None),) and up.size == (1,)
    assert a.phases == (((0, 0), (1, 1)),) and (a.size, a.start) == ((1,), (Fraction(1, 4),))
    assert b.phases == (((0, 1), (1, 1)),) and b.size == (2,)
    assert check_layers(text)[1] == 3


def test_fcn_rf():
    """FCN-32s's upsampling of a stride-32 map: k=64, s=32, each output unit reads 2 units."""
    text = """
    input: [1, 256]
    layers:
      - conv: {out: 1, k: 32, s: 32}
      - conv: {out: 1, k: 3, p: 1}
      - deconv: {out: 1, k: 64, s: 32, p: 16}
    """
    graph, checked = check_layers(text, every=False)
    assert checked == 1
    rf = graph.layers[-1].rf
    assert rf.jump == (1,) and rf.size == (32 * 3 + 32,)  # 3 units of 32 pixels, then 2 taps


def test_merge_of_two_upsamplings():
    """add(up-conv 2/2, up-conv 4/2/1): the union, unit by unit, then a conv."""
    text = """
    input: [2, 20]
    layers:
      - conv: {out: 2, k: 3, p: 1}
      - add:
          a: [conv_transpose: {out: 2, k: 2, s: 2}]
          b: [conv_transpose: {out: 2, k: 4, s: 2, p: 1}]
      - conv: {out: 2, k: 2}
    """
    graph, checked = check_layers(text)
    assert checked == len(graph.layers)


def test_2d_and_3d_rf():
    text = """
    input: [1, 12, 14]
    layers:
      - conv_transpose: {out: 2, k: [3, 4], s: [2, 3], p: [1, 0], output_padding: [1, 2], d: [2, 1]}
      - conv: {out: 1, k: 3}
    """
    graph, checked = check_layers(text)
    assert checked == 4
    text = """
    input: [1, 6, 7, 8]
    layers:
      - conv_transpose: {out: 1, k: [2, 3, 4], s: [2, 3, 2], p: [0, 1, 1]}
      - conv: {out: 1, k: 2}
    """
    graph, checked = check_layers(text, every=False)
    assert checked == 3


# --- receptive fields: random chains against autograd ----------------------------------------


def random_layer(rng):
    kind = rng.choice(["conv_transpose", "conv_transpose", "conv", "conv", "avgpool"])
    k = rng.randint(1, 5)
    if kind == "conv_transpose":
        s, d = rng.randint(1, 4), rng.randint(1, 3)
        p = rng.randint(0, (d * (k - 1)) // 2 + 1)
        op = rng.randint(0, max(s, d) - 1)
        return f"conv_transpose: {{out: 1, k: {k}, s: {s}, p: {p}, d: {d}, output_padding: {op}}}"
    if kind == "conv":
        s, d = rng.randint(1, 3), rng.randint(1, 2)
        return f"conv: {{out: 1, k: {k}, s: {s}, p: {rng.randint(0, 2)}, d: {d}}}"
    return f"avgpool: {{k: {k}, s: {rng.randint(1, 3)}, p: {rng.randint(0, k // 2)}}}"


def random_chain(rng):
    layers = [random_layer(rng) for _ in range(rng.randint(2, 5))]
    if not any(la.startswith("conv_transpose") for la in layers):
        layers[rng.randrange(len(layers))] = random_layer(rng)
        layers.insert(rng.randrange(len(layers)), "conv_transpose: {out: 1, k: 3, s: 2, p: 1}")
    body = "".join(f"  - {la}\n" for la in layers)
    return f"input: [1, {rng.randint(24, 64)}]\nlayers:\n{body}"


def test_random_chains_against_autograd():
    """Chains of transposed convolutions (up to two or more), convolutions and average pooling
    of random kernel, stride, padding and dilation: every layer's tracked field of every unit
    of a run covering all phases equals the measured one, its largest field the size."""
    rng = random.Random(20240601)
    checked = built = 0
    for _ in range(300):
        text = random_chain(rng)
        try:
            graph = build_spec(spec_from_text(text))
        except SpecError:
            continue
        if max(max(la.output[1:]) for la in graph.layers) > 2000:
            continue
        built += 1
        model, real = positive_module(graph), real_units(graph, 0)
        for layer in graph.layers:
            checked += check_axis(graph, layer, 0, model=model, real=real)
    assert built >= 250 and checked >= 900, (built, checked)


# --- the RF API's default reads (interpolation) against torch --------------------------------


@pytest.mark.parametrize(
    "mode, scale, taps, offset",
    [
        ("nearest", 2, 1, Fraction(0)),
        ("nearest", 3, 1, Fraction(0)),
        ("linear", 2, 2, Fraction(-1, 4)),  # src = (o + 0.5) / 2 - 0.5
        ("linear", 4, 2, Fraction(-3, 8)),
    ],
)
def test_upsample_default_reads_against_torch(mode, scale, taps, offset):
    """RF.upsample without ``reads`` (unit o reads ``taps`` units from floor(offset + o/factor)
    - (taps - 1) // 2) matches F.interpolate followed by a 3-tap convolution."""
    n = 16

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(1, 1, 3, bias=False)
            nn.init.constant_(self.conv.weight, 1.0)

        def forward(self, x):
            return self.conv(F.interpolate(x, scale_factor=scale, mode=mode))

    rf = RF.input((n,)).upsample((taps,), (scale,), (offset,), (n * scale,))
    rf = rf.window((3,), (1,), (0,), (1,), (n * scale - 2,))
    model = Net().to(DTYPE)
    units = [(u,) for u in range(2 * scale, 2 * scale + 3 * scale)]
    _, found = measure(model, (1, n), units)
    assert [f[0] for f in found] == [claimed(rf, 0, u[0]) for u in units]
    assert max(f[0][1] - f[0][0] + 1 for f in found) == rf.size[0]


# --- torch: build, count, import back -------------------------------------------------------------


def layer_view(graph):
    return [
        (la.name, la.op, la.inputs, la.output, la.weights, la.biases, la.macs, la.rf) for la in graph.layers
    ]


def assert_round_trip(graph):
    """params == sum(numel), FlopCounterMode MACs == cnnstat's, the import reads the same layers."""
    meta = build_graph(graph, "meta")
    totals = Analysis(graph).totals()
    assert sum(p.numel() for p in meta.parameters()) == totals["params"]
    assert flop_counter_macs(meta, graph.input) == totals["macs"]
    back = trace_module(meta, graph.input, graph.name)
    assert not back.unsupported and not back.not_executed
    assert layer_view(back) == layer_view(graph)


@pytest.mark.parametrize(
    "input, layers",
    [
        ("[16, 14, 14]", ["conv_transpose: {out: 8, k: 2, s: 2}", "conv: {out: 8, k: 3, p: 1}"]),
        (
            "[12, 7, 9]",
            [
                "conv_transpose: {out: 8, k: [3, 4], s: [2, 3], p: [1, 0], output_padding: [1, 2], "
                "d: [2, 1], groups: 4}"
            ],
        ),
        (
            "[6, 10]",
            ["conv_transpose: {out: 4, k: 4, s: 2, p: 1, bias: false}", "conv_transpose: {out: 2, k: 3}"],
        ),
        (
            "[4, 3, 4, 5]",
            ["conv_transpose: {out: 2, k: [3, 2, 2], s: [1, 2, 2], p: [1, 0, 0], output_padding: [0, 1, 1]}"],
        ),
        ("[21, 7, 7]", ["deconv: {out: 21, k: 64, s: 32, bias: false}"]),
    ],
)
def test_torch_round_trip(input, layers):
    body = "".join(f"  - {la}\n" for la in layers)
    assert_round_trip(build_spec(spec_from_text(f"input: {input}\nlayers:\n{body}")))


def test_fvcore_counts_the_same_macs():
    graph = build_spec(
        spec_from_text(
            """
            input: [8, 6, 7]
            layers:
              - conv_transpose: {out: 6, k: 3, s: 2, p: 1, output_padding: 1, groups: 2}
              - conv_transpose: {out: 4, k: [2, 3], s: [2, 1], d: [1, 2]}
            """
        )
    )
    module = build_graph(graph)
    t = Analysis(graph).totals()
    assert sum(p.numel() for p in module.parameters()) == t["params"]
    assert fvcore_macs(module, graph.input)["macs"] == t["macs"] == 8 * 42 * 9 * 3 + 6 * 12 * 14 * 6 * 4


def test_import_functional_and_output_size():
    """F.conv_transpose2d imports as conv_transpose; a module called with output_size gets the
    output_padding torch chose."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1)
            self.w = nn.Parameter(torch.ones(4, 3, 2, 2))

        def forward(self, x):
            x = self.up(x, output_size=[14, 13])
            return F.conv_transpose2d(x, self.w, stride=2, groups=1)

    back = trace_module(Net().to("meta"), (4, 7, 7), "net")
    assert not back.unsupported
    up, fn = back.layers
    assert (up.op, up.output, up.args["output_padding"]) == ("conv_transpose", (4, 14, 13), (1, 0))
    assert (fn.op, fn.output, fn.weights, fn.biases) == ("conv_transpose", (3, 28, 26), 4 * 3 * 4, 0)
    assert fn.macs == 4 * 14 * 13 * 4 * 3


# --- display ---------------------------------------------------------------------------------


SPEC = """\
input: [3, 32, 32]
layers:
  - conv: {out: 8, k: 3, s: 2, p: 1}
  - conv_transpose: {out: 4, k: 3, s: 3}
  - conv: {out: 4, k: 3, p: 1}
"""


def test_json_has_plain_numbers():
    a = analyze_text(SPEC)
    doc = json.loads(json.dumps(a.to_dict()))
    up = doc["layers"][1]["rf"]
    assert up["jump"] == [2 / 3, 2 / 3] and up["jump_exact"] == ["2/3", "2/3"]
    assert all(
        isinstance(v, (int, float)) for la in doc["layers"] for v in la["rf"]["start"] + la["rf"]["size"]
    )
    assert set(doc["layers"][0]["rf"]) == {"size", "jump", "start"}  # integer jumps: as before
    assert rf_dict(a.layers[0].rf)["jump"] == [2, 2]


def test_cli_tables_print_fractions(run, tmp_path):
    path = tmp_path / "up.yaml"
    path.write_text(SPEC)
    out = run("rf", str(path)).stdout
    assert "Fraction" not in out and "(2/3)x(2/3)" in out, out
    out = run("summary", str(path)).stdout
    assert "Fraction" not in out and "/(2/3)x(2/3)" in out, out
    for command in ("rf", "summary"):
        res = run(command, str(path), "--format", "json")
        assert res.exit_code == 0
        json.loads(res.stdout)


def test_whole_numbers_stay_ints():
    rf = one("conv_transpose: {out: 4, k: 2, s: 2}", "[3, 8, 8]").rf
    assert rf.jump == (Fraction(1, 2),) * 2
    rf = analyze_text(SPEC.replace("s: 3}", "s: 2}")).layers[1].rf
    assert rf.jump == (1, 1) and type(rf.jump[0]) is int
    assert math.isclose(float(rf.start[0]), float(Fraction(rf.start[0])))
