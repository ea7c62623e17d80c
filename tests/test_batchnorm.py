import torch

from lazymeta.batchnorm import forward_with_support_statistics
from lazymeta.models import Conv4
from lazymeta.params import functional, params_of


def test_support_statistics_equal_batch_statistics_on_the_support_itself():
    torch.manual_seed(0)
    model = Conv4(1, 28, 5, hidden=8).double()
    f, p = functional(model), params_of(model)
    support = torch.randn(5, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(forward_with_support_statistics(model, f, p, support, support), f(p, support))


def test_support_statistics_classify_each_query_independently_of_the_others():
    torch.manual_seed(1)
    model = Conv4(1, 28, 5, hidden=8).double()
    f, p = functional(model), params_of(model)
    support, query = torch.randn(5, 1, 28, 28, dtype=torch.float64), torch.randn(6, 1, 28, 28, dtype=torch.float64)
    together = forward_with_support_statistics(model, f, p, support, query)
    alone = torch.cat([forward_with_support_statistics(model, f, p, support, q[None]) for q in query])
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(together, f(p, query))  # differs from the transductive mode
