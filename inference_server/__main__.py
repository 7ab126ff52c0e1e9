"""python -m inference_server --base-model-dir DIR --base-model-name NAME [options]

The token callers must send comes from STUDIO_INFERENCE_TOKEN or STUDIO_INFERENCE_TOKEN_FILE (auth.py)."""
from __future__ import annotations

import argparse
import logging
import sys

import inference_server  # noqa: F401  (sets OMP_WAIT_POLICY before torch is imported)


def _adapter(value: str) -> tuple[str, str]:
    adapter_id, sep, path = value.partition("=")
    if not sep or not adapter_id or not path:
        raise argparse.ArgumentTypeError(f"expected ID=PATH, got {value!r}")
    return adapter_id, path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m inference_server",
        description="Serve one base model plus LoRA adapters over Hugging Face TGI's HTTP protocol.")
    parser.add_argument("--base-model-dir", required=True, help="directory of the base model (safetensors + tokenizer)")
    parser.add_argument("--base-model-name", required=True,
                        help="the base model's name: /info model_id, and what adapters' studio_adapter.json must name")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--adapters-dir", default=None,
                        help="directory whose subdirectories hold adapters (with studio_adapter.json); "
                             "rescanned when a request names an adapter id that is not loaded")
    parser.add_argument("--adapter", dest="adapters", action="append", type=_adapter, default=[],
                        metavar="ID=PATH", help="an adapter to load at start (repeatable), like TGI's LORA_ADAPTERS")
    parser.add_argument("--max-concurrent-requests", type=int, default=32,
                        help="requests in flight at once; one more is refused with TGI's 429 overloaded error")
    parser.add_argument("--max-batch-size", type=int, default=16,
                        help="requests decoding together in one batch (any mix of adapters); more wait in a queue")
    parser.add_argument("--max-new-tokens-limit", type=int, default=1024)
    parser.add_argument("--max-input-tokens", type=int, default=None,
                        help="default: max total tokens - 1")
    parser.add_argument("--max-total-tokens", type=int, default=None,
                        help="default: the model's max_position_embeddings")
    parser.add_argument("--max-stop-sequences", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="PyTorch's intra-op CPU threads (torch.set_num_threads); default: PyTorch's own choice")
    parser.add_argument("--decode-threads", type=int, default=None,
                        help="PyTorch threads for decode steps (prefills use --num-threads); default: 1 on a CPU "
                             "where PyTorch uses at most 2 threads, else the same as prefills; 0: the same")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn
    from transformers.utils import logging as hf_logging

    from inference_server.app import create_app
    from inference_server.auth import token_from_environment

    hf_logging.disable_progress_bar()
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    try:
        token = token_from_environment()
        app = create_app(args.base_model_dir, args.base_model_name, args.adapters_dir, dict(args.adapters), token=token,
                         max_concurrent_requests=args.max_concurrent_requests,
                         max_new_tokens_limit=args.max_new_tokens_limit, max_input_tokens=args.max_input_tokens,
                         max_total_tokens=args.max_total_tokens, max_stop_sequences=args.max_stop_sequences,
                         device=args.device, dtype=args.dtype, max_batch_size=args.max_batch_size,
                         decode_threads=args.decode_threads)
    except (OSError, ValueError) as exc:
        print(f"inference_server: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. a static adapter that does not load
        print(f"inference_server: {type(exc).__name__}: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":
    sys.exit(main())
