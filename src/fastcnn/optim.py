"""fastcnn.optim -- optimizers. Each implements only its update rule, with the
backend's in-place update op; the base class owns the parameter list, the state
arrays and the hyper-parameter checks.

step(ops, params, grads): params is a list of (array, decayed) pairs, grads the
matching gradient arrays. L2 weight decay (adds weight_decay * w to the
gradient, i.e. the cost gains 0.5 * weight_decay * ||w||^2) applies only to
parameters marked decayed: weights, never biases. State arrays (velocity, moving
averages) are created on the first step, one set per parameter, and are saved
with the model.
"""
from __future__ import annotations

import math

import numpy as np

from ._validate import F32_MAX


def _number(v, name: str, lo: float, hi: float = F32_MAX, lo_open=False, hi_open=False):
    """A real number in the range (the native ops take it as float32: at most F32_MAX)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {v!r}")
    try:
        v = float(v)
    except OverflowError:   # an int beyond float's range
        raise ValueError(f"{name} must lie in {'(' if lo_open else '['}{lo}, {hi}], got an "
                         f"integer of {int(v).bit_length()} bits") from None
    bad = (not math.isfinite(v) or v < lo or v > hi or (lo_open and v == lo)
           or (hi_open and v == hi))
    if bad:
        left, right = "(" if lo_open else "[", ")" if hi_open or math.isinf(hi) else "]"
        raise ValueError(f"{name} must lie in {left}{lo}, {hi}{right}, got {v!r}")
    return v


class Optimizer:
    """Base class. Subclasses set `state_names` and implement `_update`."""

    state_names: tuple = ()
    # True when the update needs no state and only lr and weight_decay, so a
    # layer may apply it during the backward pass (Sequential._backward_sgd).
    fusable = False

    def __init__(self, lr, weight_decay=0.0):
        self.lr = _number(lr, "lr", 0.0, lo_open=True)
        self.weight_decay = _number(weight_decay, "weight_decay", 0.0)
        self.state: list[dict] = []   # one {name: array} per parameter
        self.steps = 0

    def ensure_state(self, params):
        """Create the state arrays on first use; check they fit `params`."""
        if not self.state:
            self.state = [{k: np.zeros_like(p) for k in self.state_names} for p, _ in params]
        if len(self.state) != len(params):
            raise ValueError(f"optimizer state holds {len(self.state)} parameters, "
                             f"the model has {len(params)}")

    def step(self, ops, params, grads):
        self.ensure_state(params)
        self.steps += 1
        for (p, decayed), g, st in zip(params, grads, self.state):
            self._update(ops, p, g, st, self.weight_decay if decayed else 0.0)

    def _update(self, ops, p, g, st, wd):
        raise NotImplementedError

    def config(self) -> dict:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Mini-batch stochastic gradient descent, with optional (Nesterov) momentum."""

    def __init__(self, lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.momentum = _number(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.state_names = ("velocity",) if self.momentum else ()

    @property
    def fusable(self):
        return self.momentum == 0.0

    def _update(self, ops, p, g, st, wd):
        ops.sgd_update(p, g, st.get("velocity"), lr=self.lr, momentum=self.momentum,
                       weight_decay=wd, nesterov=self.nesterov)

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class Adagrad(Optimizer):
    state_names = ("sum_sq",)

    def __init__(self, lr=0.01, eps=1e-10, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.eps = _number(eps, "eps", 0.0, lo_open=True)

    def _update(self, ops, p, g, st, wd):
        ops.adagrad_update(p, g, st["sum_sq"], lr=self.lr, eps=self.eps, weight_decay=wd)

    def config(self):
        return {"lr": self.lr, "eps": self.eps, "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    state_names = ("sq_avg",)

    def __init__(self, lr=0.001, alpha=0.9, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.alpha = _number(alpha, "alpha", 0.0, 1.0, hi_open=True)
        self.eps = _number(eps, "eps", 0.0, lo_open=True)

    def _update(self, ops, p, g, st, wd):
        ops.rmsprop_update(p, g, st["sq_avg"], lr=self.lr, alpha=self.alpha, eps=self.eps,
                           weight_decay=wd)

    def config(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay}


class Adam(Optimizer):
    state_names = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.beta1 = _number(beta1, "beta1", 0.0, 1.0, hi_open=True)
        self.beta2 = _number(beta2, "beta2", 0.0, 1.0, hi_open=True)
        self.eps = _number(eps, "eps", 0.0, lo_open=True)

    def _update(self, ops, p, g, st, wd):
        ops.adam_update(p, g, st["m"], st["v"], step=self.steps, lr=self.lr, beta1=self.beta1,
                        beta2=self.beta2, eps=self.eps, weight_decay=wd)

    def config(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "weight_decay": self.weight_decay}


REGISTRY = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam}


def get(optimizer) -> Optimizer:
    """An Optimizer from an instance or a name ('sgd', 'adagrad', 'rmsprop', 'adam'),
    the latter with default hyper-parameters."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    key = optimizer.lower() if isinstance(optimizer, str) else None
    if key not in REGISTRY:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[key]()


def from_config(kind: str, config: dict) -> Optimizer:
    classes = {cls.__name__: cls for cls in REGISTRY.values()}
    if kind not in classes:
        raise ValueError(f"unknown optimizer type {kind!r}; known: {', '.join(classes)}")
    try:
        return classes[kind](**config)
    except TypeError as e:
        raise ValueError(f"bad config for optimizer {kind!r}: {e}") from None


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "get", "from_config"]
