"""The plan of a model: its layers grouped into steps, decided once when it is built.

A step has the layer contract (forward -> (out, cache); backward -> (dx, grads))
over one or more layers, so forward, backward, the fused update and the MPI step
are plain loops over steps. Two kinds:

  LayerStep     one layer
  ConvPoolStep  a Conv2D and the MaxPool2D after it, when running them together
                pays: fused into one op (the conv's output is never stored, only
                each window's choice), or, unfused, with the ReLU's backward mask
                applied to the pool's 4x smaller gradient instead of the conv's.
                Either way the same numbers as the two layers on their own: a
                window's gradient goes to its maximum, which is > 0 exactly when
                the pooled value is.

grads: a list with one {param name: array} per layer of the step (a layer
without parameters has {}). `params` lists (array, decayed) of the step's
layers in order, so the concatenation over the steps is model.parameters().

At inference the steps also describe themselves to a native inference plan
(`infer(plan, head)`: the layers' `infer`, a fused ConvPoolStep as one
conv + max-pool step), which then runs the whole forward pass in one call;
Plans keeps a model's plans in step with its steps and parameters.
"""
from __future__ import annotations

from ..backend import inference_plan


class LayerStep:
    """One layer on its own."""

    def __init__(self, layer):
        self.layers = [layer]
        self.layer = layer

    @property
    def params(self):
        layer = self.layer
        return [(p, name in layer.decayed) for name, p in layer.params.items()]

    def forward(self, ops, x, training, rng, head):
        return self.layer.forward(ops, x, training, rng, head)

    def backward(self, ops, dout, cache, need_dx):
        dx, grads = self.layer.backward(ops, dout, cache, need_dx)
        return dx, [grads]

    def infer(self, plan, head):
        _own_infer(self.layer, "forward", "infer")
        self.layer.infer(plan, head)

    def backward_update(self, ops, dout, cache, need_dx, update):
        """backward, then `update` (an optimizer's fused update) of each parameter
        right away; returns dx. A layer that can fuse the two (Dense) does it in
        one op."""
        fused = getattr(self.layer, "backward_update", None)
        if fused is not None:
            return fused(ops, dout, cache, need_dx, update)
        dx, (grads,) = self.backward(ops, dout, cache, need_dx)
        _apply(ops, update, self.layer, grads)
        return dx


class ConvPoolStep:
    """A Conv2D followed by a MaxPool2D: one op when `fused`, else the two ops with
    the ReLU mask moved to the pool's output."""

    def __init__(self, conv, pool, fused):
        self.layers = [conv, pool]
        self.conv, self.pool, self.fused = conv, pool, fused

    @property
    def params(self):
        return LayerStep(self.conv).params

    def forward(self, ops, x, training, rng, head):
        if self.fused:
            return self.conv.forward_maxpool(ops, x, self.pool)
        y, (x_in, _) = self.conv.forward(ops, x, training, rng)
        out = ops.maxpool2d(y, self.pool.size, self.pool.stride)
        return out, (x_in, y, out)

    def infer(self, plan, head):
        if self.fused:
            _own_infer(self.conv, "forward_maxpool", "infer_maxpool")
            self.conv.infer_maxpool(plan, self.pool)
        else:   # as forward: the conv (never the head: the pool follows), then the pool
            LayerStep(self.conv).infer(plan, False)
            LayerStep(self.pool).infer(plan, head)

    def backward(self, ops, dout, cache, need_dx):
        if self.fused:
            dx, grads = self.conv.backward_maxpool(ops, dout, cache, self.pool, need_dx)
        else:
            x, y, out = cache
            dout = ops.relu_backward(dout, out)   # the conv's ReLU mask, on the pooled side
            dz = ops.maxpool2d_backward(dout, y, self.pool.size, self.pool.stride)
            dx, grads = self.conv.backward_linear(ops, dz, x, need_dx)
        return dx, [grads, {}]

    def backward_update(self, ops, dout, cache, need_dx, update):
        dx, (grads, _) = self.backward(ops, dout, cache, need_dx)
        _apply(ops, update, self.conv, grads)
        return dx


def _apply(ops, update, layer, grads):
    for name, g in grads.items():
        update.apply(ops, layer.params[name], g, name in layer.decayed)


def _own_infer(layer, forward, infer):
    """NotImplementedError unless layer's class defines `infer` where it (or a
    parent) defines `forward`: a subclass that changed forward but not infer
    would otherwise run the parent's step."""
    mro = type(layer).__mro__
    owner = [next((c for c in mro if name in c.__dict__), None) for name in (forward, infer)]
    if owner[0] is not owner[1]:
        raise NotImplementedError(f"{type(layer).__name__} changes {forward} but not {infer}")


class Plans:
    """A model's native inference plans, one per `head` flag (model.evaluate may
    need the last activation left out), built on first use and again when the
    steps, the backend or any parameter array object changed (a plan reads its
    arrays at every run, so updates in place need no rebuild). None stands for
    the Python forward: the backend has no plans (reference) or a layer cannot
    describe its step (Layer.infer)."""

    def __init__(self):
        self._entries = {}

    def get(self, model, head=False):
        entry = self._entries.get(head)
        if (entry is not None and entry[0] is model.steps and entry[1] == model.backend
                and _same_arrays(entry[2])):
            return entry[3]
        # what the plan holds: each layer's parameter arrays, by name
        held = [(layer, tuple(layer.params.items())) for layer in model.layers]
        plan = inference_plan(model.backend, model.input_shape)
        if plan is not None:
            try:
                last = len(model.steps) - 1
                for i, step in enumerate(model.steps):
                    step.infer(plan, head and i == last)
            except NotImplementedError:
                plan = None
        self._entries[head] = (model.steps, model.backend, held, plan)
        return plan


def _same_arrays(held):
    """Whether every layer still holds exactly the parameter array objects it held."""
    for layer, items in held:
        params = layer.params
        if len(params) != len(items):
            return False
        for name, array in items:
            if params.get(name) is not array:
                return False
    return True


def plan(layers, fuse=True):
    """The steps of `layers` (built): each Conv2D + MaxPool2D pair that can run as
    one op (Conv2D.fuses_with) becomes a fused ConvPoolStep when fuse is true; a
    ReLU Conv2D + MaxPool2D pair otherwise becomes an unfused one; every other
    layer a LayerStep. A pool already taken never starts another pair."""
    steps, i = [], 0
    while i < len(layers):
        a = layers[i]
        b = layers[i + 1] if i + 1 < len(layers) else None
        pooled = b is not None and getattr(b, "fusable_max_pool", False) \
            and hasattr(a, "fuses_with")
        if pooled and fuse and a.fuses_with(b):
            steps.append(ConvPoolStep(a, b, fused=True))
            i += 2
        elif pooled and a.activation == "relu":
            steps.append(ConvPoolStep(a, b, fused=False))
            i += 2
        else:
            steps.append(LayerStep(a))
            i += 1
    return steps


__all__ = ["LayerStep", "ConvPoolStep", "Plans", "plan"]
