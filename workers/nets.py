"""Models: an MLP for any data set and a small CNN for the image data sets.

Hidden layers are Linear/Conv -> [BatchNorm] -> activation -> [Dropout]; weights are
initialised to suit the activation (Kaiming for the ReLU family and GELU, Xavier for tanh),
biases at zero. Both take flat inputs, so the data set can stay one (N, features) tensor.
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
LEAKY_SLOPE = 0.01


def _activation(name):
    return nn.LeakyReLU(LEAKY_SLOPE) if name == "leaky_relu" else ACTIVATIONS[name]()


def init_weights(module: nn.Module, activation: str) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if activation == "tanh":
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
            elif activation == "leaky_relu":
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            else:  # relu and gelu
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_head(linear: nn.Linear) -> None:
    """The output layer: Xavier (gain 1), so the first logits are small and the loss starts near log(classes)."""
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


class MLP(nn.Sequential):
    def __init__(self, n_features, n_classes, width=64, depth=2, activation="relu",
                 batch_norm=False, dropout=0.0):
        layers, size = [], n_features
        for _ in range(depth):
            layers.append(nn.Linear(size, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = width
        layers.append(nn.Linear(size, n_classes))
        super().__init__(*layers)
        init_weights(self, activation)
        init_head(layers[-1])


class SmallCNN(nn.Module):
    """`depth` 3x3 conv blocks of `width` channels, a 2x2 max-pool after each of the first two,
    and a linear head on the flattened feature maps."""

    def __init__(self, image_shape, n_classes, width=32, depth=2, activation="relu",
                 batch_norm=False, dropout=0.0):
        super().__init__()
        self.image_shape = tuple(image_shape)
        channels, h, _ = self.image_shape
        blocks = []
        for i in range(depth):
            blocks.append(nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm2d(width))
            blocks.append(_activation(activation))
            if dropout > 0:
                blocks.append(nn.Dropout2d(dropout))
            if i < 2 and h >= 4:
                blocks.append(nn.MaxPool2d(2))
                h //= 2
            channels = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(width * h * h, n_classes)
        init_weights(self, activation)
        init_head(self.head)

    def forward(self, x):
        x = x.view(x.shape[0], *self.image_shape)
        return self.head(self.features(x).flatten(1))


def build_model(config, n_features, n_classes, image_shape=None) -> nn.Module:
    kwargs = dict(width=config["width"], depth=config["depth"], activation=config["activation"],
                  batch_norm=config["batch_norm"], dropout=config["dropout"])
    if config["model"] == "cnn":
        if image_shape is None:
            raise ValueError(f"model 'cnn' needs an image data set, not {config['dataset']!r}")
        return SmallCNN(image_shape, n_classes, **kwargs)
    return MLP(n_features, n_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

