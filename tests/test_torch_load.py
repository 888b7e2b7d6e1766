"""Loading torchvision models: nothing downloaded, the network blocked, the published
architecture (as the default weights build it, without them) at the published input."""

import socket
import sys
import time
import urllib.request

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from cnnstat.errors import CnnstatError  # noqa: E402
from cnnstat.torch.analysis import analyze, import_graph  # noqa: E402
from cnnstat.torch.load import default_input, instantiate, offline  # noqa: E402


def test_tests_run_offline():
    # tests/conftest.py: an internet connection fails at once, whatever the test does
    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("192.0.2.1", 80), timeout=5)


class Downloads(nn.Module):
    """A constructor that fetches its weights."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        torch.hub.load_state_dict_from_url("https://example.com/weights.pth")


class Opens(nn.Module):
    def __init__(self):
        super().__init__()
        urllib.request.urlopen("https://example.com/config.json")


class Connects(nn.Module):
    def __init__(self):
        super().__init__()
        socket.create_connection(("example.com", 443))


@pytest.mark.parametrize(
    "cls, what",
    [
        (Downloads, "a download of https://example.com/weights.pth"),
        (Opens, "urlopen"),
        (Connects, "a connection"),
    ],
)
def test_a_network_attempt_is_an_error_naming_the_model(cls, what):
    setattr(sys.modules[__name__], cls.__name__, cls)
    start = time.perf_counter()
    with pytest.raises(CnnstatError) as info:
        instantiate(f"{__name__}:{cls.__name__}")
    assert time.perf_counter() - start < 5  # at once, not a timeout
    text = str(info.value)
    assert text.startswith(f"'{__name__}:{cls.__name__}' tried to reach the network ({what}")
    assert "cnnstat never downloads" in text


def test_the_network_is_blocked_while_tracing_too():
    class Fetches(nn.Module):
        def forward(self, x):
            urllib.request.urlopen("https://example.com/")
            return x

    with pytest.raises(CnnstatError, match="'Fetches' tried to reach the network"):
        import_graph(Fetches(), input=(3, 8, 8))


def test_offline_restores_the_network_functions():
    before = (socket.socket.connect, socket.create_connection, urllib.request.urlopen)
    with offline("x"):
        assert socket.create_connection is not before[1]
    assert (socket.socket.connect, socket.create_connection, urllib.request.urlopen) == before
    assert "connect" not in vars(socket.socket) or socket.socket.connect is before[0]


@pytest.mark.parametrize(
    "name, shape",
    [
        ("resnet50", (3, 224, 224)),
        ("inception_v3", (3, 299, 299)),
        ("efficientnet_b3", (3, 300, 300)),
        ("vit_h_14", (3, 518, 518)),
        ("fcn_resnet50", (3, 520, 520)),
        ("lraspp_mobilenet_v3_large", (3, 520, 520)),
        ("r3d_18", (3, 16, 112, 112)),
        ("s3d", (3, 16, 224, 224)),
        ("swin3d_t", (3, 16, 224, 224)),
        ("fasterrcnn_resnet50_fpn", (3, 800, 800)),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", (3, 320, 320)),
        ("ssd300_vgg16", (3, 300, 300)),
    ],
)
def test_default_inputs_are_the_published_ones(name, shape):
    model = f"torchvision:{name}"
    assert default_input(model, instantiate(model)) == shape


@pytest.mark.parametrize(
    "name, params",
    [
        # the segmentation weights keep the auxiliary head
        ("fcn_resnet50", 35_322_218),
        ("deeplabv3_mobilenet_v3_large", 11_029_328),
        # ViT-H/14's published weights are at 518: its position embedding is sized by it
        ("vit_h_14", 633_470_440),
        # detection backbones under published weights use frozen batch norm (buffers, not parameters)
        ("fasterrcnn_resnet50_fpn", 41_755_286),
        ("fasterrcnn_mobilenet_v3_large_fpn", 19_386_354),
        ("keypointrcnn_resnet50_fpn", 59_137_258),
        ("googlenet", 6_624_904),
    ],
)
def test_torchvision_models_are_built_as_their_weights_describe(name, params):
    module = instantiate(f"torchvision:{name}")
    assert all(p.device.type == "meta" for p in module.parameters())  # no weights, no memory
    assert sum(p.numel() for p in module.parameters()) == params


def test_kwargs_the_weights_do_not_allow_build_the_plain_architecture():
    module = instantiate("torchvision:fasterrcnn_mobilenet_v3_large_fpn", {"num_classes": 5})
    assert module.roi_heads.box_predictor.cls_score.out_features == 5
    assert isinstance(module.backbone.body["0"][1], nn.BatchNorm2d)  # trained from scratch: plain BN


@pytest.mark.parametrize(
    "name, message",
    [
        ("raft_small", "'torchvision:raft_small': optical flow models take two images"),
        ("quantized_resnet50", "'torchvision:quantized_resnet50': quantized models run integer kernels"),
    ],
)
def test_unsupported_families_say_so(name, message):
    with pytest.raises(CnnstatError) as info:
        analyze(f"torchvision:{name}")
    assert str(info.value).startswith(message)


def test_a_video_model_runs_at_its_clip():
    a = analyze("torchvision:r3d_18")
    assert a.graph.input == (3, 16, 112, 112)
    assert a.complete and a.totals()["params"] == 33_371_472
    assert round(a.totals()["macs"] / 1e9, 3) == 40.697  # torchvision's _ops
    # --resolution keeps the clip length
    b = analyze("torchvision:r3d_18", resolution="64x48")
    assert b.graph.input == (3, 16, 48, 64)


def test_a_malformed_input_shape_is_an_error():
    with pytest.raises(CnnstatError, match="the input must be positive sizes"):
        import_graph(nn.Conv2d(3, 4, 3), input=(3, (4, 4), 4))


def test_a_forward_stopped_by_a_data_dependent_op_keeps_what_ran():
    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Conv2d(3, 8, 3)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            y = self.backbone(x)
            keep = torch.nonzero(y.flatten() > 0)  # its size depends on the values
            return self.head(y.flatten(1)[:, : keep.shape[0]])

    a = analyze(Detector(), input=(3, 10, 10))
    assert a.graph.stopped.startswith("NotImplementedError")
    assert a.totals()["params"] == 3 * 8 * 9 + 8 + 8 * 4 + 4  # every parameter counted
    assert a.totals()["macs"] == 8 * 8 * 3 * 9 * 8  # what ran before the stop
    assert not a.complete
    unreached = [la for la in a.layers if la.name == "head"]
    assert unreached and unreached[0].unknown.startswith("not reached")
    assert a.graph.not_executed == {}


def test_a_constructor_that_computes_with_tensors_still_allocates_no_weights():
    # RegNet computes its block widths with torch ops (.tolist()): it cannot run on meta, so it
    # runs on the CPU with each parameter moved to meta as it is registered
    start = time.perf_counter()
    module = instantiate("torchvision:regnet_y_128gf")
    assert time.perf_counter() - start < 10  # not 644M parameters initialised on the CPU
    assert all(p.device.type == "meta" for p in module.parameters())
    assert sum(p.numel() for p in module.parameters()) == 644_812_894
