"""Hand-derived gradients vs PyTorch's built-ins, measured side by side in one process.

    python -m handgrad.bench                         # the real measurement (several minutes)
    python -m handgrad.bench --quick                 # every section shortened: a minute or two
    python -m handgrad.bench --sections 1,3 --device cpu --json cpu.json

Sections:

1. each op's forward + backward at the sizes it declares in the registry, ``handgrad.functional``
   vs its torch built-in (``bench.ops``);
2. one training step (zero_grad, forward, cross-entropy, backward, SGD step) of each seed network,
   of the CNN (batch 128, dropout 0.3) and of the ViT (batch 128), ``models.build(net, "hand")`` (and, "unfused", the
   quickstart's handgrad modules in a plain ``torch.nn.Sequential``; "Function only", the fused
   Function applied directly, to measure the way to it; "bare Function", the floor of a Python
   Function: the built-in's kernels and nothing else, ``training.BareQuickstart``) vs
   ``models.build(net, "torch")`` holding identical weights, each row's loss and gradients checked
   equal to the built-in's before it is timed;
3. bytes kept for backward per training step: the unique storages that autograd saves (parameters
   excluded), seen through ``torch.autograd.graph.saved_tensors_hooks``;
4. one epoch of train.py's data path (``TensorBatches`` over tensors on the device) vs the seed's
   ``DataLoader(FashionMNIST(transform=ToTensor()), batch_size=64)``, iteration only;
5. training seconds to 83 % and 88 % test accuracy with the default recipe (better network, Adam
   1e-3, cosine per step, batch 128, normalised input), evaluation every quarter epoch not counted;
6. whole-process wall time of ``train.py`` with the seed's quickstart config vs the seed's own
   quickstart code (``benchmarks/seed_quickstart.py``), both as subprocesses;
7. train.py's own training seconds per epoch (results.json) with ``--model.impl hand`` vs
   ``--model.impl torch``, for the seed's quickstart recipe, the default recipe and the CNN's.
8. section 2's step with ``--model.compile`` (``reduce-overhead``, CUDA graphs, on CUDA;
   ``default`` on the CPU), both sides compiled and eager: quickstart at batch 64 and 1024, the
   default recipe's network at batch 128, with each side's compile time;
9. each derivation's faster form against its readable reference (``reference_forms()``), forward +
   backward of every op whose bench case takes it (``bench.ops``): what each faster form earns;
10. a small vision transformer at its sizes (batch 128, 50 tokens, width 128, 4 heads): forward +
   backward of layer norm, GELU, softmax, attention and multi-head attention, the training step of
   torchvision's ``VisionTransformer`` converted against the built-in, and the peak memory of the
   language-model head fused with its loss (N 4096, d 256, V 32768) against torch's two paths, each
   in its own process (``bench.transformer``).

12. a character-level GPT (``handgrad.training.gpt``) at nanoGPT's CPU recipe and at nanoGPT's GPU
   recipe's shape: bytes kept for backward, training step time and peak resident memory of a step,
   hand plain and hand lean against the built-in (``bench.gpt``); with ``--nanogpt PATH``, nanoGPT's own
   ``model.py`` too.

Sections 2 to 8 (``bench.training``) and 10 need the ``train`` extra; the timing harness is ``bench.timing``.

Timed comparisons alternate hand and built-in repetitions (swapping which goes first), after a
warm-up, and report the median time of each and the median of the per-pair ratios hand / built-in,
so that a machine slowing down or speeding up mid-run hits both sides alike. Section 5 trains both
runs interleaved, a quarter epoch at a time, for the same reason. On CUDA, times come from CUDA
events followed by a synchronize; on the CPU from ``time.perf_counter``. Every number, raw
samples included, is written to the JSON file.
"""
