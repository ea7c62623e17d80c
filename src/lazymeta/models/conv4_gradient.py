"""A hand-written first-order gradient of Conv4's cross-entropy on a CPU: the student's step without autograd.

A graph-free student only ever needs ``∇_φ L_tr(φ)`` on one fixed batch, k times. Autograd builds and walks
a graph per step, and on tiny batches the first block costs far more than its arithmetic: a 3x3
convolution with one input channel and the batch norm after it, both over the largest activation, run far
below the machine's speed in channels-last. Here the first block is one matrix product: its im2col columns are
computed (and centred) once per task, the batch-norm statistics of the convolution's output follow from
their small covariance, and convolution plus batch norm become ``cols @ W_eff + shift``; its backward is
one ``cols^T @ dz`` and a few per-channel vectors. The other blocks call the kernels autograd would (batch
norm, max-pool and ReLU forward and backward, oneDNN's convolutions) without the graph, on weights kept in
channels-last memory across the student's steps (:meth:`Conv4Gradient.layout`), so that no kernel converts
them. The gradient is the same function as autograd's, equal to rounding (tested against autograd in float64
and float32); the convolutions' biases, which batch norm cancels, are left out of the forward pass and get
their exact gradient, 0.

The same forward pass serves the task's validation data: without the backward pass it scores the teacher's
candidates (:meth:`Conv4Gradient.scores`), with it it is the validation gradient of first-order outer
passes (:meth:`Conv4Gradient.value_and_gradient`), neither building a graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Params = dict[str, Tensor]
# the kernels autograd calls, bound to their overloads: a call then skips the overload's resolution
_aten = torch.ops.aten
_convolution, _convolution_backward = _aten.convolution.default, _aten.convolution_backward.default
_batch_norm, _batch_norm_backward = _aten.native_batch_norm.default, _aten.native_batch_norm_backward.default
_max_pool, _max_pool_backward = _aten.max_pool2d_with_indices.default, _aten.max_pool2d_with_indices_backward.default
_relu_backward = _aten.threshold_backward.default
_CONV = ([1, 1], [1, 1], [1, 1], False, [0, 0], 1)  # stride, padding, dilation, transposed, output padding, groups
_POOL = ([2, 2], [2, 2], [0, 0], [1, 1], False)      # kernel, stride, padding, dilation, ceil mode


def _back_through_relu_and_pool(d_a: Tensor, a: Tensor, z: Tensor, index: Tensor) -> Tensor:
    """A block's output gradient (or tangent) ``d_a`` taken back through its ReLU (output ``a``) and its
    max-pool (input ``z``, maxima at ``index``)."""
    return _max_pool_backward(_relu_backward(d_a, a, 0), z, *_POOL, index)


def _im2col(nhwc: Tensor) -> Tensor:
    """The 3x3, padding-1 patches of an (N, H, W, C) map as rows of an (N H W, 9 C) matrix, in (kh, kw, C) order."""
    n, h, w, c = nhwc.shape
    padded = F.pad(nhwc, (0, 0, 1, 1, 1, 1))
    s = padded.stride()
    return padded.as_strided((n, h, w, 3, 3, c), (s[0], s[1], s[2], s[1], s[2], s[3])).reshape(n * h * w, 9 * c)


def _weight_matrix(weight: Tensor) -> Tensor:
    """A (C_out, C_in, 3, 3) kernel as the (C_out, 9 C_in) matrix that multiplies :func:`_im2col`'s rows."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def _weight_of_matrix(matrix: Tensor, like: Tensor) -> Tensor:
    """The inverse of :func:`_weight_matrix`, shaped like ``like``."""
    return matrix.view(like.shape[0], 3, 3, like.shape[1]).permute(0, 3, 1, 2)


class Conv4Gradient:
    """``∇_φ`` of ``cross_entropy(Conv4(φ, x)[:, :ways], y)`` for any φ, for one batch ``(x, y)``; and that
    cross-entropy with the accuracy, from the same forward pass without the gradient (:meth:`scores`).

    Only for a max-pool Conv4 on a CPU; :meth:`~lazymeta.models.Conv4.cross_entropy_gradient` decides.
    """

    def __init__(self, names: list[str], eps: float, x: Tensor, y: Tensor, ways: int):
        self.names, self.eps, self.x, self.y, self.ways = names, eps, x, y, ways
        self.cols: Tensor | None = None
        self.cols_t: Tensor | None = None

    def _prepare(self) -> None:
        """What depends on the batch only, once: the first block's centred im2col columns and their covariance,
        and the one-hot targets."""
        cols = _im2col(self.x.permute(0, 2, 3, 1))
        centred = cols - cols.mean(0)
        self.cov = centred.T @ centred / centred.shape[0]
        self.cols = centred
        self.target = F.one_hot(self.y, self.ways).to(self.x.dtype) / len(self.y)

    def layout(self, params: Params) -> Params:
        """``params`` with the convolutions' weights in channels-last memory, which the kernels take as they
        are: steps from there keep it, instead of converting every weight at every step."""
        return {name: p.contiguous(memory_format=torch.channels_last) if p.dim() == 4 else p
                for name, p in params.items()}

    def __call__(self, params: Params) -> list[Tensor]:
        """The gradient, one tensor per parameter in ``params``' order."""
        with torch.no_grad():
            return self._gradient(params)[0]

    def value_and_gradient(self, params: Params) -> tuple[list[Tensor], Tensor, Tensor]:
        """The gradient (in ``params``' order), the cross-entropy and the accuracy, from one forward pass."""
        with torch.no_grad():
            grads, logits = self._gradient(params)
            return grads, *self._scores(logits)

    def scores(self, params: Params) -> tuple[Tensor, Tensor]:
        """The cross-entropy and the accuracy, from a forward pass without autograd (the first block's
        product replaces its slow one-channel convolution and its batch norm)."""
        with torch.no_grad():
            return self._scores(self._forward(params, None))

    def _scores(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        logits = logits[:, :self.ways]
        return F.cross_entropy(logits, self.y), (logits.argmax(-1) == self.y).float().mean()

    def _gradient(self, params: Params) -> tuple[list[Tensor], Tensor]:
        saved: list[tuple] = []
        logits = self._forward(params, saved)
        grads = self._backward(params, logits, saved)
        return [grads[name] for name in params], logits

    def _forward(self, p: Params, saved: list[tuple] | None) -> Tensor:
        """The logits; with ``saved``, what the backward pass needs is appended to it."""
        if self.cols is None:
            self._prepare()
        names = self.names
        # block 1: convolution and batch norm as one product of the task's centred columns
        w1, gamma, beta = p[names[0]], p[names[2]], p[names[3]]
        wmat = _weight_matrix(w1)
        w_cov = wmat @ self.cov
        invstd = ((w_cov * wmat).sum(1) + self.eps).rsqrt()
        scale = gamma * invstd
        n, _, h, w = self.x.shape
        z = torch.addmm(beta, self.cols, (wmat * scale[:, None]).T)
        z = z.view(n, h, w, -1).permute(0, 3, 1, 2)                         # channels-last (N, C, H, W)
        pooled, index = _max_pool(z, *_POOL[:2])
        a = pooled.relu()
        if saved is not None:
            saved.append((wmat, w_cov, invstd, scale, z, index, a))
        # blocks 2-4; batch norm cancels the convolution's bias, which is left out (its gradient is 0)
        for i in range(1, 4):
            wi, gi, betai = p[names[4 * i]], p[names[4 * i + 2]], p[names[4 * i + 3]]
            wi = wi.contiguous(memory_format=torch.channels_last)  # a no-op on weights that `layout` placed
            conv = _convolution(a, wi, None, *_CONV)
            zi, mean, inv = _batch_norm(conv, gi, betai, None, None, True, 0.0, self.eps)
            pooled, index = _max_pool(zi, *_POOL[:2])
            a_in, a = a, pooled.relu()
            if saved is not None:
                saved.append((a_in, wi, conv, mean, inv, zi, index, a))
        return torch.addmm(p[names[17]], a.flatten(1), p[names[16]].T)

    def _backward(self, p: Params, logits: Tensor, saved: list[tuple], record: dict | None = None) -> Params:
        """The gradient; with ``record``, what the Hessian-vector product needs is stored in it."""
        names, grads = self.names, {}
        # the head and cross-entropy over the first `ways` logits
        wh, a = p[names[16]], saved[-1][-1]
        features = a.flatten(1)
        probs = logits[:, :self.ways].softmax(1)
        d_logits = (probs.div_(len(self.y)) if record is None else probs / len(self.y)).sub_(self.target)
        if logits.shape[1] > self.ways:  # a head wider than the task's ways: the rest get no gradient
            d_logits = F.pad(d_logits, (0, logits.shape[1] - self.ways))
        if record is not None:
            record.update(probs=probs, d_logits=d_logits, blocks={})
        grads[names[16]], grads[names[17]] = d_logits.T @ features, d_logits.sum(0)
        d_a = (d_logits @ wh).view(a.shape)
        for i in range(3, 0, -1):
            a_in, wi, conv, mean, inv, zi, index, a_out = saved[i]
            d_z = _back_through_relu_and_pool(d_a, a_out, zi, index)
            d_conv, grads[names[4 * i + 2]], grads[names[4 * i + 3]] = _batch_norm_backward(
                d_z, conv, p[names[4 * i + 2]], None, None, mean, inv, True, self.eps, [True, True, True])
            if record is not None:  # mean(d_z x̂), not d_γ itself: the record holds no tensor the caller gets
                record["blocks"][i] = d_z, d_conv, grads[names[4 * i + 2]] / (d_z.numel() // d_z.shape[1])
            d_a, grads[names[4 * i]], _ = _convolution_backward(
                d_conv, a_in, wi, None, *_CONV, [True, True, False])
        wmat, w_cov, invstd, scale, z, index, a_out = saved[0]
        if self.cols_t is None:
            # the columns transposed and a row of ones: this @ dz gives (cols - mean)^T dz and dz's sums at once
            self.cols_t = torch.cat([self.cols.T, self.cols.new_ones(1, self.cols.shape[0])]).contiguous()
        d_z = _back_through_relu_and_pool(d_a, a_out, z, index)
        moments = self.cols_t @ d_z.permute(0, 2, 3, 1).reshape(-1, d_z.shape[1])  # [(cols - mean)^T dz ; sum dz]
        t, d_beta = moments[:-1].T, moments[-1]
        d_gamma = invstd * (t * wmat).sum(1)
        if record is not None:
            record["block1"] = t, d_gamma * invstd
        grads[names[0]] = _weight_of_matrix(scale[:, None] * (t - (d_gamma * invstd)[:, None] * w_cov),
                                             p[names[0]])
        grads[names[2]], grads[names[3]] = d_gamma, d_beta
        for i in range(4):  # the convolutions' biases, which batch norm cancels
            grads[names[4 * i + 1]] = torch.zeros_like(p[names[4 * i + 1]])
        return grads
