"""MODEL references -> ``nn.Module``: ``package.module:attr``, ``path/to/file.py:attr`` and
``torchvision:NAME``. Importing a module runs its code.

Factories and classes are called under ``torch.device('meta')`` so that no weights are
allocated; a constructor that cannot run there (one that reads tensor values) is called again
on the CPU. Errors are :class:`~cnnstat.errors.CnnstatError` with one message.

Nothing is ever downloaded: while a model is built and traced the network is blocked
(:func:`offline`), so a constructor that tries to fetch weights fails at once, naming the
model. ``torchvision:NAME`` builds the network torchvision's default weights describe (their
``num_classes``, auxiliary heads, image size, frozen batch norm) with none of the weights
loaded (:func:`torchvision_factory`).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import importlib
import importlib.util
import os
import sys
import warnings

from cnnstat.errors import CnnstatError, did_you_mean

TORCHVISION = "torchvision"
# torchvision's published figures describe the networks its default weights build (GoogLeNet
# without its auxiliary heads, Inception v3 with them, the segmentation models' auxiliary
# heads, ViT-H/14 at 518, detection backbones with frozen batch norm): built so, without the
# weights. Their weights also set ``transform_input``, a per-channel affine remap of the input
# (0 MACs, no parameters) that is left out.
TORCHVISION_DEFAULTS = {"googlenet": {"transform_input": False}, "inception_v3": {"transform_input": False}}
# Model families cnnstat does not import: two-image inputs, quantized integer kernels.
TORCHVISION_UNSUPPORTED = {
    "optical_flow": "optical flow models take two images; cnnstat imports models of one input",
    "quantization": "quantized models run integer kernels cnnstat does not count; "
    "analyze the float model (without the quantized_ prefix)",
}
VIDEO_FRAMES = 16  # the clip length torchvision's video figures are for (3 x 16 x H x W)


class NetworkBlocked(CnnstatError):
    """A model tried to reach the network while cnnstat built or traced it."""


@contextlib.contextmanager
def offline(display: str):
    """Block the network while ``display`` is built and traced: opening a connection (socket,
    urllib, torch.hub's downloads) raises :class:`NetworkBlocked` naming the model, at once."""
    import socket
    import urllib.request

    def refuse(what):
        def fail(*args, **kwargs):
            target = next((a for a in args if isinstance(a, (str, tuple))), "")
            shown = target if isinstance(target, str) else ":".join(map(str, target))
            raise NetworkBlocked(
                f"'{display}' tried to reach the network ({what}{' ' + shown if shown else ''}): "
                "cnnstat never downloads; counting needs no weights"
            )

        return fail

    patches = [
        (socket.socket, "connect", refuse("socket.connect")),
        (socket.socket, "connect_ex", refuse("socket.connect")),
        (socket, "create_connection", refuse("a connection to")),
        (urllib.request, "urlopen", refuse("urlopen")),
    ]
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        patches += [
            (hub, "download_url_to_file", refuse("a download of")),
            (hub, "load_state_dict_from_url", refuse("a download of")),
        ]
    missing = object()
    saved = [(obj, name, vars(obj).get(name, missing)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            if value is missing:  # inherited (socket.socket.connect): drop the override
                delattr(obj, name)
            else:
                setattr(obj, name, value)


class _NoWeights(dict):
    """What a torchvision weights enum returns while cnnstat builds a model: no tensors."""


@contextlib.contextmanager
def _weights_not_loaded():
    """torchvision builders called with weights build the network those weights describe and
    then load them: here the load is skipped (nothing is fetched, nothing is read)."""
    from torch import nn
    from torchvision.models._api import WeightsEnum

    get, load = WeightsEnum.get_state_dict, nn.Module.load_state_dict

    def get_state_dict(self, *args, **kwargs):
        return _NoWeights()

    def load_state_dict(self, state_dict, *args, **kwargs):
        if isinstance(state_dict, _NoWeights):
            return nn.modules.module._IncompatibleKeys([], [])
        return load(self, state_dict, *args, **kwargs)

    WeightsEnum.get_state_dict, nn.Module.load_state_dict = get_state_dict, load_state_dict
    try:
        yield
    finally:
        WeightsEnum.get_state_dict, nn.Module.load_state_dict = get, load


def torchvision_factory(name: str):
    """A factory for torchvision's model ``name``: the network its default weights describe,
    built without them (``weights=DEFAULT`` with the load skipped); where ``kwargs`` conflict
    with those weights (another ``num_classes``), the plain architecture (``weights=None``,
    ``weights_backbone=None``)."""
    import inspect

    import torchvision.models

    builder = torchvision.models.get_model_builder(name)
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError):
        weights = None
    plain = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        plain["weights_backbone"] = None

    def build(**kwargs):
        if weights is not None:
            try:
                with _weights_not_loaded():
                    return builder(weights=weights, **kwargs)
            except ValueError as exc:  # kwargs the weights do not allow: the plain network
                if "expected value" not in str(exc):
                    raise
        return builder(**plain, **kwargs)

    return build


def torchvision_family(name: str) -> str:
    """'classification', 'segmentation', 'video', 'detection', 'optical_flow' or 'quantization'."""
    import torchvision.models

    for family in ("segmentation", "video", "detection", "optical_flow", "quantization"):
        if name in torchvision.models.list_models(module=getattr(torchvision.models, family)):
            return family
    return "classification"


def is_reference(model: str) -> bool:
    """``module:attr`` rather than a zoo name or a spec file."""
    return ":" in model and not os.path.exists(model) and not model.endswith((".yaml", ".yml"))


def parse_kwargs(text: str | None) -> dict:
    """``'num_classes=10, aux_logits=False'`` or a JSON object -> dict (Python literals; a bare
    word is a string)."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        import json

        try:
            value = json.loads(text)
        except ValueError as exc:
            raise CnnstatError(f"--kwargs: not a JSON object: {exc}") from None
        if not isinstance(value, dict):
            raise CnnstatError("--kwargs: expected a JSON object")
        return value
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        raise CnnstatError(f"--kwargs: malformed '{text}': expected KEY=VALUE[,KEY=VALUE...]") from None
    if call.args or any(k.arg is None for k in call.keywords):
        raise CnnstatError(f"--kwargs: malformed '{text}': expected KEY=VALUE[,KEY=VALUE...]")
    out = {}
    for kw in call.keywords:
        if isinstance(kw.value, ast.Name):
            out[kw.arg] = kw.value.id
            continue
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            raise CnnstatError(f"--kwargs: the value of '{kw.arg}' is not a Python literal") from None
    return out


def _import_file(path: str):
    if not os.path.isfile(path):
        raise CnnstatError(f"no such file: '{path}'")
    name = "cnnstat_user_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so that the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CnnstatError(f"importing '{path}' failed: {_describe(exc)}") from None
    finally:
        sys.path.remove(folder)
    return module


def _import_module(name: str):
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())  # 'mymodels:Net' finds ./mymodels.py, as python -m would
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise CnnstatError(f"cannot import module '{name}': no module named '{exc.name}'") from None
        raise CnnstatError(f"importing '{name}' failed: {_describe(exc)}") from None
    except Exception as exc:
        raise CnnstatError(f"importing '{name}' failed: {_describe(exc)}") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def resolve(model: str):
    """The object a reference names: (object, display name, default kwargs)."""
    where, _, attr = model.rpartition(":")
    if not where or not attr:
        raise CnnstatError(f"malformed module reference '{model}': expected module:attr or file.py:attr")
    if where == TORCHVISION:
        try:
            import torchvision.models
        except ImportError:
            raise CnnstatError("torchvision:NAME needs torchvision: pip install torchvision") from None
        names = torchvision.models.list_models()
        if attr not in names:
            raise CnnstatError(f"torchvision has no model '{attr}'" + did_you_mean(attr, names))
        family = torchvision_family(attr)
        if family in TORCHVISION_UNSUPPORTED:
            raise CnnstatError(f"'{model}': {TORCHVISION_UNSUPPORTED[family]}")
        return torchvision_factory(attr), model, TORCHVISION_DEFAULTS.get(attr, {})
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(where)
    else:
        module = _import_module(where)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            known = [n for n in dir(obj) if not n.startswith("_")]
            raise CnnstatError(f"'{where}' has no attribute '{attr}'" + did_you_mean(part, known))
        obj = getattr(obj, part)
    return obj, model, {}


def instantiate(model: str, kwargs: dict | None = None, device: str = "meta"):
    """The ``nn.Module`` a reference names (eval mode), built on ``device`` where it can be."""
    from torch import nn

    obj, display, defaults = resolve(model)
    kwargs = {**defaults, **(kwargs or {})}
    if isinstance(obj, nn.Module):
        if kwargs and not defaults:
            raise CnnstatError(f"'{display}' is a module instance: --kwargs apply to classes and factories")
        return obj.eval()
    if not callable(obj):
        raise CnnstatError(
            f"'{display}' is a {type(obj).__name__}, not an nn.Module, a module class or a factory"
        )
    module, error = None, None
    # a constructor that cannot run on meta (it computes sizes with tensors, as RegNet's):
    # plain tensors on the CPU but parameters moved to meta as they are made, else the CPU
    tries = (device, "empty", "cpu") if device == "meta" else (device,)
    for where in tries:
        try:
            with warnings.catch_warnings(), _placed(where), offline(display):
                warnings.simplefilter("ignore")
                module = obj(**kwargs)
            break
        except NetworkBlocked:
            raise
        except Exception as exc:
            error = exc
    if module is None:
        raise CnnstatError(f"calling '{display}' failed: {_describe(error)}")
    if not isinstance(module, nn.Module):
        raise CnnstatError(f"'{display}' returned a {type(module).__name__}, not an nn.Module")
    return module.eval()


@contextlib.contextmanager
def _placed(where: str):
    """Build on ``where`` ('meta', 'cpu', ...), or 'empty': on the CPU with every parameter
    moved to meta when its module registers it (its initialisation then runs on meta: no
    time, no memory)."""
    import torch
    from torch import nn

    if where != "empty":
        with torch.device(where):
            yield
        return
    register = nn.Module.register_parameter

    def register_parameter(self, name, param):
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(self, name, param)

    nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def meta_copy(module):
    """``module`` with its parameters and buffers on the meta device: itself when they already
    are, else a copy (the structure is copied, the tensors' storage never is)."""
    import torch
    from torch import nn

    tensors = list(module.parameters()) + list(module.buffers())
    if all(t.device.type == "meta" for t in tensors):
        return module
    memo = {}
    for t in tensors:
        if isinstance(t, nn.Parameter):
            memo[id(t)] = nn.Parameter(torch.empty_like(t, device="meta"), requires_grad=t.requires_grad)
        else:
            memo[id(t)] = torch.empty_like(t, device="meta")
    return copy.deepcopy(module, memo)


def default_input(model: str, module) -> tuple:
    """The input a reference is analyzed at without --input: for torchvision's models the one
    their published figures are for (the crop size of their weights' transforms; segmentation
    at its resize size, 520x520; video clips of 16 frames, 3x16x112x112 or 3x16x224x224;
    detection at the size its transform resizes to, e.g. 800x800), else 224x224 with the
    channels of the first convolution (3 if it has none)."""
    from torch import nn

    where, _, attr = model.rpartition(":")
    size = (224, 224)
    if where == TORCHVISION:
        found = _torchvision_input(attr, module)
        if found is not None:
            return found
        size = _torchvision_size(attr) or size
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            raise CnnstatError(f"'{model}' starts with a 1-D convolution: give --input CxL")
        if isinstance(m, nn.modules.conv._ConvNd):
            return (m.in_channels, *size)
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    return (3, *size)


def _square(v) -> tuple | None:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(int(x) for x in v)
    if isinstance(v, (list, tuple)) and len(v) == 1:
        return (int(v[0]),) * 2
    return None


def _torchvision_size(name: str) -> tuple | None:
    """(H, W) of the crop (or, without one, the resize) of ``name``'s default weights."""
    import torchvision.models

    try:
        keywords = torchvision.models.get_model_weights(name).DEFAULT.transforms.keywords
    except (AttributeError, ValueError, KeyError):
        return None
    return _square(keywords.get("crop_size")) or _square(keywords.get("resize_size"))


def _torchvision_input(name: str, module) -> tuple | None:
    """Video clips (3 x 16 frames x crop) and detection models (the size their transform
    resizes an image to); None for the others (image models: the crop size)."""
    family = torchvision_family(name)
    if family == "video":
        return (3, VIDEO_FRAMES, *(_torchvision_size(name) or (112, 112)))
    if family == "detection":
        transform = getattr(module, "transform", None)
        fixed = getattr(transform, "fixed_size", None)
        if fixed:
            return (3, *_square(tuple(fixed)))
        low = getattr(transform, "min_size", None)
        if low:  # in eval the transform resizes to the last of its sizes
            return (3, *_square(int(low[-1])))
    return None
