"""Train the seed's networks on Fashion-MNIST with hand-derived gradients, then test them.

    python train.py                                     # the default recipe: better network, hand gradients
    python train.py --config configs/seed_basic.yaml    # one of the seed's own experiments
    python train.py --model.impl torch                  # the same run on torch.nn's built-ins
    python train.py --ckpt_path last                    # resume the newest run under runs/
    python train.py --help                              # every option (all of Lightning's Trainer too)

Each run writes runs/version_<N>/: checkpoints, metrics.csv, results.json, learning_curve.png and
per_class_accuracy.md.
"""

from handgrad.training.cli import main

if __name__ == "__main__":
    main()
