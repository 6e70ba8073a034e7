"""Callbacks and History: early stopping, learning-rate schedules (worked out
here by hand), the best epoch and its test accuracy, continuing a run
(initial_epoch, history, model.history), History through JSON, and fit's
per-epoch evaluations."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from training_cases import _data

import fastcnn
from fastcnn import Sequential, optim
from fastcnn import layers as L
from fastcnn.callbacks import Callback, EarlyStopping, ReduceLROnPlateau, StepLR

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ---------------------------------------------------------------------------
# Callbacks and History

def _tiny(seed=0, lr=0.1):
    model = Sequential([L.Dense(5, activation="tanh"), L.Dense(3, activation="softmax")],
                       input_shape=(4,), seed=seed)
    x, y = _data((4,), 30, 3, seed=seed)
    return model, x.astype(np.float32), y, optim.SGD(lr)


def test_early_stopping_stops():
    model, x, y, opt = _tiny()
    # an improvement must exceed 10 in loss: after the first epoch none does
    h = model.fit(x, y, epochs=20, optimizer=opt, verbose=0,
                  callbacks=[EarlyStopping(monitor="loss", patience=2, min_delta=10)])
    assert h.epochs == 3 < 20
    assert h.stop_reason and "early stopping" in h.stop_reason and "loss" in h.stop_reason
    # no stop while the figure keeps improving
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=4, optimizer=opt, verbose=0,
                  callbacks=[EarlyStopping(monitor="loss", patience=1)])
    assert h.epochs == 4 and h.stop_reason is None


def test_early_stopping_needs_the_figure_it_monitors():
    model, x, y, opt = _tiny()
    with pytest.raises(ValueError, match="val_accuracy"):
        model.fit(x, y, optimizer=opt, verbose=0, callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="monitor"):
        EarlyStopping(monitor="accuracy_val")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)


def test_step_lr():
    model, x, y, opt = _tiny(lr=0.2)
    h = model.fit(x, y, epochs=5, optimizer=opt, verbose=0, callbacks=[StepLR(2, gamma=0.5)])
    # the lr in force during each epoch; it halves after epochs 2 and 4
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.1, 0.1, 0.05])
    assert model.optimizer.lr == pytest.approx(0.05)
    for bad in (dict(step_size=0), dict(step_size=1, gamma=0), dict(step_size=1, gamma=1.5)):
        with pytest.raises(ValueError):
            StepLR(**bad)


def test_reduce_lr_on_plateau():
    model, x, y, opt = _tiny(lr=0.2)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_delta=10)
    h = model.fit(x, y, epochs=6, optimizer=opt, verbose=0, callbacks=[cb])
    # epoch 1 sets the best; 2, 3 do not improve -> halve; 4, 5 -> halve again
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.2, 0.1, 0.1, 0.05])
    model, x, y, opt = _tiny(lr=0.2)
    cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10, min_lr=0.15)
    h = model.fit(x, y, epochs=4, optimizer=opt, verbose=0, callbacks=[cb])
    assert h.history["lr"] == pytest.approx([0.2, 0.2, 0.15, 0.15])   # floored at min_lr
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


def _scripted_evaluate(model, val_x, accuracies, tests):
    """Replace model.evaluate: validation and test accuracies from the lists."""
    calls = {"val": 0, "test": 0}

    def evaluate(x, y, batch_size=1000, loss=None):
        kind = "val" if x is val_x else "test"
        seq = accuracies if kind == "val" else tests
        value = seq[calls[kind]] if kind == "val" else seq[calls["val"] - 1]
        calls[kind] += 1
        return {"loss": 1.0 - value, "accuracy": value}
    model.evaluate = evaluate
    return calls


def test_history_best_epoch_ties_go_to_the_later_epoch():
    model, x, y, opt = _tiny()
    xv, xt = x[:10].copy(), x[10:20].copy()
    val = [0.5, 0.7, 0.6, 0.7, 0.65]
    test = [0.11, 0.22, 0.33, 0.44, 0.55]           # the test figure of each epoch
    calls = _scripted_evaluate(model, xv, val, test)
    h = model.fit(x, y, epochs=5, optimizer=opt, verbose=0, validation_data=(xv, y[:10]),
                  test_data=(xt, y[10:20]))
    assert h.best_epoch == 4 and h.best_val_accuracy == 0.7
    assert h.test_accuracy == 0.44                  # measured at the best epoch, not the last
    assert h.history["val_accuracy"] == val
    assert h.history["test_accuracy"] == [0.11, 0.22, None, 0.44, None]
    assert calls == {"val": 5, "test": 3}           # test evaluated only at new bests
    assert "best_epoch=4" in repr(h)


def test_history_with_test_data_only():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0, test_data=(x[:10], y[:10]))
    assert h.best_epoch == 2 and h.best_val_accuracy is None
    assert h.test_accuracy == model.evaluate(x[:10], y[:10])["accuracy"]
    assert "epochs=2" in repr(h)


# ---------------------------------------------------------------------------
# Continuing a run: initial_epoch, history, model.history

def _dropout_net(seed=4):
    """Shuffling and dropout: both draw from the model's Generator."""
    return Sequential([L.Conv2D(3, 3, activation="relu"), L.MaxPool2D(2), L.Dropout(0.4),
                       L.Dense(6, activation="tanh"), L.Dropout(0.3),
                       L.Dense(3, activation="softmax")], input_shape=(1, 8, 8), seed=seed)


def _same_history(h, ref):
    for k in ref.history:
        if k != "seconds":
            assert h.history[k] == ref.history[k], k
    assert (h.best_epoch, h.best_val_accuracy, h.test_accuracy) == \
        (ref.best_epoch, ref.best_val_accuracy, ref.test_accuracy)


def test_fit_continues_from_initial_epoch_exactly():
    x, y = _data((1, 8, 8), 50, 3)
    x = x.astype(np.float32)
    kw = dict(batch_size=8, verbose=0, validation_data=(x[:20], y[:20]),
              test_data=(x[20:40], y[20:40]))
    ref = _dropout_net()
    ref_iters = []

    class Iterations(Callback):
        def __init__(self, seen):
            self.seen = seen

        def on_batch_begin(self, model, iteration):
            self.seen.append(iteration)
    h_ref = ref.fit(x, y, epochs=5, optimizer=optim.Adam(0.01), callbacks=[Iterations(ref_iters)],
                    **kw)

    model, iters = _dropout_net(), []
    h = model.fit(x, y, epochs=2, optimizer=optim.Adam(0.01), callbacks=[Iterations(iters)],
                  **kw)
    h2 = model.fit(x, y, epochs=5, initial_epoch=2, history=h,
                   callbacks=[Iterations(iters)], **kw)   # optimizer=None: continue Adam
    assert h2 is h and h.epochs == 5
    _same_history(h, h_ref)
    assert iters == ref_iters == list(range(5 * 7))       # mini-batches numbered on
    for (p, _), (q, _) in zip(model.parameters(), ref.parameters()):
        np.testing.assert_array_equal(p, q)

    # a History through JSON (what a checkpoint stores) continues just as well
    model = _dropout_net()
    h = model.fit(x, y, epochs=3, optimizer=optim.Adam(0.01), **kw)
    h = fastcnn.callbacks.History.from_dict(json.loads(json.dumps(h.to_dict())))
    model.fit(x, y, epochs=5, initial_epoch=3, history=h, **kw)
    _same_history(h, h_ref)
    np.testing.assert_array_equal(model.layers[-1].params["w"], ref.layers[-1].params["w"])


def test_fit_with_nothing_left_to_do():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0)
    before = [p.copy() for p, _ in model.parameters()]
    assert model.fit(x, y, epochs=2, initial_epoch=2, history=h, verbose=0) is h
    assert h.epochs == 2 and h.stop_reason is None
    assert all(np.array_equal(p, q) for (p, _), q in zip(model.parameters(), before))


def test_model_history_is_the_history_being_filled():
    model, x, y, opt = _tiny()
    seen = []

    class Look(Callback):
        def on_epoch_end(self, model, epoch, logs):
            seen.append((model.history.epochs, model.history.history["loss"][-1] == logs["loss"]))
    assert model.history is None
    h = model.fit(x, y, epochs=3, optimizer=opt, verbose=0, callbacks=[Look()])
    assert model.history is h and seen == [(1, True), (2, True), (3, True)]


def test_bad_initial_epoch_or_history():
    model, x, y, opt = _tiny()
    h = model.fit(x, y, epochs=2, optimizer=opt, verbose=0)
    for bad, error in ((-1, ValueError), (4, ValueError), (1.0, TypeError), (True, TypeError),
                       ("1", TypeError)):   # a wrong value, or not an integer at all
        with pytest.raises(error, match=re.escape("initial_epoch must be an integer in "
                                                  "[0, epochs] = [0, 3]")):
            model.fit(x, y, epochs=3, initial_epoch=bad, verbose=0)
    with pytest.raises(ValueError, match="history holds 2 epochs, but initial_epoch is 1"):
        model.fit(x, y, epochs=3, initial_epoch=1, history=h, verbose=0)
    with pytest.raises(TypeError, match="history must be a fastcnn History"):
        model.fit(x, y, epochs=3, initial_epoch=2, history=h.history, verbose=0)


def test_history_to_dict_round_trip():
    h = fastcnn.callbacks.History()
    h.history["loss"] = [np.float32(0.5), float("nan")]
    h.history["test_accuracy"] = [0.25, None]
    for k in ("accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        h.history[k] = [np.float64(0.1) / 3, 1 / 7]
    h.best_epoch, h.best_val_accuracy, h.test_accuracy = 2, 1 / 7, np.float64(0.3) / 7
    h.stop_reason = "early stopping"
    back = fastcnn.callbacks.History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.history["loss"][0] == 0.5 and np.isnan(back.history["loss"][1])
    assert back.history["test_accuracy"] == [0.25, None]
    assert back.history["val_loss"] == h.history["val_loss"]        # every bit
    assert (back.best_epoch, back.best_val_accuracy, back.test_accuracy, back.stop_reason) == \
        (2, 1 / 7, np.float64(0.3) / 7, "early stopping")
    assert back.epochs == 2
    for bad in ({}, {"history": []}, {"history": {"loss": [1]}},
                dict(h.to_dict(), history=dict(h.to_dict()["history"], loss=[1.0]))):
        with pytest.raises(ValueError, match="not a History"):
            fastcnn.callbacks.History.from_dict(bad)


def test_fit_evaluates_in_small_batches():
    """fit's per-epoch evaluations run FIT_EVAL_BATCH images at a time (less memory
    than evaluate's 1000); the accuracies are those of evaluate(batch_size=1000)."""
    from fastcnn.network import FIT_EVAL_BATCH
    model = _dropout_net()
    x, y = _data((1, 8, 8), 1100, 3)
    x = x.astype(np.float32)
    sizes, real = [], model.evaluate

    def evaluate(xx, yy, batch_size=1000, loss=None):
        sizes.append(batch_size)
        return real(xx, yy, batch_size=batch_size, loss=loss)
    model.evaluate = evaluate
    h = model.fit(x[:100], y[:100], epochs=1, batch_size=10, verbose=0,
                  validation_data=(x[100:], y[100:]), test_data=(x[:600], y[:600]))
    assert FIT_EVAL_BATCH < 1000 and sizes == [FIT_EVAL_BATCH, FIT_EVAL_BATCH]
    assert h.history["val_accuracy"] == [real(x[100:], y[100:])["accuracy"]]
    assert h.test_accuracy == real(x[:600], y[:600])["accuracy"]
