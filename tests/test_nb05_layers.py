"""05_layers: the checks accept the solution and reject known-wrong answers, naming the concept."""

import textwrap

import pytest
from mutantkit import make_tests
from nbharness import parts, run_exercise

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
        if HAS_B:
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
    "HAS_B": "self.bias is not None",
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
        if NEGATIVE:
            padding_idx += num_embeddings
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
                       "NEGATIVE": "padding_idx is not None and padding_idx < 0",
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

# A Conv2d that assumes an int dilation: a (dilation_h, dilation_w) pair makes it raise.
_CONV_INT_DILATION = """
class Conv2d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__()
        pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
        self.k, self.s, self.p, self.d = pair(kernel_size), pair(stride), pair(padding), dilation
        self.groups, self.out_channels = groups, out_channels
        bound = 1 / math.sqrt(in_channels // groups * self.k[0] * self.k[1])
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.k)
                                   .uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw), d = self.k, self.s, self.p, self.d
        h_out = (h + 2 * ph - d * (kh - 1) - 1) // sh + 1
        w_out = (w + 2 * pw - d * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, self.k, dilation=d, padding=self.p, stride=self.s)
        g = self.groups
        cols = cols.view(n, g, -1, cols.shape[-1])
        weight = self.weight.reshape(g, self.out_channels // g, -1)
        out = torch.einsum("gok,ngkl->ngol", weight, cols).reshape(n, self.out_channels, h_out, w_out)
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
"""
_CONV_BIAS_CRASH = conv_mutant(HAS_B="True")

MUTANTS["Conv2d"] += [
    ("raises on a dilation pair", _CONV_INT_DILATION, "a dilation pair"),
    ("raises with bias=False", _CONV_BIAS_CRASH, "bias=False"),
]
MUTANTS["Embedding"] += [
    ("ignores a negative padding_idx", embedding_mutant(NEGATIVE="False"),
     "negative padding_idx counts from the end"),
    ("padding_idx=0 taken for None", embedding_mutant(ZERO_PAD="padding_idx",
                                                      MASK_GRAD="self.padding_idx"),
     "padding_idx row must start as zeros"),
]

CORRECT = {
    "conv2d_output_shape": [
        ("math.floor of a true division", """
            import math

            def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
                def _pair(x):
                    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

                k, s, p, d = map(_pair, (kernel_size, stride, padding, dilation))
                h_out = math.floor((h + 2 * p[0] - d[0] * (k[0] - 1) - 1) / s[0] + 1)
                w_out = math.floor((w + 2 * p[1] - d[1] * (k[1] - 1) - 1) / s[1] + 1)
                return h_out, w_out
        """),
        ("effective kernel size", """
            def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):
                out = []
                for i, n in enumerate((h, w)):
                    k, s, p, d = (v if isinstance(v, int) else v[i]
                                  for v in (kernel_size, stride, padding, dilation))
                    span = d * (k - 1) + 1          # the dilated kernel's extent
                    out.append((n + 2 * p - span) // s + 1)
                return tuple(out)
        """),
    ],
    "Conv2d": [
        ("torch-style reset_parameters, unfold and a matmul per group", """
            class Conv2d(nn.Module):
                def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                             dilation=1, groups=1, bias=True):
                    super().__init__()
                    if in_channels % groups != 0:
                        raise ValueError("in_channels must be divisible by groups")
                    if out_channels % groups != 0:
                        raise ValueError("out_channels must be divisible by groups")

                    def _pair(x):
                        return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

                    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
                    self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
                    self.padding, self.dilation = _pair(padding), _pair(dilation)
                    self.weight = nn.Parameter(torch.empty(
                        (out_channels, in_channels // groups, *self.kernel_size)))
                    if bias:
                        self.bias = nn.Parameter(torch.empty(out_channels))
                    else:
                        self.register_parameter("bias", None)
                    self.reset_parameters()

                def reset_parameters(self):
                    nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                    if self.bias is not None:
                        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(self.weight)
                        if fan_in != 0:
                            bound = 1 / math.sqrt(fan_in)
                            nn.init.uniform_(self.bias, -bound, bound)

                def forward(self, input):
                    n, c, h, w = input.shape
                    out_h, out_w = conv2d_output_shape(h, w, self.kernel_size, self.stride,
                                                       self.padding, self.dilation)
                    cols = F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)
                    g, og = self.groups, self.out_channels // self.groups
                    cols = cols.view(n, g, -1, cols.shape[-1])
                    outs = [self.weight[i * og:(i + 1) * og].reshape(og, -1) @ cols[:, i]
                            for i in range(g)]
                    out = torch.cat(outs, 1).view(n, self.out_channels, out_h, out_w)
                    if self.bias is not None:
                        out = out + self.bias[None, :, None, None]
                    return out
        """),
        ("shifted slices of a padded input", """
            class Conv2d(nn.Module):
                def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                             dilation=1, groups=1, bias=True):
                    super().__init__()
                    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)
                    self.k, self.s, self.p, self.d = map(pair, (kernel_size, stride, padding, dilation))
                    self.groups = groups
                    self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.k))
                    nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
                    if bias:
                        bound = 1 / math.sqrt(in_channels // groups * self.k[0] * self.k[1])
                        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
                    else:
                        self.register_parameter("bias", None)

                def forward(self, x):
                    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.k, self.s, self.p, self.d
                    n, c, h, w = x.shape
                    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
                    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
                    xp = F.pad(x, (pw, pw, ph, ph))
                    g, cg = self.groups, c // self.groups
                    og = self.weight.shape[0] // g
                    outs = []
                    for gi in range(g):
                        xs = xp[:, gi * cg:(gi + 1) * cg]
                        wg = self.weight[gi * og:(gi + 1) * og]
                        acc = 0
                        for i in range(kh):
                            for j in range(kw):
                                patch = xs[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                                           j * dw: j * dw + sw * (wo - 1) + 1: sw]
                                acc = acc + torch.einsum("nchw,oc->nohw", patch, wg[:, :, i, j])
                        outs.append(acc)
                    out = torch.cat(outs, 1)
                    return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
        """),
        ("textbook loops over output positions", """
            class Conv2d(nn.Module):
                def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                             dilation=1, groups=1, bias=True):
                    super().__init__()
                    two = lambda v: (v, v) if isinstance(v, int) else (v[0], v[1])
                    self.k, self.s, self.p, self.d = (two(v) for v in (kernel_size, stride, padding,
                                                                       dilation))
                    self.groups, self.out_channels = groups, out_channels
                    bound = 1 / math.sqrt(in_channels // groups * self.k[0] * self.k[1])
                    self.weight = nn.Parameter(
                        torch.rand(out_channels, in_channels // groups, *self.k) * 2 * bound - bound)
                    self.bias = (nn.Parameter(torch.rand(out_channels) * 2 * bound - bound)
                                 if bias else None)

                def forward(self, x):
                    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.k, self.s, self.p, self.d
                    n, c, h, w = x.shape
                    g, oc = self.groups, self.out_channels
                    ho, wo = conv2d_output_shape(h, w, self.k, self.s, self.p, self.d)
                    xp = F.pad(x, (pw, pw, ph, ph))
                    weight = self.weight.view(g, oc // g, c // g, kh, kw)
                    rows = []
                    for i in range(ho):
                        row = []
                        for j in range(wo):
                            window = xp[:, :, i * sh: i * sh + dh * (kh - 1) + 1: dh,
                                        j * sw: j * sw + dw * (kw - 1) + 1: dw]
                            window = window.reshape(n, g, c // g, kh, kw)
                            row.append(torch.einsum("ngchw,gochw->ngo", window, weight).reshape(n, oc))
                        rows.append(torch.stack(row, -1))
                    out = torch.stack(rows, -2)
                    return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)
        """),
    ],
    "BatchNorm2d": [
        ("the way torch's _BatchNorm writes it (momentum=None: cumulative average)", """
            class BatchNorm2d(nn.Module):
                def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                             track_running_stats=True, device=None, dtype=None):
                    factory_kwargs = {"device": device, "dtype": dtype}
                    super().__init__()
                    self.num_features = num_features
                    self.eps = eps
                    self.momentum = momentum
                    self.affine = affine
                    self.track_running_stats = track_running_stats
                    if self.affine:
                        self.weight = nn.Parameter(torch.empty(num_features, **factory_kwargs))
                        self.bias = nn.Parameter(torch.empty(num_features, **factory_kwargs))
                    else:
                        self.register_parameter("weight", None)
                        self.register_parameter("bias", None)
                    if self.track_running_stats:
                        self.register_buffer("running_mean", torch.zeros(num_features, **factory_kwargs))
                        self.register_buffer("running_var", torch.ones(num_features, **factory_kwargs))
                        self.register_buffer("num_batches_tracked", torch.tensor(
                            0, dtype=torch.long,
                            **{k: v for k, v in factory_kwargs.items() if k != "dtype"}))
                    else:
                        self.register_buffer("running_mean", None)
                        self.register_buffer("running_var", None)
                        self.register_buffer("num_batches_tracked", None)
                    self.reset_parameters()

                def reset_running_stats(self):
                    if self.track_running_stats:
                        self.running_mean.zero_()
                        self.running_var.fill_(1)
                        self.num_batches_tracked.zero_()

                def reset_parameters(self):
                    self.reset_running_stats()
                    if self.affine:
                        nn.init.ones_(self.weight)
                        nn.init.zeros_(self.bias)

                def forward(self, input):
                    if self.momentum is None:
                        exponential_average_factor = 0.0
                    else:
                        exponential_average_factor = self.momentum
                    if self.training and self.track_running_stats:
                        if self.num_batches_tracked is not None:
                            self.num_batches_tracked.add_(1)
                            if self.momentum is None:  # cumulative moving average
                                exponential_average_factor = 1.0 / float(self.num_batches_tracked)
                            else:  # exponential moving average
                                exponential_average_factor = self.momentum
                    if self.training:
                        bn_training = True
                    else:
                        bn_training = (self.running_mean is None) and (self.running_var is None)
                    if bn_training:
                        var, mean = torch.var_mean(input, dim=(0, 2, 3), unbiased=False)
                        if self.training and self.track_running_stats:
                            n = input.numel() / input.size(1)
                            f = exponential_average_factor
                            with torch.no_grad():
                                self.running_mean.mul_(1 - f).add_(f * mean)
                                self.running_var.mul_(1 - f).add_(f * var * n / (n - 1))
                    else:
                        mean, var = self.running_mean, self.running_var
                    out = (input - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None]
                                                                          + self.eps)
                    if self.affine:
                        out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
                    return out
        """),
        ("sums and counts, with lerp_ for the running statistics", """
            class BatchNorm2d(nn.Module):
                def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                             track_running_stats=True):
                    super().__init__()
                    self.eps, self.momentum = eps, momentum
                    self.affine, self.track = affine, track_running_stats
                    self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
                    self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
                    for name, value in [("running_mean", torch.zeros(num_features)),
                                        ("running_var", torch.ones(num_features)),
                                        ("num_batches_tracked", torch.zeros((), dtype=torch.long))]:
                        self.register_buffer(name, value if track_running_stats else None)

                def forward(self, x):
                    c = x.shape[1]
                    per_channel = x.transpose(0, 1).reshape(c, -1)      # (C, N·H·W)
                    count = per_channel.shape[1]
                    if self.training or not self.track:
                        mean = per_channel.sum(1) / count
                        var = ((per_channel - mean[:, None]) ** 2).sum(1) / count
                        if self.training and self.track:
                            with torch.no_grad():
                                self.running_mean.lerp_(mean, self.momentum)
                                self.running_var.lerp_(var * count / (count - 1), self.momentum)
                                self.num_batches_tracked += 1
                    else:
                        mean, var = self.running_mean, self.running_var
                    shape = (1, c, 1, 1)
                    y = (x - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
                    if self.affine:
                        y = torch.addcmul(self.bias.reshape(shape), y, self.weight.reshape(shape))
                    return y
        """),
    ],
    "Dropout": [
        ("bernoulli mask", """
            class Dropout(nn.Module):
                def __init__(self, p=0.5):
                    super().__init__()
                    self.p = p

                def forward(self, x):
                    if not self.training:
                        return x
                    if self.p >= 1:
                        return torch.zeros_like(x) * x
                    mask = torch.bernoulli(torch.full_like(x, 1 - self.p))
                    return mask * x / (1 - self.p)
        """),
        ("torch.where", """
            class Dropout(nn.Module):
                def __init__(self, p=0.5):
                    super().__init__()
                    if p < 0 or p > 1:
                        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
                    self.p = p

                def forward(self, input):
                    if not self.training or self.p == 0:
                        return input
                    drop = torch.rand_like(input) < self.p
                    scale = 0.0 if self.p == 1 else 1 / (1 - self.p)
                    return torch.where(drop, torch.zeros_like(input), input * scale)
        """),
    ],
    "Flatten": [
        ("contiguous view", """
            class Flatten(nn.Module):
                def __init__(self, start_dim=1, end_dim=-1):
                    super().__init__()
                    self.start_dim, self.end_dim = start_dim, end_dim

                def forward(self, x):
                    n = x.dim()
                    s, e = self.start_dim % n, self.end_dim % n
                    sizes = list(x.shape)
                    merged = 1
                    for v in sizes[s:e + 1]:
                        merged *= v
                    return x.contiguous().view(sizes[:s] + [merged] + sizes[e + 1:])
        """),
        ("functools.reduce and explicit negative dims", """
            import functools
            import operator

            class Flatten(nn.Module):
                def __init__(self, start_dim=1, end_dim=-1):
                    super().__init__()
                    self.start_dim = start_dim
                    self.end_dim = end_dim

                def forward(self, input):
                    nd = input.dim()
                    start = self.start_dim if self.start_dim >= 0 else nd + self.start_dim
                    end = self.end_dim if self.end_dim >= 0 else nd + self.end_dim
                    shape = list(input.shape)
                    merged = functools.reduce(operator.mul, shape[start:end + 1], 1)
                    return input.reshape(shape[:start] + [merged] + shape[end + 1:])
        """),
    ],
    "Embedding": [
        ("one-hot matmul", """
            class Embedding(nn.Module):
                def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
                    super().__init__()
                    self.num, self.padding_idx = num_embeddings, padding_idx
                    self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim))
                    if padding_idx is not None:
                        with torch.no_grad():
                            self.weight[padding_idx] = 0.0

                def forward(self, ids):
                    onehot = F.one_hot(ids, self.num).to(self.weight.dtype)
                    if self.padding_idx is not None:
                        onehot[..., self.padding_idx] = 0.0  # the padding row is zero: same values
                    return onehot @ self.weight
        """),
        ("the way torch's Embedding writes it, with index_select", """
            class Embedding(nn.Module):
                def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
                    super().__init__()
                    self.num_embeddings = num_embeddings
                    self.embedding_dim = embedding_dim
                    if padding_idx is not None:
                        if padding_idx > 0:
                            assert padding_idx < self.num_embeddings, "Padding_idx must be within num_embeddings"
                        elif padding_idx < 0:
                            assert padding_idx >= -self.num_embeddings, "Padding_idx must be within num_embeddings"
                            padding_idx = self.num_embeddings + padding_idx
                    self.padding_idx = padding_idx
                    self.weight = nn.Parameter(torch.empty((num_embeddings, embedding_dim)))
                    self.reset_parameters()

                def reset_parameters(self):
                    nn.init.normal_(self.weight)
                    self._fill_padding_idx_with_zero()

                def _fill_padding_idx_with_zero(self):
                    if self.padding_idx is not None:
                        with torch.no_grad():
                            self.weight[self.padding_idx].fill_(0)

                def forward(self, input):
                    rows = self.weight.index_select(0, input.reshape(-1))
                    rows = rows.view(*input.shape, self.embedding_dim)
                    if self.padding_idx is not None:
                        keep = (input != self.padding_idx).unsqueeze(-1).to(rows.dtype)
                        rows = rows * keep + rows.detach() * (1 - keep)
                    return rows
        """),
    ],
}

(test_solution_passes, test_mutant_loses_points, test_every_exercise_has_mutants,
 test_correct_variant_passes) = make_tests("05_layers", MUTANTS, CORRECT)


@pytest.mark.parametrize(("source", "concept"), [
    (_CONV_INT_DILATION, "a dilation pair"),
    (_CONV_BIAS_CRASH, "bias=False"),
])
def test_a_crash_names_the_concept_and_the_call(source: str, concept: str) -> None:
    """A Conv2d that raises is told which idea the case probes and which call raised."""
    outcome = run_exercise("05_layers", "Conv2d", textwrap.dedent(source))
    assert outcome.points < outcome.max_points
    assert f"on a case that checks {concept}" in outcome.messages, outcome.messages
    assert "while calling `Conv2d(" in outcome.messages, outcome.messages


@pytest.mark.parametrize("mode", ["split", "inline"])
@pytest.mark.parametrize("wrong_shape", [
    shape_mutant("math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1"),
    "def conv2d_output_shape(h, w, kernel_size, stride=1, padding=0, dilation=1):\n"
    "    raise NotImplementedError()\n",
], ids=["ceil", "not done"])
def test_a_wrong_output_shape_costs_only_its_own_test(wrong_shape: str, mode: str) -> None:
    """Conv2d's tests run the student's Conv2d with the reference conv2d_output_shape."""
    assert run_exercise("05_layers", "conv2d_output_shape", wrong_shape, mode=mode).points == 0
    # the solution's Conv2d, in a notebook whose conv2d_output_shape is wrong
    conv = parts("05_layers").answers["Conv2d"]
    outcome = run_exercise("05_layers", "Conv2d", wrong_shape + "\n" + conv, mode=mode)
    assert outcome.points == outcome.max_points > 0, outcome.messages


def test_torch_style_batchnorm_variant_matches_torch_with_momentum_none() -> None:
    """The torch-style variant above is right beyond what the exercise asks: momentum=None."""
    import torch
    from torch import nn

    ns: dict = {"torch": torch, "nn": nn}
    exec(textwrap.dedent(CORRECT["BatchNorm2d"][0][1]), ns)  # noqa: S102
    mine, ref = ns["BatchNorm2d"](3, momentum=None), nn.BatchNorm2d(3, momentum=None)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.randn(4, 3, 5, 5, generator=gen) * 2 + 1
        torch.testing.assert_close(mine(x), ref(x))
    torch.testing.assert_close(mine.running_mean, ref.running_mean)
    torch.testing.assert_close(mine.running_var, ref.running_var)
