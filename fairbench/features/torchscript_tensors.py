"""Read the tensors of a TorchScript archive without running anything in it.

A TorchScript archive (`torch.jit.save`, e.g. OpenAI's CLIP `RN50.pt`) is a zip: `<name>/data.pkl` pickles the
module tree, `<name>/data/<key>` hold the raw bytes of each tensor storage, `<name>/code/` the TorchScript
source. `torch.jit.load` compiles and runs that code and unpickles `data.pkl`; `torch.load(..., weights_only=True)`
refuses TorchScript archives outright. Neither is acceptable for a foreign file, so this module reads `data.pkl`
as data: `pickletools.genops` decodes its opcodes (pure parsing) and a small stack machine interprets a fixed
set of them. No global is ever imported or called: a GLOBAL becomes an inert name, NEWOBJ/REDUCE/BUILD build
inert records, and only two names are materialised: `torch._utils._rebuild_tensor_v2` (a strided view of a
storage read from the zip, with bounds checked) and `collections.OrderedDict()` (an empty dict). An opcode
outside the set, or a storage record that is not a plain dtype, is refused with a FairbenchError. The code
directory is never read.
"""

from __future__ import annotations

import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fairbench.errors import FairbenchError

_STORAGE_DTYPES = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class _Name:
    """A GLOBAL: only its dotted name is kept."""

    module: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class _Record:
    """An object the pickle would construct (NEWOBJ/REDUCE), kept as its class name, arguments and state."""

    cls: str
    args: tuple
    state: Any = None


@dataclass(frozen=True)
class _Mark:
    pass


@dataclass
class _Storages:
    archive: zipfile.ZipFile
    prefix: str
    cache: dict[str, torch.Tensor] = field(default_factory=dict)

    def get(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Name)):
            raise FairbenchError(f"unexpected persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if kind.module != "torch" or kind.name not in _STORAGE_DTYPES or not isinstance(key, str) or not key.isdigit():
            raise FairbenchError(f"unsupported storage {kind.dotted} {key!r:.20}")
        if key not in self.cache:
            dtype = _STORAGE_DTYPES[kind.name]
            raw = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
            itemsize = torch.empty(0, dtype=dtype).element_size()
            if not isinstance(numel, int) or len(raw) != numel * itemsize:
                raise FairbenchError(f"storage {key}: {len(raw)} bytes, expected {numel} x {itemsize}")
            self.cache[key] = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        return self.cache[key]


def _rebuild_tensor(args: tuple) -> torch.Tensor:
    if len(args) < 4 or not isinstance(args[0], torch.Tensor):
        raise FairbenchError("malformed tensor record")
    storage, offset, size, stride = args[:4]
    if not (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(isinstance(v, int) for v in (*size, *stride))):
        raise FairbenchError("malformed tensor record")
    if any(v < 0 for v in (offset, *size, *stride)):
        raise FairbenchError("negative size, stride or offset in a tensor record")
    last = offset + sum((s - 1) * t for s, t in zip(size, stride)) if all(size) else offset - 1
    if last >= storage.numel():
        raise FairbenchError(f"tensor record reaches element {last} of a storage of {storage.numel()}")
    return storage.as_strided(tuple(size), tuple(stride), offset)


def _split_mark(stack: list) -> list:
    for i in range(len(stack) - 1, -1, -1):
        if isinstance(stack[i], _Mark):
            items = stack[i + 1 :]
            del stack[i:]
            return items
    raise FairbenchError("pickle MARK missing")


def _interpret(data: bytes, storages: _Storages) -> Any:
    """The object `data.pkl` describes, with tensors materialised and everything else inert."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise FairbenchError("pickle ended with a malformed stack")
            return stack[0]
        if name == "MARK":
            stack.append(_Mark())
        elif name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BININT", "BININT1", "BININT2", "LONG1",
                      "BINFLOAT", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            stack.append(arg)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = tuple(stack[-n:])
            del stack[-n:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(_split_mark(stack)))
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "LIST":
            stack.append(list(_split_mark(stack)))
        elif name == "APPEND":
            value = stack.pop()
            _expect(stack[-1], list).append(value)
        elif name == "APPENDS":
            items = _split_mark(stack)
            _expect(stack[-1], list).extend(items)
        elif name == "EMPTY_DICT":
            stack.append({})
        elif name == "DICT":
            items = _split_mark(stack)
            stack.append(_pairs({}, items))
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            _pairs(_expect(stack[-1], dict), [key, value])
        elif name == "SETITEMS":
            items = _split_mark(stack)
            _pairs(_expect(stack[-1], dict), items)
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            if arg not in memo:
                raise FairbenchError(f"pickle memo {arg} read before it is written")
            stack.append(memo[arg])
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            stack.append(_Name(module, attr))
        elif name == "BINPERSID":
            stack.append(storages.get(stack.pop()))
        elif name == "NEWOBJ":
            args, cls = stack.pop(), stack.pop()
            stack.append(_Record(_expect(cls, _Name).dotted, tuple(args)))
        elif name == "REDUCE":
            args, fn = stack.pop(), stack.pop()
            stack.append(_reduce(_expect(fn, _Name), _expect(args, tuple)))
        elif name == "BUILD":
            state = stack.pop()
            _expect(stack[-1], _Record).state = state
        else:
            raise FairbenchError(f"unsupported pickle opcode {name}")
    raise FairbenchError("pickle has no STOP")


def _reduce(fn: _Name, args: tuple) -> Any:
    if fn.dotted == "torch._utils._rebuild_tensor_v2":
        return _rebuild_tensor(args)
    if fn.dotted == "collections.OrderedDict" and args == ():
        return {}
    return _Record(fn.dotted, args)


def _expect(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise FairbenchError(f"malformed pickle: expected {kind.__name__}, found {type(value).__name__}")
    return value


def _pairs(target: dict, items: list) -> dict:
    if len(items) % 2:
        raise FairbenchError("malformed pickle: odd number of dict items")
    for key, value in zip(items[::2], items[1::2]):
        if not isinstance(key, (str, int, float, bool, type(None), tuple)):
            raise FairbenchError(f"malformed pickle: dict key of type {type(key).__name__}")
        target[key] = value
    return target


def _archive_prefix(archive: zipfile.ZipFile, path: Path) -> str:
    prefixes = {n[: -len("/data.pkl")] for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1}
    if len(prefixes) != 1:
        raise FairbenchError(f"{path}: not a TorchScript archive (expected one <name>/data.pkl)")
    return prefixes.pop()


def torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of the archive's module tree by dotted name (`visual.conv1.weight`): the
    parameters and buffers (what `torch.jit.load(path).state_dict()` gives) plus any plain tensor attributes
    (e.g. an attention mask). Tensors keep the archive's dtype. Refuses with a FairbenchError anything else."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            names = set(archive.namelist())
            if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
                raise FairbenchError(f"{path}: big-endian TorchScript archives are not supported")
            root = _interpret(archive.read(f"{prefix}/data.pkl"), _Storages(archive, prefix))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, RuntimeError) as exc:
        raise FairbenchError(f"{path}: cannot read the TorchScript archive ({exc})") from None
    except FairbenchError as exc:
        raise FairbenchError(f"{path}: {exc}") from None
    out: dict[str, torch.Tensor] = {}
    _collect(root, "", out, [])
    if not out:
        raise FairbenchError(f"{path}: the TorchScript archive holds no tensors")
    return out


def _collect(node: Any, prefix: str, out: dict[str, torch.Tensor], ancestors: list[int]) -> None:
    """Walk module records (`__torch__.*` objects whose state is an attribute dict) depth-first; a module
    shared by two parents is listed under both names, as `state_dict()` does; a cycle is not followed."""
    if isinstance(node, torch.Tensor):
        out[prefix.rstrip(".")] = node
        return
    if not isinstance(node, _Record) or not isinstance(node.state, dict) or id(node) in ancestors:
        return
    ancestors.append(id(node))
    for key, value in node.state.items():
        if isinstance(key, str):
            _collect(value, f"{prefix}{key}.", out, ancestors)
    ancestors.pop()
