"""fastcnn.runs -- whole training runs: the presets (the book's rows and the Keras
models, presets.py), one run with checkpoints and resumption (training_run.py),
the chapter's table (reproduce.py), and many runs as Dask tasks: reproduce on a
cluster and sweeps over settings and seeds (cluster.py)."""
