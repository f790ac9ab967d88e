"""`fints model info` and `fints bench steering`."""

from __future__ import annotations

import argparse
import json
import sys


def register(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add this package's subcommands to the `fints` parser."""
    info = groups["model"].add_parser("info", help="load a model and print what steering sees, as JSON")
    _model_flags(info)
    info.set_defaults(func=_info)

    bench = groups["bench"].add_parser(
        "steering", help="decode speed steered vs unsteered, and per-row batching (JSON)"
    )
    _model_flags(bench)
    bench.add_argument("--out", required=True, help="directory for bench_steering.json")
    bench.add_argument("--tokens", type=int, default=32, help="tokens generated per run")
    bench.add_argument("--repeats", type=int, default=5, help="interleaved repeats per setting")
    bench.set_defaults(func=_bench)


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        help="local model dir, .gguf file or cached hub name (default: bundled Gemma 3 270M)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="where dequantized GGUF weights are kept ($FINTS_MODEL_CACHE)"
    )


def _info(args: argparse.Namespace) -> int:
    from steering.apply import site_map_of
    from steering.model import ModelNotFoundError, load_model
    from steering.sites import SITE_CHOICES

    try:
        loaded = load_model(args.model, cache_dir=args.cache_dir)
    except ModelNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    sites = site_map_of(loaded)
    print(
        json.dumps(
            {
                "architecture": loaded.architecture,
                "model_type": sites.model_type,
                "model_id": loaded.model_id,
                "num_layers": loaded.num_layers,
                "hidden_size": loaded.hidden_size,
                "sites": list(SITE_CHOICES),
                "site_modules": {"attn": sites.family.attn, "mlp": sites.family.mlp},
                "dtype": str(loaded.dtype).removeprefix("torch."),
                "linear_form": loaded.linear_form,
                "device": str(loaded.device),
                "source": loaded.source,
                "load_seconds": loaded.load_seconds,
            },
            indent=2,
        )
    )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from steering.bench import main

    path = main(args.out, args.model, tokens=args.tokens, repeats=args.repeats)
    print(path.read_text())
    print(f"wrote {path}", file=sys.stderr)
    return 0
