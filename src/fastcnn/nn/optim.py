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

import numpy as np

from ..common import checks
from ..common.checks import decay_rate, epsilon


class Optimizer:
    """Base class. Subclasses set `state_names` and implement `_update`."""

    state_names: tuple = ()

    def __init__(self, lr, weight_decay=0.0):
        self.lr = checks.learning_rate(lr, positive=True)
        self.weight_decay = checks.weight_decay(weight_decay)
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

    def fused_step(self, params):
        """Begin one step that the backward pass applies as it goes (each parameter
        updated as soon as its gradient is known, which then need not be stored):
        an update object, or None when this optimizer needs all the gradients
        first (then use step). Counts the step."""
        return None

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
        self.momentum = decay_rate(momentum, "momentum")
        self.nesterov = checks.flag(nesterov, "nesterov")
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.state_names = ("velocity",) if self.momentum else ()

    def fused_step(self, params):
        """Plain SGD (no momentum) needs no state: the backward pass may apply it."""
        if self.momentum:
            return None
        self.ensure_state(params)
        self.steps += 1
        return SGDUpdate(self.lr, self.weight_decay)

    def _update(self, ops, p, g, st, wd):
        ops.sgd_update(p, g, st.get("velocity"), lr=self.lr, momentum=self.momentum,
                       weight_decay=wd, nesterov=self.nesterov)

    def config(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}


class SGDUpdate:
    """One plain-SGD step applied during the backward pass: p -= lr * (g + wd * p)
    for each parameter, wd only on the decayed ones (SGD.fused_step)."""

    def __init__(self, lr, weight_decay):
        self.lr, self.weight_decay = lr, weight_decay

    def apply(self, ops, param, grad, decayed):
        ops.sgd_update(param, grad, None, lr=self.lr,
                       weight_decay=self.weight_decay if decayed else 0.0)


class Adagrad(Optimizer):
    state_names = ("sum_sq",)

    def __init__(self, lr=0.01, eps=1e-10, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.eps = epsilon(eps)

    def _update(self, ops, p, g, st, wd):
        ops.adagrad_update(p, g, st["sum_sq"], lr=self.lr, eps=self.eps, weight_decay=wd)

    def config(self):
        return {"lr": self.lr, "eps": self.eps, "weight_decay": self.weight_decay}


class RMSprop(Optimizer):
    state_names = ("sq_avg",)

    def __init__(self, lr=0.001, alpha=0.9, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        self.alpha = decay_rate(alpha, "alpha")
        self.eps = epsilon(eps)

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
        self.beta1 = decay_rate(beta1, "beta1")
        self.beta2 = decay_rate(beta2, "beta2")
        self.eps = epsilon(eps)

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
