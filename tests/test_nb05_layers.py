"""05_layers: the checks accept the solution and reject known-wrong answers, naming the concept."""

import textwrap

import pytest
from mutantkit import make_tests
from nbharness import run_exercise

pytestmark = pytest.mark.nb05

_SHAPE = """
def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    return tuple(int(SIZE) for n, k, s, p, d in
                 zip((h, w), pair(kernel_size), pair(stride), pair(padding), pair(dilation)))
"""


def shape_mutant(expr: str) -> str:
    return "import math\n" + _SHAPE.replace("SIZE", expr)


# A correct Conv2d with hooks for mutation: WEIGHT_SHAPE, the forward's weight and output.
_CONV = """
class Conv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
        self.out_channels, self.groups = out_channels, groups
        self.kernel_size, self.stride = pair(kernel_size), pair(stride)
        self.padding, self.dilation = pair(padding), pair(dilation)
        kh, kw = self.kernel_size
        cin = in_channels // groups
        self.weight = nn.Parameter(torch.empty(WEIGHT_SHAPE))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        bound = 1 / math.sqrt(cin * kh * kw)
        INIT
        if BIAS_GUARD:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        n, c, h, w = x.shape
        h_out, w_out = conv2d_output_shape(h, w, self.kernel_size, self.stride, self.padding,
                                           DILATION)
        cols = F.unfold(x, self.kernel_size, dilation=DILATION, padding=self.padding,
                        stride=self.stride)
        g = GROUPS
        cols = cols.view(n, g, -1, cols.shape[-1])
        weight = (WEIGHT).reshape(g, self.out_channels // g, -1)
        out = torch.einsum("gok,ngkl->ngol", weight, cols).reshape(n, self.out_channels, h_out, w_out)
        if self.bias is not None:
            out = out + BIAS.view(1, -1, 1, 1)
        return out
"""
_CONV_DEFAULTS = {
    "WEIGHT_SHAPE": "out_channels, cin, kh, kw",
    "INIT": "nn.init.uniform_(self.weight, -bound, bound)",
    "DILATION": "self.dilation",
    "GROUPS": "self.groups",
    "WEIGHT": "self.weight",
    "BIAS": "self.bias",
    "BIAS_GUARD": "self.bias is not None",
}


def conv_mutant(**changes: str) -> str:
    src = _CONV
    for key, value in {**_CONV_DEFAULTS, **changes}.items():
        src = src.replace(key, value)
    return src


_BN = """
class BatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.eps, self.momentum, self.affine, self.track = eps, momentum, affine, track_running_stats
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        if track_running_stats:
            REGISTER("running_mean", torch.zeros(num_features))
            REGISTER("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x):
        dims = DIMS
        if TRAINING or not self.track:
            mean = x.mean(dims)
            var = x.var(dims, unbiased=UNBIASED)
            if self.training and self.track:
                n = x.numel() // x.shape[1]
                m = self.momentum
                with torch.no_grad():
                    self.running_mean.copy_(RUNNING_MEAN)
                    self.running_var.copy_(RUNNING_VAR)
                    self.num_batches_tracked += STEP
            mean, var = STATS
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.view(SHAPE)) / torch.sqrt(var.view(SHAPE) + EPS)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y
"""
_BN_DEFAULTS = {
    "REGISTER": "self.register_buffer",
    "DIMS": "(0, 2, 3)",
    "TRAINING": "self.training",
    "UNBIASED": "False",
    "RUNNING_MEAN": "(1 - m) * self.running_mean + m * mean",
    "RUNNING_VAR": "(1 - m) * self.running_var + m * var * n / (n - 1)",
    "STEP": "1",
    "STATS": "mean, var",
    "SHAPE": "1, -1, 1, 1",
    "EPS": "self.eps",
}


def bn_mutant(**changes: str) -> str:
    src = _BN
    for key, value in {**_BN_DEFAULTS, **changes}.items():
        src = src.replace(key, value)
    return src


_DROPOUT = """
class Dropout(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if EVAL_CHECK:
            return x
        if self.p == 1 and SPECIAL_ONE:
            return x * 0.0
        keep = (torch.rand_like(x) KEEP).to(x.dtype)
        return x * keep SCALE
"""
_DROPOUT_DEFAULTS = {"EVAL_CHECK": "not self.training or self.p == 0", "SPECIAL_ONE": "True",
                     "KEEP": ">= self.p", "SCALE": "/ (1 - self.p)"}


def dropout_mutant(**changes: str) -> str:
    src = _DROPOUT
    for key, value in {**_DROPOUT_DEFAULTS, **changes}.items():
        src = src.replace(key, value)
    return src


_FLATTEN = """
class Flatten(nn.Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        start, end = START, END
        shape = tuple(x.shape[:start]) + (math.prod(x.shape[start:end + 1]),) + tuple(x.shape[end + 1:])
        return RESULT
"""
_FLATTEN_DEFAULTS = {"START": "self.start_dim % x.dim()", "END": "self.end_dim % x.dim()",
                     "RESULT": "x.reshape(shape)"}


def flatten_mutant(**changes: str) -> str:
    src = _FLATTEN
    for key, value in {**_FLATTEN_DEFAULTS, **changes}.items():
        src = src.replace(key, value)
    return src


_EMBEDDING = """
class Embedding(nn.Module):
    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.padding_idx = padding_idx
        self.weight = nn.Parameter(INIT)
        if padding_idx is not None and ZERO_PAD:
            with torch.no_grad():
                self.weight[padding_idx].zero_()

    def forward(self, ids):
        rows = LOOKUP
        if self.padding_idx is not None and MASK_GRAD:
            rows = torch.where((ids == self.padding_idx).unsqueeze(-1), rows.detach(), rows)
        return rows
"""
_EMBEDDING_DEFAULTS = {"INIT": "torch.randn(num_embeddings, embedding_dim)", "ZERO_PAD": "True",
                       "LOOKUP": "self.weight[ids]", "MASK_GRAD": "True"}


def embedding_mutant(**changes: str) -> str:
    src = _EMBEDDING
    for key, value in {**_EMBEDDING_DEFAULTS, **changes}.items():
        src = src.replace(key, value)
    return src


MUTANTS = {
    "conv2d_output_shape": [
        ("no dilation", shape_mutant("(n + 2 * p - k) // s + 1"), "dilation"),
        ("padding counted once", shape_mutant("(n + p - d * (k - 1) - 1) // s + 1"), "both sides"),
        ("ceil", shape_mutant("math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1"), "round down"),
        ("missing +1", shape_mutant("(n + 2 * p - d * (k - 1) - 1) // s"), "off by one"),
        ("plus two", shape_mutant("(n + 2 * p - d * (k - 1) - 1) // s + 2"), "floor((size"),
        ("true division", """
            def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
                pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
                return tuple((n + 2 * p - d * (k - 1) - 1) / s + 1 for n, k, s, p, d in
                             zip((h, w), pair(kernel_size), pair(stride), pair(padding), pair(dilation)))
        """, "floor division"),
        ("pair first entry only", """
            def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
                first = lambda v: v if isinstance(v, int) else v[0]
                k, s, p, d = map(first, (kernel_size, stride, padding, dilation))
                return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n in (h, w))
        """, "(height, width)"),
        ("delegates", """
            def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
                k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
                out = F.conv2d(torch.empty(1, 1, h, w), torch.empty(1, 1, *k), stride=stride,
                               padding=padding, dilation=dilation)
                return tuple(out.shape[2:])
        """, "delegates"),
    ],
    "Conv2d": [
        ("ignores groups", conv_mutant(WEIGHT_SHAPE="out_channels, in_channels, kh, kw", GROUPS="1"),
         "groups"),
        ("missing bias", conv_mutant(BIAS="0 * self.bias"), "bias is missing"),
        ("kernel flipped", conv_mutant(WEIGHT="self.weight.flip(-1, -2)"), "cross-correlation"),
        ("weight layout", conv_mutant(WEIGHT_SHAPE="out_channels, kh, kw, cin",
                                      WEIGHT="self.weight.permute(0, 3, 1, 2)"), "layout"),
        ("randn init", conv_mutant(INIT="nn.init.normal_(self.weight)"), "initialise like nn.conv2d"),
        ("ignores dilation", conv_mutant(DILATION="1"), "output shape"),
        ("detached weight", conv_mutant(WEIGHT="self.weight.detach()"), "weight.grad is none"),
        ("delegates", """
            class Conv2d(nn.Module):
                def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                             dilation=1, groups=1, bias=True):
                    super().__init__()
                    ref = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                    dilation, groups, bias)
                    self.weight, self.bias = ref.weight, ref.bias
                    self.args = (ref.stride, ref.padding, ref.dilation, groups)

                def forward(self, x):
                    return F.conv2d(x, self.weight, self.bias, *self.args)
        """, "delegates"),
        ("subclass", """
            class Conv2d(nn.Conv2d):
                pass
        """, "delegates"),
        ("delegates at run time", """
            def _helper(*args):
                return getattr(F, "con" + "v2d")(*args)

            class Conv2d(nn.Module):
                def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                             dilation=1, groups=1, bias=True):
                    super().__init__()
                    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
                    bound = 1 / math.sqrt(in_channels // groups * k[0] * k[1])
                    self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k)
                                               .uniform_(-bound, bound))
                    self.bias = (nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
                                 if bias else None)
                    self.args = (stride, padding, dilation, groups)

                def forward(self, x):
                    return _helper(x, self.weight, self.bias, *self.args)
        """, "it called torch.nn.functional.conv2d"),
    ],
    "BatchNorm2d": [
        ("batch statistics in eval", bn_mutant(TRAINING="True"), "running statistics, not the batch"),
        ("biased running_var", bn_mutant(RUNNING_VAR="(1 - m) * self.running_var + m * var"),
         "unbiased batch variance"),
        ("momentum reversed", bn_mutant(RUNNING_MEAN="m * self.running_mean + (1 - m) * mean"),
         "momentum the wrong way"),
        ("wrong dims", bn_mutant(STATS="x.mean((2, 3)), x.var((2, 3), unbiased=False)",
                                 SHAPE="x.shape[0], -1, 1, 1"),
         "wrong dims"),
        ("missing eps", bn_mutant(EPS="0"), "eps is missing"),
        ("unbiased normalisation", bn_mutant(UNBIASED="True",
                                             RUNNING_VAR="(1 - m) * self.running_var + m * var"),
         "biased batch variance"),
        ("detached statistics", bn_mutant(STATS="mean.detach(), var.detach()"),
         "flow through the batch mean"),
        ("no num_batches_tracked", bn_mutant(STEP="0"), "num_batches_tracked"),
        ("running stats not buffers", bn_mutant(REGISTER="self.__setattr__"), "register_buffer"),
        ("delegates", """
            class BatchNorm2d(nn.Module):
                def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                             track_running_stats=True):
                    super().__init__()
                    self.inner = nn.BatchNorm2d(num_features, eps, momentum, affine,
                                                track_running_stats)

                def forward(self, x):
                    return self.inner(x)
        """, "delegates"),
    ],
    "Dropout": [
        ("no rescaling", dropout_mutant(SCALE=""), "scale the surviving"),
        ("drops with 1 - p", dropout_mutant(KEEP="< self.p", SCALE="/ self.p"),
         "probability of zeroing"),
        ("active in eval", dropout_mutant(EVAL_CHECK="self.p == 0"), "eval() dropout is the identity"),
        ("NaN at p=1", dropout_mutant(SPECIAL_ONE="False"), "drops everything"),
        ("multiplies by 1 - p", dropout_mutant(SCALE="* (1 - self.p)"), "do not multiply"),
        ("fixed mask", """
            class Dropout(nn.Module):
                def __init__(self, p=0.5):
                    super().__init__()
                    self.p, self.mask = p, None

                def forward(self, x):
                    if not self.training or self.p == 0:
                        return x
                    if self.p == 1:
                        return x * 0.0
                    if self.mask is None or self.mask.shape != x.shape:
                        self.mask = (torch.rand_like(x) >= self.p).to(x.dtype)
                    return x * self.mask / (1 - self.p)
        """, "fresh random mask"),
        ("in place", """
            class Dropout(nn.Module):
                def __init__(self, p=0.5):
                    super().__init__()
                    self.p = p

                def forward(self, x):
                    if not self.training or self.p == 0:
                        return x
                    if self.p == 1:
                        return x.zero_()
                    keep = (torch.rand_like(x) >= self.p).to(x.dtype)
                    return x.mul_(keep / (1 - self.p))
        """, "in place"),
        ("delegates", """
            class Dropout(nn.Module):
                def __init__(self, p=0.5):
                    super().__init__()
                    self.p = p

                def forward(self, x):
                    return F.dropout(x, self.p, self.training)
        """, "delegates"),
    ],
    "Flatten": [
        ("ignores end_dim", flatten_mutant(END="x.dim() - 1"), "end_dim is ignored"),
        ("flattens the batch", flatten_mutant(RESULT="x.reshape(-1)"), "keep the batch dimension"),
        ("negative start off by one", flatten_mutant(
            START="self.start_dim if self.start_dim >= 0 else x.dim() + self.start_dim + 1"),
         "negative dims count from the end"),
        ("view on non-contiguous", flatten_mutant(RESULT="x.view(shape)"), "non-contiguous input"),
        ("column-major order", flatten_mutant(
            RESULT="x.permute(*range(x.dim() - 1, -1, -1)).reshape(shape[::-1]).permute("
                   "*range(len(shape) - 1, -1, -1))"), "row-major order"),
        ("delegates", """
            class Flatten(nn.Module):
                def __init__(self, start_dim=1, end_dim=-1):
                    super().__init__()
                    self.dims = (start_dim, end_dim)

                def forward(self, x):
                    return x.flatten(*self.dims)
        """, "delegates"),
    ],
    "Embedding": [
        ("transposed weight", embedding_mutant(INIT="torch.randn(embedding_dim, num_embeddings)",
                                               LOOKUP="self.weight.T[ids]", ZERO_PAD="False"),
         "row i is the vector"),
        ("ignores padding_idx", embedding_mutant(ZERO_PAD="False", MASK_GRAD="False"),
         "padding_idx row must start as zeros"),
        ("padding row gets gradient", embedding_mutant(MASK_GRAD="False"), "gets no gradient"),
        ("uniform init", embedding_mutant(INIT="torch.rand(num_embeddings, embedding_dim)"),
         "n(0, 1)"),
        ("delegates", """
            class Embedding(nn.Module):
                def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
                    super().__init__()
                    self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim))
                    self.padding_idx = padding_idx

                def forward(self, ids):
                    return F.embedding(ids, self.weight, self.padding_idx)
        """, "delegates"),
    ],
}

