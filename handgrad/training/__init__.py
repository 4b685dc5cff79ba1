"""The training application: the seed's networks, Fashion-MNIST, Lightning and ``train.py``'s CLI.

Kept apart from the library: ``import handgrad`` never imports Lightning, torchvision's datasets,
matplotlib or jsonargparse; this subpackage needs the ``train`` extra (``pip install "handgrad[train]"``,
which ``[dev]`` includes).

- ``models``: the seed's three 784-512-512-10 networks, from handgrad or torch.nn layers;
- ``data``: Fashion-MNIST as a LightningDataModule that keeps the whole set on the training device;
- ``lit``: the LightningModule (loss, optimiser, schedule, torchmetrics);
- ``callbacks``: the run report (results.json, learning curve) and atomic checkpoints;
- ``cli``: the LightningCLI that ``train.py`` runs.
"""
