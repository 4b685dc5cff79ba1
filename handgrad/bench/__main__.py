"""``python -m handgrad.bench``: the benchmark (see ``handgrad.bench``)."""

import argparse
import json
import time
from pathlib import Path

import torch

from handgrad import bench
from handgrad._machine import default_threads
from handgrad.bench.timing import machine

ROOT = Path(__file__).resolve().parents[2]

# What each mode runs: repetition pairs, seconds per timed sample, and how much of each epoch-long job.
MODES = {
    "full": dict(repeats=30, sample_s=0.05, data_repeats=3, data_fraction=1.0, recipe_epochs=None,
                 process_warmup=1, process_repeats=3, process_epochs=3, recipe_epochs_train_py=3,
                 train_py_repeats=2),
    "quick": dict(repeats=6, sample_s=0.01, data_repeats=1, data_fraction=0.1, recipe_epochs=1,
                  process_warmup=0, process_repeats=1, process_epochs=1, recipe_epochs_train_py=2,
                  train_py_repeats=1),
}


def _sections():
    """Section number -> (name, run(device, mode, args)); the training sections import Lightning."""
    from handgrad.bench import ops

    def training(name):
        def run(device, mode, args):
            from handgrad.bench import training as t
            return getattr(t, name)(device, mode, Path(args.data_dir))
        return run

    def training_no_data(name):
        def run(device, mode, args):
            from handgrad.bench import training as t
            return getattr(t, name)(device, mode)
        return run

    return {
        1: ("ops", lambda device, mode, args: ops.bench_ops(device, mode, args.op)),
        2: ("training_step", training_no_data("bench_training_step")),
        3: ("saved_bytes", training_no_data("bench_saved_bytes")),
        4: ("data_path", training("bench_data")),
        5: ("time_to_accuracy", training("bench_time_to_accuracy")),
        6: ("whole_process", training("bench_whole_process")),
        7: ("train_py", training("bench_train_py")),
        8: ("compiled_step", training_no_data("bench_compiled_step")),
        9: ("fast_forms", lambda device, mode, args: ops.bench_fast_forms(device, mode)),
        10: ("transformer", lambda device, mode, args: _transformer(device, mode)),
        11: ("models", lambda device, mode, args: _models(device, mode)),
        12: ("gpt", lambda device, mode, args: _gpt(device, mode, args.nanogpt)),
    }


def _gpt(device, mode, nanogpt):
    from handgrad.bench.gpt import bench_gpt
    return bench_gpt(device, mode, nanogpt)


def _models(device, mode):
    from handgrad.bench.models import bench_models
    return bench_models(device, mode)


def _transformer(device, mode):
    from handgrad.bench.transformer import bench_transformer
    return bench_transformer(device, mode)


# What each section measures, and how long it took in full mode on a quiet 2-core CPU (docs/benchmarks.md).
SECTION_HELP = {
    1: ("each op's forward + backward against its built-in, at the sizes the test database declares", 230),
    2: ("one training step of the seed's networks, the CNN and the ViT, hand against built-in", 60),
    3: ("bytes kept for backward per training step", 1),
    4: ("one epoch of train.py's data path against the seed's DataLoader", 30),
    5: ("the default recipe's training seconds to 83 % and 88 % test accuracy", 75),
    6: ("the whole process of train.py's seed quickstart against the seed's own code", 220),
    7: ("train.py's training seconds per epoch, hand against torch, three recipes", 340),
    8: ("section 2's step compiled with --model.compile, both sides", 75),
    9: ("each derivation's faster form against its readable reference", 130),
    10: ("a small ViT's layers and training step; the fused language-model head's peak memory", 60),
    11: ("a converted resnet18's training step, with and without the interception of its own calls", 30),
    12: ("a GPT's training step, bytes kept and peak memory, hand plain and lean against built-in, two sizes, eager and "
         "compiled; Hugging Face's GPT-2 and Llama compiled, bytes kept", 400),
}


def _epilog(sections):
    lines = ["sections (seconds in full mode on a quiet 2-core CPU; --quick takes a fraction):"]
    lines += [f"  {n}. {name}: {SECTION_HELP[n][0]} (~{SECTION_HELP[n][1]} s)" for n, (name, _) in sections.items()]
    return "\n".join(lines) + "\nsee handgrad/bench/__init__.py and docs/benchmarks.md for the details"


def parse_args(argv=None):
    sections = _sections()
    parser = argparse.ArgumentParser(prog="python -m handgrad.bench", description=bench.__doc__.splitlines()[0],
                                     epilog=_epilog(sections), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="shorten every section (a minute or two in all)")
    parser.add_argument("--sections", default=",".join(map(str, sections)), help="comma-separated, e.g. 1,2,5")
    parser.add_argument("--op", action="append", help="section 1: only this op (repeatable)")
    parser.add_argument("--json", default="bench.json", help="where to write every number")
    parser.add_argument("--data-dir", default=str(ROOT / "data"), help="the root holding FashionMNIST/raw/")
    parser.add_argument("--nanogpt", default=None,
                        help="section 12: also measure nanoGPT's own model.py from this checkout of karpathy/nanoGPT")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch's kernels (default: the cores other work leaves free, at least 1)")
    args = parser.parse_args(argv)
    names = {s.strip() for s in args.sections.split(",")}
    unknown = sorted(names - {str(n) for n in sections})
    if unknown:
        parser.error(f"--sections: no section {', '.join(unknown)}; choose from {sorted(sections)}")
    args.sections = sorted(int(s) for s in names)
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads: at least 1, got {args.threads}")
    if args.nanogpt is not None and not (Path(args.nanogpt) / "model.py").is_file():
        parser.error(f"--nanogpt {args.nanogpt}: no model.py there (a checkout of karpathy/nanoGPT)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    from handgrad.ops import OPS

    for name in args.op or []:
        if name not in OPS:
            parser.error(f"--op {name}: no such op; choose from {', '.join(OPS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads or default_threads())
    sections = _sections()
    device = torch.device(args.device)
    mode_name = "quick" if args.quick else "full"
    mode = MODES[mode_name]
    report = {"machine": machine(device), "mode": mode_name, "settings": mode, "sections": {}, "section_s": {}}
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in report["machine"].items() if v is not None))
    print(f"Mode: {mode_name}, sections {args.sections}; times are medians, ratios medians of per-pair ratios")
    start = time.perf_counter()
    for number in args.sections:
        name, run = sections[number]
        section_start = time.perf_counter()
        report["sections"][name] = run(device, mode, args)
        report["section_s"][name] = seconds = time.perf_counter() - section_start
        print(f"(section {number} took {seconds:.0f} s)")
    report["total_s"] = time.perf_counter() - start
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nAll numbers written to {args.json} ({report['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
