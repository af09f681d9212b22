"""torchvision-style PyTorch originals next to Jittor's own zoo (``jittor.models``) as ports.

torchvision itself is not used: no wheel of it fits this CPU-only torch (the torchvision that
pins torch 2.13.0 is a CUDA build whose ``_C`` does not load here), so the originals are
written after torchvision 0.28's ``models/resnet.py``, ``mobilenetv2.py``, ``vgg.py`` and
``densenet.py`` -- same modules, same names (state-dict keys), same forward, same init --
less what these tests do not use (weights, dilation, groups, memory-efficient DenseNet,
Bottleneck).  Checked against torchvision 0.28's own code (its Python, loaded with the
extension's fake-kernel registrations stubbed out, once, when they were written): the same
module names and types, state-dict keys and shapes, the same initial weights from the same
seed, and outputs equal to the last bit.  That check is not a test here: CI has no
torchvision, and a test skipped on every run checks nothing.  The ports are Jittor's
zoo models themselves, built by :func:`port`; the weights go from the original to the port
by name, as ``gradcheck align`` does.

Differences that are the frameworks' and not bugs, set the same on both sides:

* dropout (MobileNetV2, VGG) has p = 0: the two frameworks draw different masks;
* VGG: Jittor's ``VGG`` hard-codes its 4096-wide classifier (120M parameters); here both
  sides replace it after construction with the same layers 64 wide, and the features are
  vgg11_bn's pattern with channels / 8; the input is 224x224 because Jittor's
  ``AdaptiveAvgPool2d`` cannot enlarge (torch's can) and averages with equal windows,
  torch's with ``floor``/``ceil`` bounds: the same only where 7 divides the size;
* DenseNet: torchvision's ``_DenseLayer`` returns its new features only, Jittor's returns
  them concatenated to its input, so the two ``denselayerN`` outputs differ in shape though
  the blocks agree: :data:`NAME_MAP_DENSENET` maps those modules out of the comparison;
  the small DenseNet has Jittor's ``DenseNet`` class with fewer, narrower layers.

Planted bugs (``port(name, bug)``), each at a known module:

=====================  ============================================================
``final_relu``         ResNet: ``layer2.1`` lost its final ReLU (second call of
                       ``layer2.1.relu``)
``no_residual``        MobileNetV2: ``features.3`` lost its residual sum
``bn_eps``             VGG: ``features.5`` (a BatchNorm) has eps 1e-1, not 1e-5
``float32_cast``       ResNet, faithful but for a hard-coded ``float32()`` on the pooled
                       features in its ``execute``: float32 leaks into a float64 run
=====================  ============================================================
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

import gradcheck
from gradcheck import runtime
from gradcheck.parity import torchenv

jt = runtime.import_jittor()
torch = torchenv.import_torch()
tnn = torch.nn
F = torch.nn.functional

CLASSES = 10
# 64x64 at least: at 32x32 MobileNetV2's last stages are 1x1, where BatchNorm (batch 2)
# normalises two values per channel, so ill-conditioned that float64 against float64 differ
# by 7e-8 in the gradients (5e-13 at 64x64)
SIZES = {"resnet18": 64, "mobilenet_v2": 64, "vgg11_bn": 224, "densenet_small": 64,
         "densenet121": 64}
VGG_CFG = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]   # vgg11 ('A'), / 8
VGG_HIDDEN = 64
DENSENET_SMALL = dict(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16,
                      bn_size=2)
DENSENET121 = dict(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64)
# torchvision's _DenseLayer returns its new features, Jittor's the concatenation: not compared
NAME_MAP_DENSENET = [(r"^(.*\.denselayer\d+)$", r"\1 (returns the concatenation in Jittor)")]


def batch_np(name: str, seed: int = 0):
    rng = np.random.RandomState(seed)
    size = SIZES[name]
    x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    y = rng.randint(0, CLASSES, size=(2,)).astype(np.int64)
    return x, y


# ------------------------------------------------------------ ResNet (torchvision resnet.py)
def conv3x3(in_planes, out_planes, stride=1):
    return tnn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                      bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return tnn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = tnn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = tnn.BatchNorm2d(self.inplanes)
        self.relu = tnn.ReLU(inplace=True)
        self.maxpool = tnn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, tnn.Conv2d):
                tnn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (tnn.BatchNorm2d, tnn.GroupNorm)):
                tnn.init.constant_(m.weight, 1)
                tnn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return tnn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x

    def forward(self, x):
        return self._forward_impl(x)


def resnet18(num_classes=1000):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


# ---------------------------------------------------- MobileNetV2 (torchvision mobilenetv2.py)
def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(tnn.Sequential):
    """torchvision.ops.misc.Conv2dNormActivation with BatchNorm2d and ReLU6."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(tnn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                    dilation=1, groups=groups, bias=False),
                         tnn.BatchNorm2d(out_channels), tnn.ReLU6(inplace=True))
        self.out_channels = out_channels


class InvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers.extend([Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride,
                                            groups=hidden_dim),
                       tnn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                       tnn.BatchNorm2d(oup)])
        self.conv = tnn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(tnn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        input_channel, last_channel = 32, 1280
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
                   [6, 160, 3, 2], [6, 320, 1, 1]]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = tnn.Sequential(*features)
        self.classifier = tnn.Sequential(tnn.Dropout(p=dropout),
                                         tnn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, tnn.Conv2d):
                tnn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    tnn.init.zeros_(m.bias)
            elif isinstance(m, (tnn.BatchNorm2d, tnn.GroupNorm)):
                tnn.init.ones_(m.weight)
                tnn.init.zeros_(m.bias)
            elif isinstance(m, tnn.Linear):
                tnn.init.normal_(m.weight, 0, 0.01)
                tnn.init.zeros_(m.bias)

    def _forward_impl(self, x):
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x

    def forward(self, x):
        return self._forward_impl(x)


# ------------------------------------------------------------------- VGG (torchvision vgg.py)
class VGG(tnn.Module):
    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
        self.classifier = tnn.Sequential(
            tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(True), tnn.Dropout(p=dropout),
            tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(p=dropout),
            tnn.Linear(4096, num_classes))
        if init_weights:
            _vgg_init(self)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


def _vgg_init(model):
    for m in model.modules():
        if isinstance(m, tnn.Conv2d):
            tnn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                tnn.init.constant_(m.bias, 0)
        elif isinstance(m, tnn.BatchNorm2d):
            tnn.init.constant_(m.weight, 1)
            tnn.init.constant_(m.bias, 0)
        elif isinstance(m, tnn.Linear):
            tnn.init.normal_(m.weight, 0, 0.01)
            tnn.init.constant_(m.bias, 0)


def make_layers(cfg, batch_norm=False):
    layers, in_channels = [], 3
    for v in cfg:
        if v == "M":
            layers += [tnn.MaxPool2d(kernel_size=2, stride=2)]
        else:
            conv2d = tnn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            if batch_norm:
                layers += [conv2d, tnn.BatchNorm2d(v), tnn.ReLU(inplace=True)]
            else:
                layers += [conv2d, tnn.ReLU(inplace=True)]
            in_channels = v
    return tnn.Sequential(*layers)


# ------------------------------------------------------------ DenseNet (torchvision densenet.py)
class _DenseLayer(tnn.Module):
    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = tnn.BatchNorm2d(num_input_features)
        self.relu1 = tnn.ReLU(inplace=True)
        self.conv1 = tnn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1,
                                stride=1, bias=False)
        self.norm2 = tnn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1,
                                padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def bn_function(self, inputs):
        concated_features = torch.cat(inputs, 1)
        return self.conv1(self.relu1(self.norm1(concated_features)))

    def forward(self, input):
        prev_features = [input] if isinstance(input, torch.Tensor) else input
        bottleneck_output = self.bn_function(prev_features)
        new_features = self.conv2(self.relu2(self.norm2(bottleneck_output)))
        if self.drop_rate > 0:
            new_features = F.dropout(new_features, p=self.drop_rate, training=self.training)
        return new_features


class _DenseBlock(tnn.ModuleDict):
    _version = 2

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate=growth_rate,
                                bn_size=bn_size, drop_rate=drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, init_features):
        features = [init_features]
        for _name, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(tnn.Sequential):
    def __init__(self, num_input_features, num_output_features):
        super().__init__()
        self.norm = tnn.BatchNorm2d(num_input_features)
        self.relu = tnn.ReLU(inplace=True)
        self.conv = tnn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1,
                               bias=False)
        self.pool = tnn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(tnn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64,
                 bn_size=4, drop_rate=0, num_classes=1000):
        super().__init__()
        self.features = tnn.Sequential(OrderedDict([
            ("conv0", tnn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3,
                                 bias=False)),
            ("norm0", tnn.BatchNorm2d(num_init_features)),
            ("relu0", tnn.ReLU(inplace=True)),
            ("pool0", tnn.MaxPool2d(kernel_size=3, stride=2, padding=1))]))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers=num_layers, num_input_features=num_features,
                                bn_size=bn_size, growth_rate=growth_rate, drop_rate=drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            num_features = num_features + num_layers * growth_rate
            if i != len(block_config) - 1:
                trans = _Transition(num_input_features=num_features,
                                    num_output_features=num_features // 2)
                self.features.add_module(f"transition{i + 1}", trans)
                num_features = num_features // 2
        self.features.add_module("norm5", tnn.BatchNorm2d(num_features))
        self.classifier = tnn.Linear(num_features, num_classes)
        for m in self.modules():
            if isinstance(m, tnn.Conv2d):
                tnn.init.kaiming_normal_(m.weight)
            elif isinstance(m, tnn.BatchNorm2d):
                tnn.init.constant_(m.weight, 1)
                tnn.init.constant_(m.bias, 0)
            elif isinstance(m, tnn.Linear):
                tnn.init.constant_(m.bias, 0)

    def forward(self, x):
        features = self.features(x)
        out = F.relu(features, inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        out = torch.flatten(out, 1)
        out = self.classifier(out)
        return out


# ------------------------------------------------------------------ the pairs
def _vgg_classifier(nn, relu):
    """Both frameworks' VGG classifier, VGG_HIDDEN wide where theirs is 4096, on the
    features' VGG_CFG[-2] channels where theirs expects 512; dropout p = 0."""
    c = VGG_CFG[-2]
    return nn.Sequential(nn.Linear(c * 7 * 7, VGG_HIDDEN), relu(), nn.Dropout(p=0.0),
                         nn.Linear(VGG_HIDDEN, VGG_HIDDEN), relu(), nn.Dropout(p=0.0),
                         nn.Linear(VGG_HIDDEN, CLASSES))


def torch_model(name: str):
    torch.manual_seed(0)
    if name == "resnet18":
        return resnet18(num_classes=CLASSES)
    if name == "mobilenet_v2":
        return MobileNetV2(num_classes=CLASSES, dropout=0.0)
    if name == "vgg11_bn":
        model = VGG(make_layers(VGG_CFG, batch_norm=True), num_classes=CLASSES, dropout=0.0)
        model.classifier = _vgg_classifier(tnn, lambda: tnn.ReLU(True))
        _vgg_init(model.classifier)
        return model
    if name == "densenet_small":
        return DenseNet(num_classes=CLASSES, **DENSENET_SMALL)
    if name == "densenet121":
        return DenseNet(num_classes=CLASSES, **DENSENET121)
    raise ValueError(name)


def jittor_model(name: str, bug: str = "none"):
    import jittor.models as jm
    from jittor.models import densenet as jdensenet, mobilenet as jmobilenet, vgg as jvgg

    jt.set_global_seed(1)
    if name == "resnet18":
        model = jm.resnet18(num_classes=CLASSES)
    elif name == "mobilenet_v2":
        model = jmobilenet.MobileNetV2(num_classes=CLASSES)
        model.classifier[0].p = 0.0
    elif name == "vgg11_bn":
        model = jvgg.VGG(jvgg.make_layers(VGG_CFG, batch_norm=True), num_classes=CLASSES)
        model.classifier = _vgg_classifier(jt.nn, jt.nn.ReLU)
    elif name == "densenet_small":
        model = jdensenet.DenseNet(num_classes=CLASSES, **DENSENET_SMALL)
    elif name == "densenet121":
        model = jdensenet.densenet121(num_classes=CLASSES)
    else:
        raise ValueError(name)
    _plant(model, name, bug)
    return model


def _plant(model, name, bug) -> None:
    if bug == "none":
        return
    if (name, bug) == ("resnet18", "final_relu"):
        blk = model.layer2[1]

        def execute(x):            # BasicBlock.execute without its last self.relu
            out = blk.bn2(blk.conv2(blk.relu(blk.bn1(blk.conv1(x)))))
            return out + x
        blk.execute = execute
    elif (name, bug) == ("resnet18", "float32_cast"):
        def forward_impl(x, m=model):   # ResNet._forward_impl, float32() for float_auto()
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
            x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
            x = m.avgpool(x).float32()
            return m.fc(jt.reshape(x, (x.shape[0], -1)))
        model._forward_impl = forward_impl
    elif (name, bug) == ("mobilenet_v2", "no_residual"):
        assert model.features[3].use_res_connect
        model.features[3].use_res_connect = False
    elif (name, bug) == ("vgg11_bn", "bn_eps"):
        assert isinstance(model.features[5], jt.nn.BatchNorm)
        model.features[5].eps = 1e-1
    else:
        raise ValueError(f"no bug {bug!r} for {name}")


def _torch_loss(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y)


def _jittor_loss(model, batch):
    x, y = batch
    return jt.nn.cross_entropy_loss(model(x), y)


def original(name: str):
    model = torch_model(name)
    x, y = batch_np(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return gradcheck.Workload(model, (torch.from_numpy(x), torch.from_numpy(y)), _torch_loss,
                              optimizer=opt, name=f"tv_{name}")


def port(name: str, bug: str = "none"):
    model = jittor_model(name, bug)
    x, y = batch_np(name)
    opt = jt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return gradcheck.Workload(model, (jt.array(x), jt.array(y)), _jittor_loss, optimizer=opt,
                              name=f"jittor_{name}_{bug}")


# factories for the command line, e.g.
#   gradcheck align --port tests/align_zoo_pairs.py:port_resnet18_final_relu \
#                   --original tests/align_zoo_pairs.py:original_resnet18
PLANTED = {"resnet18": ("final_relu", "float32_cast"), "mobilenet_v2": ("no_residual",),
           "vgg11_bn": ("bn_eps",)}


def _factory(fn, name, *args):
    def make():
        return fn(name, *args)
    make.__name__ = "_".join([fn.__name__, name, *args])
    return make


for _name in SIZES:
    globals()[f"original_{_name}"] = _factory(original, _name)
    globals()[f"port_{_name}"] = _factory(port, _name)
    for _bug in PLANTED.get(_name, ()):
        globals()[f"port_{_name}_{_bug}"] = _factory(port, _name, _bug)
