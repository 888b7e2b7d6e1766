"""MODEL references -> ``nn.Module``: ``package.module:attr``, ``path/to/file.py:attr`` and
``torchvision:NAME``. Importing a module runs its code.

Factories and classes are called under ``torch.device('meta')`` so that no weights are
allocated; a constructor that cannot run there (one that reads tensor values) is called again
on the CPU. Errors are :class:`~cnnstat.errors.CnnstatError` with one message.
"""

from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import os
import sys
import warnings

from cnnstat.errors import CnnstatError, did_you_mean

TORCHVISION = "torchvision"
# torchvision's published figures describe the networks its weights build: GoogLeNet without
# its auxiliary heads (the weights builder drops them unless asked); Inception v3 keeps them.
TORCHVISION_DEFAULTS = {"googlenet": {"aux_logits": False}}


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
        return torchvision.models.get_model_builder(attr), model, TORCHVISION_DEFAULTS.get(attr, {})
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
    import torch
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
    for where in dict.fromkeys((device, "cpu")):  # a constructor that cannot run on meta: the CPU
        try:
            with warnings.catch_warnings(), torch.device(where):
                warnings.simplefilter("ignore")
                module = obj(**kwargs)
            break
        except Exception as exc:
            error = exc
    if module is None:
        raise CnnstatError(f"calling '{display}' failed: {_describe(error)}")
    if not isinstance(module, nn.Module):
        raise CnnstatError(f"'{display}' returned a {type(module).__name__}, not an nn.Module")
    return module.eval()


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
    """The input a reference is analyzed at without --input: torchvision's crop size for its
    models, else 224x224 with the channels of the first convolution (3 if it has none)."""
    from torch import nn

    where, _, attr = model.rpartition(":")
    size = 224
    if where == TORCHVISION:
        import torchvision.models

        try:
            transforms = torchvision.models.get_model_weights(attr).DEFAULT.transforms
            size = transforms.keywords.get("crop_size", 224)
        except (AttributeError, ValueError, KeyError):
            pass
    for m in module.modules():
        if isinstance(m, nn.Conv1d):
            raise CnnstatError(f"'{model}' starts with a 1-D convolution: give --input CxL")
        if isinstance(m, nn.modules.conv._ConvNd):
            return (m.in_channels, size, size)
        if isinstance(m, nn.Linear):
            return (m.in_features,)
    return (3, size, size)
