"""Conv4's hand-written Hessian-vector product on a CPU: second-order inner loops without autograd's double
backward.

Second-order MAML (and Meta-SGD, TAML, Meta-Curvature) differentiate through every student step
``φ' = φ - lr ∇L_tr(φ)``, whose backward pass needs ``H(φ) v``. Autograd gets it by building a graph of
the backward pass at every step and walking it once more. Here each step's gradient is one autograd node
(:class:`Conv4SecondOrder.differentiable`) computed by :class:`~lazymeta.models.conv4_gradient.Conv4Gradient`'s
graph-free passes, whose intermediates it keeps; its backward is the gradient's forward-mode derivative in the
direction v (the Hessian is symmetric, so that is ``H v``), written by hand from those intermediates: a
tangent forward pass (one more product for block 1, one more convolution per other block) and a tangent
backward pass (two convolution backwards and one batch-norm backward per block, a few per-channel vectors).
The same product at a fixed point serves iMAML's conjugate gradients (:meth:`Conv4SecondOrder.hessian_at`).
Tested against autograd's double backward in float64.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from lazymeta.models.conv4_gradient import (_CONV, Conv4Gradient, Params, _back_through_relu_and_pool,
                                            _batch_norm_backward, _convolution, _convolution_backward,
                                            _relu_backward, _weight_matrix, _weight_of_matrix)


def _pool_tangent(dz: Tensor, index: Tensor) -> Tensor:
    """The 2x2 max-pool's forward derivative: each window's tangent at its maximum's place."""
    n, c, h, w = index.shape
    return dz.flatten(2).gather(2, index.flatten(2)).view(n, c, h, w)


class Conv4SecondOrder(Conv4Gradient):
    """:class:`Conv4Gradient` plus the Hessian-vector product of the same cross-entropy, for second-order
    students (:meth:`differentiable`) and implicit ties (:meth:`hessian_at`)."""

    def differentiable(self, params: Params) -> list[Tensor]:
        """The gradient as one autograd node of ``params`` whose backward pass is the Hessian-vector product:
        a second-order student steps with it instead of building a graph of autograd's backward pass."""
        return list(_Gradient.apply(self, tuple(params), *params.values()))

    def hessian_at(self, params: Params) -> Callable[[Sequence[Tensor]], list[Tensor]]:
        """``v -> H(φ) v`` at φ = ``params`` (v and the answer one tensor per parameter, in ``params``' order);
        the point's passes run once, each product is a tangent pass."""
        with torch.no_grad():
            state = self._primal(params)[1]
        names = list(params)

        def product(v: Sequence[Tensor]) -> list[Tensor]:
            with torch.no_grad():
                return self._hessian_vector(params, dict(zip(names, v)), *state)

        return product

    def _primal(self, p: Params) -> tuple[list[Tensor], tuple[list[tuple], Tensor, dict]]:
        """The gradient (in ``p``'s order) and what the tangent passes need: the forward and backward
        passes' intermediates (none of them a tensor of the gradient)."""
        saved: list[tuple] = []
        record: dict = {}
        logits = self._forward(p, saved)
        grads = self._backward(p, logits, saved, record)
        return [grads[name] for name in p], (saved, logits, record)

    def _hessian_vector(self, p: Params, v: Params, saved: list[tuple], logits: Tensor, record: dict
                        ) -> list[Tensor]:
        """``H(φ) v`` (in ``p``'s order): the gradient's forward derivative in the direction v, from the
        primal passes' intermediates."""
        return self._tangent_backward(p, v, saved, logits, record, *self._tangent_forward(p, v, saved))

    def _tangent_forward(self, p: Params, v: Params, saved: list[tuple]) -> tuple:
        """The forward pass's tangents: block 1's, each block's output's, blocks 2-4's batch norm's, the logits'."""
        names = self.names
        # block 1: z = cols @ (W diag(scale))ᵀ + β, scale = γ (diag(W cov Wᵀ) + eps)^-1/2
        wmat, w_cov, invstd, scale, z, index1, a1 = saved[0]
        vm = _weight_matrix(v[names[0]])
        v_cov = vm @ self.cov
        d_invstd = -invstd.pow(3) * (w_cov * vm).sum(1)
        d_scale = v[names[2]] * invstd + p[names[2]] * d_invstd
        n, _, h, w = self.x.shape
        dz = torch.addmm(v[names[3]], self.cols, (vm * scale[:, None] + wmat * d_scale[:, None]).T)
        dz = dz.view(n, h, w, -1).permute(0, 3, 1, 2)
        da = _relu_backward(_pool_tangent(dz, index1), a1, 0)
        a_dots, tangents = [da], [None]  # each block's output's tangent; blocks 2-4's batch-norm tangents
        # blocks 2-4: convolution, batch norm on batch statistics, max-pool, ReLU
        for i in range(1, 4):
            a_in, wi, conv, mean, inv, zi, index, a_out = saved[i]
            vi = v[names[4 * i]].contiguous(memory_format=torch.channels_last)
            d_conv = _convolution(da, wi, None, *_CONV) + _convolution(a_in, vi, None, *_CONV)
            xhat = (conv - mean[:, None, None]) * inv[:, None, None]
            m_dc, m_xdc = d_conv.mean((0, 2, 3)), (xhat * d_conv).mean((0, 2, 3))
            d_xhat = (d_conv - m_dc[:, None, None]) * inv[:, None, None] - xhat * (inv * m_xdc)[:, None, None]
            d_zi = xhat * v[names[4 * i + 2]][:, None, None] + d_xhat * p[names[4 * i + 2]][:, None, None] \
                + v[names[4 * i + 3]][:, None, None]
            da = _relu_backward(_pool_tangent(d_zi, index), a_out, 0)
            a_dots.append(da)
            tangents.append((xhat, d_xhat, inv * m_xdc, vi))
        d_logits = torch.addmm(v[names[17]], da.flatten(1), p[names[16]].T).addmm_(saved[-1][-1].flatten(1),
                                                                                     v[names[16]].T)
        return (vm, v_cov, d_invstd, d_scale), a_dots, tangents, d_logits

    def _tangent_backward(self, p: Params, v: Params, saved: list[tuple], logits: Tensor, record: dict,
                          block1: tuple, a_dots: list[Tensor], tangents: list, d_logits: Tensor) -> list[Tensor]:
        """The backward pass's tangents: the Hessian-vector product."""
        names, eps, hv = self.names, self.eps, {}
        wh, features, da = p[names[16]], saved[-1][-1].flatten(1), a_dots[-1]
        # the cross-entropy over the first `ways` logits and the head
        probs, g_logits = record["probs"], record["d_logits"]
        dl = d_logits[:, :self.ways]
        dd_logits = probs * (dl - (probs * dl).sum(1, keepdim=True)) / len(self.y)
        if logits.shape[1] > self.ways:
            dd_logits = F.pad(dd_logits, (0, logits.shape[1] - self.ways))
        hv[names[16]] = dd_logits.T @ features + g_logits.T @ da.flatten(1)
        hv[names[17]] = dd_logits.sum(0)
        dd_a = (dd_logits @ wh + g_logits @ v[names[16]]).view(da.shape)
        for i in range(3, 0, -1):
            a_in, wi, conv, mean, inv, zi, index, a_out = saved[i]
            xhat, d_xhat, rate, vi = tangents[i]  # rate = inv · mean(x̂ ċ) = -d(inv)/inv
            d_z, d_conv, m_dzx = record["blocks"][i]
            gamma, d_gamma_v = p[names[4 * i + 2]], v[names[4 * i + 2]]
            dd_z = _back_through_relu_and_pool(dd_a, a_out, zi, index)
            # batch norm's backward, d_conv = γ inv (d_z - mean d_z - x̂ mean(d_z x̂)), differentiated
            part, s_xdd, s_dd = _batch_norm_backward(dd_z, conv, gamma, None, None, mean, inv, True, eps,
                                                     [True, True, True])
            count = d_z.numel() // d_z.shape[1]
            m_dz = d_z.mean((0, 2, 3))
            m_dz_dx = (d_z * d_xhat).mean((0, 2, 3))
            coef = (d_gamma_v - gamma * rate) * inv  # d(γ inv)
            g_inv = gamma * inv
            dd_conv = part + (d_z - m_dz[:, None, None]) * coef[:, None, None] \
                - xhat * (coef * m_dzx + g_inv * m_dz_dx)[:, None, None] - d_xhat * (g_inv * m_dzx)[:, None, None]
            hv[names[4 * i + 2]], hv[names[4 * i + 3]] = s_xdd + count * m_dz_dx, s_dd
            # the convolution's backward is bilinear in (d_conv, weight) and in (d_conv, input)
            dd_a, dw, _ = _convolution_backward(dd_conv, a_in, wi, None, *_CONV, [True, True, False])
            da2, dw2, _ = _convolution_backward(d_conv, a_dots[i - 1], vi, None, *_CONV, [True, True, False])
            dd_a, hv[names[4 * i]] = dd_a + da2, dw + dw2
        # block 1: its gradients are functions of t = (cols - mean)ᵀ d_z and of W, γ
        wmat, w_cov, invstd, scale, z, index1, a1 = saved[0]
        vm, v_cov, d_invstd, d_scale = block1
        dd_z = _back_through_relu_and_pool(dd_a, a1, z, index1)
        moments = self.cols_t @ dd_z.permute(0, 2, 3, 1).reshape(-1, dd_z.shape[1])
        dt, hv[names[3]] = moments[:-1].T, moments[-1]
        t, k = record["block1"]  # k = d_γ · invstd
        dd_gamma = d_invstd * (t * wmat).sum(1) + invstd * ((dt * wmat).sum(1) + (t * vm).sum(1))
        d_k = dd_gamma * invstd + k * d_invstd / invstd
        dd_w = d_scale[:, None] * (t - k[:, None] * w_cov) \
            + scale[:, None] * (dt - d_k[:, None] * w_cov - k[:, None] * v_cov)
        hv[names[0]], hv[names[2]] = _weight_of_matrix(dd_w, p[names[0]]), dd_gamma
        for i in range(4):  # the convolutions' biases: their gradient is 0 everywhere
            hv[names[4 * i + 1]] = torch.zeros_like(p[names[4 * i + 1]])
        return [hv[name] for name in p]


class _Gradient(torch.autograd.Function):
    """The gradient of :class:`Conv4SecondOrder`'s cross-entropy, with the Hessian-vector product as backward."""

    @staticmethod
    def forward(ctx, hand: Conv4SecondOrder, names: tuple[str, ...], *values: Tensor) -> tuple[Tensor, ...]:
        grads, state = hand._primal(dict(zip(names, values)))
        ctx.save_for_backward(*values)
        ctx.hand, ctx.names, ctx.state = hand, names, state  # intermediates only: no output, no cycle
        return tuple(grads)

    @staticmethod
    @once_differentiable
    def backward(ctx, *w: Tensor) -> tuple:
        p = dict(zip(ctx.names, ctx.saved_tensors))
        return (None, None, *ctx.hand._hessian_vector(p, dict(zip(ctx.names, w)), *ctx.state))
